"""Server errors in the log: each one at once, its repeats summed up in one line every 10 s.

A full disk makes every redirect answer 503 Click Not Recorded: one ERROR line
per request wrote the same line thousands of times a second, into logs that
may live on the very disk that is full. The first occurrence of a message is
logged as it happens; while it keeps coming, one line per window says how
many more there were; a window without repeats closes, and the next
occurrence is logged at once again.
"""

from __future__ import annotations

import asyncio
import logging

WINDOW_SECONDS = 10.0
MAX_OPEN = 100  # distinct messages summed at once; beyond that each is logged (a bound on memory)


class RepeatedErrorLog:
    def __init__(self, logger: logging.Logger, window: float = WINDOW_SECONDS) -> None:
        self._log = logger
        self._window = window
        self._repeats: dict[str, int] = {}  # open message -> repeats since its last line

    def error(self, message: str) -> None:
        if message in self._repeats:
            self._repeats[message] += 1
            return
        self._log.error("%s", message)
        if len(self._repeats) < MAX_OPEN:
            self._repeats[message] = 0
            asyncio.get_running_loop().call_later(self._window, self._close_window, message)

    def _close_window(self, message: str) -> None:
        repeats = self._repeats.pop(message, 0)
        if repeats:
            self._log.error("%s (%d more in the last %g s)", message, repeats, self._window)
            self._repeats[message] = 0  # still coming: keep summing
            asyncio.get_running_loop().call_later(self._window, self._close_window, message)
