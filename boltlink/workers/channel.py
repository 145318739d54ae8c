"""The line a worker keeps open to its cluster master: one JSON object per line, both ways.

Worker -> master: {"type": "ready", ...}, {"type": "heartbeat", ...} about once a
second, {"type": "recycle", "reason": ...}, {"type": "boot_failed", "error": ...},
{"type": "ask", "id": n, "question": "metrics"}.
Master -> worker: first {"type": "hello", "config": {...}}, then only
{"type": "answer", "id": n, "answer": {...}} for each ask (or "error": "...").
End of file means the master is gone: the worker then drains briefly and exits
(an orphan must not keep serving, or holding the port).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("boltlink.worker")

# Exit status of a worker whose app could not boot (bad config, unreachable
# database): the master stops instead of respawning it forever (as gunicorn's 3).
BOOT_FAILURE_EXIT = 3
# An orphaned worker gets this long to finish in-flight requests, then exits hard.
ORPHAN_GRACE_SECONDS = 2.0
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    """The message on one line, or None for a line that is not a JSON object."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) and isinstance(message.get("type"), str) else None


def read_hello(fd: int) -> dict[str, Any]:
    """Block for the master's first line, before any event loop exists."""
    with socket.socket(fileno=os.dup(fd)) as sock, sock.makefile("rb") as stream:
        line = stream.readline()
    message = decode(line)
    if message is None or message["type"] != "hello":
        raise RuntimeError("the cluster master sent no hello")
    return message


class MasterChannel:
    """The worker's end: send messages, and notice when the master goes away."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._writer: asyncio.StreamWriter | None = None
        self._asked: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0

    async def open(self, on_master_lost: Callable[[], None]) -> None:
        sock = socket.socket(fileno=self._fd)
        reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        asyncio.get_running_loop().create_task(self._watch(reader, on_master_lost))

    async def _watch(self, reader: asyncio.StreamReader, on_master_lost: Callable[[], None]) -> None:
        while line := await reader.readline():
            message = decode(line)
            if message is not None and message["type"] == "answer":
                waiter = self._asked.pop(message.get("id"), None)  # type: ignore[arg-type]
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
        for waiter in self._asked.values():  # EOF: the master is gone, and so are its answers
            if not waiter.done():
                waiter.set_exception(ConnectionError("the cluster master is gone"))
        log.warning("cluster master is gone: draining for %.0f s, then exiting", ORPHAN_GRACE_SECONDS)
        arm_orphan_exit()
        on_master_lost()

    def send(self, message: dict[str, Any]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(encode(message))

    async def ask(self, question: str, timeout: float = 5.0) -> dict[str, Any]:
        """The master's answer to a question (e.g. "metrics"). Raises ConnectionError or TimeoutError."""
        self._next_id += 1
        ask_id = self._next_id
        waiter = self._asked[ask_id] = asyncio.get_running_loop().create_future()
        try:
            self.send({"type": "ask", "id": ask_id, "question": question})
            message = await asyncio.wait_for(waiter, timeout)
        finally:
            self._asked.pop(ask_id, None)
        if "error" in message:
            raise ConnectionError(str(message["error"]))
        return message.get("answer") or {}


_orphan_timer: threading.Timer | None = None


def arm_orphan_exit() -> None:
    """Exit hard ORPHAN_GRACE_SECONDS from now, from a thread: it fires even if the event loop is stuck."""
    global _orphan_timer
    if _orphan_timer is None:
        _orphan_timer = threading.Timer(ORPHAN_GRACE_SECONDS, os._exit, args=(1,))
        _orphan_timer.daemon = True
        _orphan_timer.start()


def die_with_master(master_pid: int) -> None:
    """Ask Linux for SIGUSR1 when the master dies, however it dies (a backstop for a stuck loop)."""
    signal.signal(signal.SIGUSR1, lambda *_: arm_orphan_exit())
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    except (OSError, AttributeError):  # not Linux: the channel's end of file still tells us
        pass
    if os.getppid() != master_pid:  # it died before prctl took effect
        os._exit(1)
