"""The connection board: how many connections each API worker holds, shared through a small file.

Every API worker accepts from the one socket the master bound, and which
worker wins a new connection is otherwise a race: measured here, 64
connections arriving together split 43/21 and as badly as 64/0. With the
board a worker that already holds more connections than the least-loaded
accepting peer steps back for a moment, so connections, and under load the
requests they carry, spread evenly (as nginx's accept_disabled does).

The master creates the file and hands each API process a slot; a worker
writes only its own slot (-1 while it does not accept), and reads the rest.
Item 0 holds the highest slot in use, so a reader looks at no more than that.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

SLOTS = 1024
_ITEM = 8
NOT_ACCEPTING = -1


class ConnectionBoard:
    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT | os.O_TRUNC if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, SLOTS * _ITEM)
            self._map = mmap.mmap(fd, SLOTS * _ITEM)
        finally:
            os.close(fd)
        self._counts = memoryview(self._map).cast("q")  # one aligned 8-byte store per update
        if create:
            self._counts[0] = 0
            for slot in range(1, SLOTS):
                self._counts[slot] = NOT_ACCEPTING

    def set(self, slot: int, connections: int) -> None:
        self._counts[slot] = connections

    def least_loaded_peer(self, slot: int) -> int | None:
        """The fewest connections held by another accepting worker, or None when there is none."""
        fewest = None
        counts = self._counts
        for index in range(1, counts[0] + 1):
            count = counts[index]
            if index != slot and count >= 0 and (fewest is None or count < fewest):
                fewest = count
        return fewest

    def close(self) -> None:
        self._counts.release()
        self._map.close()


class SlotAllocator:
    """The master's side: a free slot per API process, released (set NOT_ACCEPTING) when it exits."""

    def __init__(self, board: ConnectionBoard) -> None:
        self.board = board
        self._taken: set[int] = set()

    def take(self) -> int:
        slot = next(i for i in range(1, SLOTS) if i not in self._taken)
        self._taken.add(slot)
        self.board.set(slot, NOT_ACCEPTING)
        self.board.set(0, max(self._taken))
        return slot

    def release(self, slot: int) -> None:
        self._taken.discard(slot)
        self.board.set(slot, NOT_ACCEPTING)
