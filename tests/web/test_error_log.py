"""Repeated server errors are summed up in the log instead of one line per request."""

from __future__ import annotations

import asyncio
import logging

from boltlink.web.error_log import RepeatedErrorLog

FULL = "EventQueueError: cannot write click events to /data/spool: No space left on device"


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.errors"]


async def test_a_flood_of_one_error_is_one_line_then_a_count_per_window(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="test.errors")
    errors = RepeatedErrorLog(logging.getLogger("test.errors"), window=0.1)
    for _ in range(1000):
        errors.error(FULL)
    assert lines(caplog) == [FULL]  # at once, and only once
    await asyncio.sleep(0.15)
    assert lines(caplog) == [FULL, f"{FULL} (999 more in the last 0.1 s)"]
    errors.error(FULL)  # still coming: counted in the next window
    await asyncio.sleep(0.1)
    assert lines(caplog)[-1] == f"{FULL} (1 more in the last 0.1 s)"


async def test_a_quiet_window_closes_and_the_next_error_is_logged_at_once(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="test.errors")
    errors = RepeatedErrorLog(logging.getLogger("test.errors"), window=0.05)
    errors.error(FULL)
    await asyncio.sleep(0.12)  # a window with no repeat: nothing to sum, and it closes
    errors.error(FULL)
    assert lines(caplog) == [FULL, FULL]


async def test_different_errors_each_get_their_first_line(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="test.errors")
    errors = RepeatedErrorLog(logging.getLogger("test.errors"), window=10)
    errors.error("StoreUnavailable: the database does not answer")
    errors.error(FULL)
    errors.error(FULL)
    assert lines(caplog) == ["StoreUnavailable: the database does not answer", FULL]
