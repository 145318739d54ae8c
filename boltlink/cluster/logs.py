"""One log file per process in <data_dir>/logs/, written by the master, read by `boltlink logs`.

The master collects every worker's output lines and appends them to that
worker's file (master.log, api-0.log, …, aggregator.log), so rotation happens in
one place: by size, like logging.handlers.RotatingFileHandler (name.log ->
name.log.1 -> … -> name.log.<backups>, the oldest dropped). A process therefore
never holds more than (backups + 1) × max_bytes on disk.

Readers (tail, follow, flush_logs) work on the files alone, with or without a
master running. Files are opened in append mode and sized with fstat before
every write, so emptying them from another process is safe: the next line
lands at the new end of file.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
READ_CHUNK = 64 * 1024

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_LOG_FILE = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)\.log\Z")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?")


class ProcessLogs:
    """The master's writer: one append-only, size-rotated file per process name."""

    def __init__(self, log_dir: Path, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS) -> None:
        if max_bytes < 1 or backups < 0:
            raise ValueError("max_bytes must be positive and backups not negative")
        self.log_dir, self.max_bytes, self.backups = log_dir, max_bytes, backups
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._files: dict[str, BinaryIO] = {}

    def write(self, name: str, line: str) -> None:
        """Append one line (already timestamped by its process), rotating first if it would not fit.

        An I/O error (a full disk) loses the line, never the master: the file is
        opened afresh for the next one.
        """
        data = (line if line.endswith("\n") else line + "\n").encode("utf-8", "replace")
        if len(data) > self.max_bytes:  # a single huge line must not break the size bound
            data = data[: self.max_bytes - 1] + b"\n"
        try:
            file = self._files.get(name) or self._open(name)
            stat = os.fstat(file.fileno())
            if stat.st_nlink == 0:  # someone deleted the file: start a new one instead of writing into the void
                file = self._open(name)
                stat = os.fstat(file.fileno())
            if stat.st_size > 0 and stat.st_size + len(data) > self.max_bytes:
                file = self._rotate(name)
            file.write(data)
        except OSError:
            self._forget(name)

    def flush(self) -> list[str]:
        """Empty every log file and drop its backups; writing goes on into the emptied files."""
        return flush_logs(self.log_dir)

    def close(self) -> None:
        for name in list(self._files):
            self._forget(name)

    def _forget(self, name: str) -> None:
        file = self._files.pop(name, None)
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    def _open(self, name: str) -> BinaryIO:
        if not _NAME.match(name):
            raise ValueError(f"not a process name usable as a file name: {name!r}")
        self._forget(name)
        # Unbuffered: each line reaches the file at once, for `logs --follow` and for a crash.
        file = _log_file(self.log_dir, name).open("ab", buffering=0)
        self._files[name] = file
        return file

    def _rotate(self, name: str) -> BinaryIO:
        self._forget(name)
        for index, backup in reversed(_backups(self.log_dir, name)):
            if index >= self.backups:  # the oldest, or left over from a larger `backups` setting
                backup.unlink(missing_ok=True)
            else:
                os.replace(backup, backup.with_suffix(f".{index + 1}"))
        current = _log_file(self.log_dir, name)
        if self.backups:
            os.replace(current, current.with_name(current.name + ".1"))
        else:
            current.unlink(missing_ok=True)
        return self._open(name)


def log_names(log_dir: Path) -> list[str]:
    """Processes with a log file: master first, then natural order (api-2 before api-10)."""
    try:
        found = [m["name"] for entry in os.scandir(log_dir) if (m := _LOG_FILE.match(entry.name)) and entry.is_file()]
    except OSError:
        return []
    return sorted(found, key=lambda name: (name != "master", _natural_key(name)))


def select_names(known: list[str], selectors: list[str] | None) -> list[str]:
    """The known names a selection means: exact names or roles ("api" = every api-N); None = all."""
    if selectors is None:
        return list(known)
    roles = {name: name.rpartition("-")[0] for name in known if name.rpartition("-")[2].isdigit()}
    return [name for name in known if name in selectors or roles.get(name) in selectors]


def tail(log_dir: Path, names: list[str] | None, lines: int) -> list[tuple[str, str]]:
    """The last `lines` lines of each selected log as (name, line), merged by their leading timestamps.

    Each file keeps its own order; lines without a timestamp (a traceback's
    continuation) travel with the timestamped line before them.
    """
    per_file = []
    for name in select_names(log_names(log_dir), names):
        recent = _last_lines_with_backups(log_dir, name, lines)
        per_file.append([(key, name, line) for key, line in zip(_order_keys(recent), recent, strict=True)])
    # heapq.merge breaks ties by input order, so equal timestamps keep file order.
    return [(name, line) for _, name, line in heapq.merge(*per_file, key=lambda item: item[0])]


