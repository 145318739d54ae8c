"""The two ends of the click queue: API workers emit into a sink, the aggregator reads a source."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Literal

from boltlink.events.model import ClickEvent

Health = Literal["ok", "degraded", "failing"]


class EventSink(abc.ABC):
    """Where a redirect's event goes. emit() returns only once the event is durable."""

    async def open(self) -> None:  # noqa: B027 - most sinks need no set-up
        """Prepare to emit (open files, connect)."""

    @abc.abstractmethod
    async def emit(self, event: ClickEvent) -> None:
        """Queue the event; when this returns, a crash of this process cannot lose it."""

    async def close(self) -> None:  # noqa: B027
        """Flush and release what open() took."""

    def health(self) -> tuple[Health, str]:
        """For /ready: "ok"; "degraded" (events are safe, but not where they should be); or
        "failing" (events are being lost) — with a word on why."""
        return "ok", "ok"


@dataclass
class EventBatch:
    """Events read from a source, with what ack() needs to mark them consumed."""

    events: list[ClickEvent]
    source: str  # the consumer_offsets source name ("spool"), or "" when offsets are not stored
    offsets: dict[str, int] = field(default_factory=dict)  # stored with the counters, same transaction
    receipts: list[str] = field(default_factory=list)  # e.g. Redis entry ids to XACK after commit
    malformed: int = 0  # lines that were not events (skipped, and logged by the source)


class EventSource(abc.ABC):
    """What the aggregator consumes. read() -> store.record_clicks(..., offsets) -> ack().

    read() moves on from the last batch read, acked or not, so the aggregator
    can read the next batch while the last one commits; ack() comes in read
    order. rewind() takes back every batch read but not acked (its commit
    failed): the next read starts again at the oldest of them.
    """

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, and load where the last run stopped."""

    @abc.abstractmethod
    async def read(self, max_events: int, wait: float) -> EventBatch:
        """Up to max_events events, waiting at most `wait` seconds for the first one."""

    @abc.abstractmethod
    async def ack(self, batch: EventBatch) -> None:
        """The batch is committed: let it go (XACK; delete finished spool files)."""

    @abc.abstractmethod
    def rewind(self) -> None:
        """Read again, from the oldest event not acked."""

    async def close(self) -> None:  # noqa: B027
        """Release connections."""

    def backlog(self) -> int | None:
        """Events known to be waiting (for lag figures), or None when unknown."""
        return None
