"""Spool files: click events appended to local files, one line each, read by the aggregator.

Each API worker appends to its own file in DATA_DIR/spool with one write()
per event: once write() returns the line is in the kernel's page cache, so
killing the process (even with SIGKILL) loses nothing; no fsync is needed.

A writer holds a shared flock on its file for as long as it may append.
The lock, not a name or a pid, tells readers the file is finished: it is
released when the writer moves to a new file or dies. A file appears under
its final name only once locked (it is created under a hidden name and
renamed), so a reader never mistakes a brand-new file for an abandoned one.
The aggregator deletes a file once it has consumed all of it and can take
the lock, so the spool stays bounded while the aggregator runs.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from boltlink.errors import EventQueueError
from boltlink.events.base import EventBatch, EventSink, EventSource, Health
from boltlink.events.model import ClickEvent, decode_many
from boltlink.store.clicks import ClickStore

log = logging.getLogger("boltlink.events")

SUFFIX = ".events"
SOURCE = "spool"  # the consumer_offsets source the aggregator stores spool positions under
READ_CHUNK = 1 << 20
POLL_SECONDS = 0.05
TAIL_MAX = 1 << 16  # longer than any encoded event
PROBE_BYTES = 4096  # a page: on a full tmpfs or disk even this much fails with ENOSPC


class SpoolWriter(EventSink):
    """One process's append-only spool file, started afresh every max_bytes."""

    def __init__(self, directory: Path, writer_name: str, max_bytes: int) -> None:
        self.directory = directory
        self.writer_name = writer_name
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._size = 0
        self._seq = itertools.count()
        self._error: str | None = None

    async def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    async def emit(self, event: ClickEvent) -> None:
        self.write(event.encode())

    def write(self, line: bytes) -> None:
        try:
            if self._fd is None:
                self._start_file()
            assert self._fd is not None
            written = os.write(self._fd, line)
            if written != len(line):  # the disk filled mid-line: end it so the next line stays whole
                os.write(self._fd, b"\n")
                raise OSError(28, "No space left on device")
        except OSError as exc:
            self._error = f"cannot write click events to {self.directory}: {exc.strerror or exc}"
            self.finish_file()
            raise EventQueueError(self._error) from None
        self._error = None
        self._size += written
        if self._size >= self.max_bytes:
            self.finish_file()

    def _start_file(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stem = f"{time.time_ns():020d}-{self.writer_name}-{os.getpid()}-{next(self._seq)}"
        hidden = self.directory / f".{stem}.tmp"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        os.rename(hidden, self.directory / f"{stem}{SUFFIX}")
        self._fd, self._size = fd, 0

    def finish_file(self) -> None:
        """Close the current file (releasing its lock): readers may now treat it as complete."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def close(self) -> None:
        self.finish_file()

    def health(self) -> tuple[Health, str]:
        if self._error:
            # Without this, only a redirect's successful write would clear the error: /ready (503)
            # keeps redirects away, so a worker would stay out of service after the disk had room again.
            self._probe()
        return ("failing", self._error) if self._error else ("ok", "spool ok")

    def _probe(self) -> None:
        """Clear the error once a page can be written to a scratch file in the directory again."""
        probe = self.directory / f".probe-{self.writer_name}-{os.getpid()}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                written = os.write(fd, bytes(PROBE_BYTES))
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError:
            return
        if written == PROBE_BYTES:
            log.info("click events can be written to %s again", self.directory)
            self._error = None


def spool_files(directory: Path) -> list[Path]:
    """Finished and growing spool files, oldest first."""
    try:
        return sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith("."))
    except FileNotFoundError:
        return []


def try_lock(path: Path, mode: int = fcntl.LOCK_EX) -> int | None:
    """An fd holding the file's lock when no writer (or other reader) holds it; else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    # Fix: opened just before another shipper deleted it and released the lock -> it would be shipped
    # twice, and the unlink() that follows would fail and be taken for a Redis outage.
    if os.fstat(fd).st_nlink == 0:
        os.close(fd)
        return None
    return fd


def read_lines(path: Path, offset: int, max_lines: int) -> tuple[list[bytes], int]:
    """Whole lines from offset (a half-written last line is left for later), and the offset after them."""
    lines: list[bytes] = []
    with path.open("rb") as file:
        file.seek(offset)
        while len(lines) < max_lines:
            chunk = file.read(READ_CHUNK)
            end = chunk.rfind(b"\n")
            if end < 0:
                break
            for line in chunk[:end].split(b"\n"):
                if len(lines) == max_lines:
                    return lines, offset
                lines.append(line)
                offset += len(line) + 1
            if len(chunk) < READ_CHUNK:
                break
            file.seek(offset)
    return lines, offset


def _unterminated_tail(path: Path, offset: int, size: int) -> bool:
    """Whether all that is left after offset is part of one line with no end yet.

    Fix: a writer that died mid-line (the disk filled) left such a tail, which read_lines() never
    consumes, so the file was never deleted. Once the file's lock is free, no end will ever come.
    """
    if not 0 < size - offset <= TAIL_MAX:
        return False
    with path.open("rb") as file:
        file.seek(offset)
        return b"\n" not in file.read(size - offset)


def decode_lines(lines: list[bytes], where: str) -> tuple[list[ClickEvent], int]:
    decoded = decode_many(lines)
    events = [event for event in decoded if event is not None]
    malformed = len(decoded) - len(events)
    if malformed:
        log.warning("skipped %d malformed line(s) in %s", malformed, where)
    return events, malformed


class SpoolReader(EventSource):
    """The aggregator's view of DATA_DIR/spool; positions live in the store, beside the counters."""

    def __init__(self, directory: Path, store: ClickStore) -> None:
        self.directory = directory
        self.store = store
        self.offsets: dict[str, int] = {}  # committed: what the store holds, beside the counters
        self._read_at: dict[str, int] = {}  # read: ahead of offsets by the batches not yet acked

    async def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.offsets = await self.store.consumer_offsets(SOURCE)
        present = {p.name for p in spool_files(self.directory)}
        gone = [name for name in self.offsets if name not in present]
        if gone:  # deleted after a commit whose forget_offsets never ran
            await self.store.forget_offsets(SOURCE, gone)
            for name in gone:
                del self.offsets[name]
        self.rewind()

    async def read(self, max_events: int, wait: float) -> EventBatch:
        deadline = time.monotonic() + wait
        while True:
            batch = self._scan(max_events)
            if batch.events or batch.malformed or time.monotonic() >= deadline:
                return batch
            await asyncio.sleep(POLL_SECONDS)

    def _scan(self, max_events: int) -> EventBatch:
        batch = EventBatch(events=[], source=SOURCE)
        for path in spool_files(self.directory):
            room = max_events - len(batch.events)
            if room <= 0:
                break
            start = self._read_at.get(path.name, 0)
            try:
                if path.stat().st_size <= start:
                    continue
                lines, end = read_lines(path, start, room)
            except FileNotFoundError:
                continue
            if end > start:
                events, malformed = decode_lines(lines, path.name)
                batch.events.extend(events)
                batch.malformed += malformed
                batch.offsets[path.name] = end
        self._read_at.update(batch.offsets)
        return batch

    async def ack(self, batch: EventBatch) -> None:
        self.offsets.update(batch.offsets)
        finished = list(self._finished())
        if finished:
            await self.store.forget_offsets(SOURCE, finished)
            for name in finished:
                self.offsets.pop(name, None)
                self._read_at.pop(name, None)

    def rewind(self) -> None:
        self._read_at = dict(self.offsets)

    def _finished(self) -> Iterator[str]:
        """Delete files that are consumed to the end and no longer written to."""
        for path in spool_files(self.directory):
            offset = self.offsets.get(path.name, 0)
            try:
                size = path.stat().st_size
                if size != offset and not _unterminated_tail(path, offset, size):
                    continue
            except FileNotFoundError:
                continue
            fd = try_lock(path)
            if fd is None:
                continue  # its writer is still appending
            try:
                if os.fstat(fd).st_size == size:  # nothing landed between the check and the lock
                    if size != offset:
                        log.warning("dropped the unterminated last line of %s (its writer died, or the disk "
                                    "filled, mid-line)", path.name)
                    path.unlink()
                    yield path.name
            finally:
                os.close(fd)

    def backlog(self) -> int | None:
        """Bytes not yet consumed (about 250 bytes an event)."""
        total = 0
        for path in spool_files(self.directory):
            try:
                total += max(0, path.stat().st_size - self.offsets.get(path.name, 0))
            except FileNotFoundError:
                continue
        return total