def follow(log_dir: Path, names: list[str] | None, *, poll_interval: float = 0.2,
           stop: Callable[[], bool] | None = None) -> Iterator[tuple[str, str]]:
    """Yield (name, line) as lines are appended, until stop() is true.

    Files present at the start are followed from their end; files that appear
    later (a worker scaled up) and files replaced by rotation or emptied by a
    flush are read from their start.
    """
    watched: dict[str, _FollowedFile] = {}
    at_start = True
    try:
        while not (stop is not None and stop()):
            for name in select_names(log_names(log_dir), names):
                if name not in watched:
                    watched[name] = _FollowedFile(_log_file(log_dir, name), from_end=at_start)
            at_start = False
            quiet = True
            for name, followed in list(watched.items()):
                for line in followed.read_new():
                    quiet = False
                    yield name, line
            if quiet:
                time.sleep(poll_interval)
    finally:
        for followed in watched.values():
            followed.close()


def flush_logs(log_dir: Path, names: list[str] | None = None) -> list[str]:
    """Empty the selected logs (all by default) and delete their backups; returns the names flushed."""
    flushed = select_names(log_names(log_dir), names)
    for name in flushed:
        with contextlib.suppress(FileNotFoundError):
            os.truncate(_log_file(log_dir, name), 0)
        for _, backup in _backups(log_dir, name):
            backup.unlink(missing_ok=True)
    return flushed


def read_last_lines(path: Path, count: int, *, chunk_size: int = READ_CHUNK) -> list[str]:
    """The last `count` lines of a file, read backwards from its end one chunk at a time."""
    if count <= 0:
        return []
    data = b""
    try:
        with path.open("rb") as file:
            position = file.seek(0, os.SEEK_END)
            # count + 1 newlines guarantee `count` whole lines even when the first chunk starts mid-line.
            while position > 0 and data.count(b"\n") <= count:
                step = min(chunk_size, position)
                position -= step
                file.seek(position)
                data = file.read(step) + data
    except OSError:  # missing or unreadable: nothing to show, and callers report errors with this
        return []
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    return [piece.decode("utf-8", "replace") for piece in pieces[-count:]]


class _FollowedFile:
    """One file being followed: an open handle, its inode, and any half-written last line."""

    def __init__(self, path: Path, *, from_end: bool) -> None:
        self.path = path
        self.file: BinaryIO | None = None
        self.inode = -1
        self.partial = b""
        self._reopen(from_end=from_end)

    def read_new(self) -> list[str]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            stat = None  # mid-rotation or deleted: finish what the open handle still has
        pending = self.partial
        if self.file is not None:
            if stat is not None and stat.st_ino == self.inode and stat.st_size < self.file.tell():
                self.file.seek(0)  # emptied by a flush: everything in it now is new
                pending = b""
            pending += self.file.read()
        if stat is not None and stat.st_ino != self.inode:
            # Rotated: the old file is complete, the new one is read from its start.
            if pending and not pending.endswith(b"\n"):
                pending += b"\n"
            self._reopen(from_end=False)
            if self.file is not None:
                pending += self.file.read()
        *lines, self.partial = pending.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    def _reopen(self, *, from_end: bool) -> None:
        try:
            file = self.path.open("rb")
        except FileNotFoundError:
            return
        self.close()
        self.file, self.inode = file, os.fstat(file.fileno()).st_ino
        if from_end:
            file.seek(0, os.SEEK_END)


def _log_file(log_dir: Path, name: str) -> Path:
    return log_dir / f"{name}.log"


def _backups(log_dir: Path, name: str) -> list[tuple[int, Path]]:
    """Existing rotated files of a process, newest (.1) first."""
    found = []
    for path in log_dir.glob(f"{name}.log.*"):  # names hold no glob characters (see _NAME)
        suffix = path.name[len(name) + len(".log."):]
        if suffix.isdigit():
            found.append((int(suffix), path))
    return sorted(found)


def _last_lines_with_backups(log_dir: Path, name: str, count: int) -> list[str]:
    # Right after a rotation the current file is nearly empty: take the rest from the backups.
    lines: list[str] = []
    for path in [_log_file(log_dir, name), *(path for _, path in _backups(log_dir, name))]:
        if len(lines) >= count:
            break
        lines = read_last_lines(path, count - len(lines)) + lines
    return lines


def _order_keys(lines: list[str]) -> list[float]:
    """A sort key per line: its timestamp, or the one before it (the first one for leading lines)."""
    stamps = [_timestamp(line) for line in lines]
    current = next((stamp for stamp in stamps if stamp is not None), -math.inf)
    keys = []
    for stamp in stamps:
        current = stamp if stamp is not None else current
        keys.append(current)
    return keys


_JSON_TIME = '{"time": "'  # log_format = "json" puts the time first (boltlink.logformat)


def _timestamp(line: str) -> float | None:
    match = _TIMESTAMP.match(line, len(_JSON_TIME) if line.startswith(_JSON_TIME) else 0)
    if match is None:
        return None
    try:
        moment = datetime.fromisoformat(match.group(0).replace(",", "."))
    except ValueError:
        return None
    if moment.tzinfo is None:  # all our processes log in one zone; compare naive stamps as UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part]
