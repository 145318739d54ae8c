"""The embedded click queue: SpoolWriter appends, SpoolReader reads each event once and cleans up.

Writers that die are real child processes killed with SIGKILL, because the
claims under test (nothing lost, files removed once their writer is gone)
rest on what the kernel does with a dead process's pages and locks.
"""

from __future__ import annotations

import fcntl
import os
import resource
import signal
import time
from pathlib import Path

import pytest

from boltlink.events.base import EventBatch
from boltlink.events.model import ClickEvent
from boltlink.events.spool import SOURCE, EventQueueError, SpoolReader, SpoolWriter, spool_files


def event(n: int) -> ClickEvent:
    """Event n (see number()); every event's line has the same length."""
    return ClickEvent(id=f"ev{n:08d}", link_id=7, at=1_700_000_000.0 + n, referrer="https://example.com/",
                      user_agent="Mozilla/5.0 test", bot=False, ip="203.0.113.0", country=None)


LINE = len(event(0).encode())


def number(e: ClickEvent) -> int:
    return int(e.id.removeprefix("ev"))


async def open_reader(directory: Path, store) -> SpoolReader:
    reader = SpoolReader(directory, store)
    await reader.open()
    return reader


async def consume(reader: SpoolReader, store, batch_size: int = 1000) -> list[int]:
    """What the aggregator does until the spool is empty: read, commit the offsets, ack."""
    seen: list[int] = []
    while True:
        batch = await reader.read(batch_size, wait=0)
        if not batch.events and not batch.offsets:
            return seen
        store.commit(batch.source, batch.offsets)
        await reader.ack(batch)
        seen.extend(number(e) for e in batch.events)


def hand_written(directory: Path, content: bytes, name: str = "hand") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{time.time_ns():020d}-{name}-{os.getpid()}-0.events"
    path.write_bytes(content)
    return path


def live_writer_lock(path: Path) -> int:
    """Hold the file the way a running SpoolWriter does."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def fork_writer(directory: Path, count: int, then: str) -> tuple[int, int]:
    """A child process that writes `count` events, reports on a pipe, then kills itself or waits to be killed."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            writer = SpoolWriter(directory, "child", 1 << 30)
            for n in range(count):
                writer.write(event(n).encode())
            if then == "kill-self":  # right after the last write() returned: no close, no flush
                os.kill(os.getpid(), signal.SIGKILL)
            os.write(write_end, b"written\n")
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(write_end)
    return pid, read_end


def reap(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return status


async def test_events_are_read_once_in_order_across_files(tmp_path, offset_store):
    writer = SpoolWriter(tmp_path, "api", max_bytes=5 * LINE)
    for n in range(53):
        writer.write(event(n).encode())
    assert len(spool_files(tmp_path)) == 11
    reader = await open_reader(tmp_path, offset_store)
    assert await consume(reader, offset_store, batch_size=7) == list(range(53))
    assert (await reader.read(100, wait=0)).events == []
    writer.finish_file()


async def test_a_half_written_last_line_is_left_until_it_is_complete(tmp_path, offset_store):
    first, second, third = (event(n).encode() for n in range(3))
    path = hand_written(tmp_path, first + second + third[:40])
    fd = live_writer_lock(path)
    try:
        reader = await open_reader(tmp_path, offset_store)
        assert await consume(reader, offset_store) == [0, 1]
        assert (await reader.read(100, wait=0)).events == []  # still half a line
        os.write(fd, third[40:])
        batch = await reader.read(100, wait=0)
        assert [number(e) for e in batch.events] == [2]
        assert batch.malformed == 0
        assert batch.offsets == {path.name: 3 * LINE}
    finally:
        os.close(fd)


async def test_a_batch_limit_splits_a_file_and_the_next_read_continues_after_it(tmp_path, offset_store):
    writer = SpoolWriter(tmp_path, "api", max_bytes=1 << 20)
    for n in range(10):
        writer.write(event(n).encode())
    [path] = spool_files(tmp_path)
    reader = await open_reader(tmp_path, offset_store)
    batch = await reader.read(4, wait=0)
    assert [number(e) for e in batch.events] == [0, 1, 2, 3]
    assert batch.offsets == {path.name: 4 * LINE}
    # Read ahead while the first batch commits: the next events, and their end offset.
    ahead = await reader.read(4, wait=0)
    assert [number(e) for e in ahead.events] == [4, 5, 6, 7]
    assert ahead.offsets == {path.name: 8 * LINE}
    # Neither acked (the commit failed): rewound, the same events come again, nothing skipped.
    reader.rewind()
    again = await reader.read(4, wait=0)
    assert [number(e) for e in again.events] == [0, 1, 2, 3]
    offset_store.commit(again.source, again.offsets)
    await reader.ack(again)
    reader.rewind()  # a later failure goes back only to what was acked
    assert [number(e) for e in (await reader.read(4, wait=0)).events] == [4, 5, 6, 7]
    writer.finish_file()


@pytest.mark.parametrize("crash", ["after-commit-before-ack", "before-commit"])
async def test_a_restarted_reader_continues_where_the_committed_offsets_say(tmp_path, offset_store, crash):
    writer = SpoolWriter(tmp_path, "api", max_bytes=4 * LINE)
    for n in range(30):
        writer.write(event(n).encode())
    first = await open_reader(tmp_path, offset_store)
    recorded: list[int] = []
    for _ in range(2):
        batch = await first.read(6, wait=0)
        offset_store.commit(batch.source, batch.offsets)  # record_clicks: events and offsets together
        recorded.extend(number(e) for e in batch.events)
        await first.ack(batch)
    batch = await first.read(6, wait=0)  # the batch in flight when the aggregator dies
    if crash == "after-commit-before-ack":
        offset_store.commit(batch.source, batch.offsets)
        recorded.extend(number(e) for e in batch.events)

    second = await open_reader(tmp_path, offset_store)
    recorded.extend(await consume(second, offset_store, batch_size=5))
    assert recorded == list(range(30))  # none twice, none skipped, in order
    writer.finish_file()


async def test_offsets_of_files_deleted_before_forget_offsets_ran_are_dropped(tmp_path, offset_store):
    path = hand_written(tmp_path, event(0).encode())
    offset_store.commit(SOURCE, {path.name: LINE, "00000000000000000001-gone-1-0.events": 999})
    reader = await open_reader(tmp_path, offset_store)
    assert reader.offsets == {path.name: LINE}
    assert await offset_store.consumer_offsets(SOURCE) == {path.name: LINE}


async def test_a_live_writers_file_is_kept_and_removed_once_the_writer_is_killed(tmp_path, offset_store):
    pid, report = fork_writer(tmp_path, 20, then="wait")
    try:
        assert os.read(report, 100) == b"written\n"
        [child_file] = spool_files(tmp_path)
        reader = await open_reader(tmp_path, offset_store)
        assert await consume(reader, offset_store) == list(range(20))
        await reader.ack(EventBatch(events=[], source=SOURCE))
        assert child_file.exists()  # consumed to the end, but its writer may still append
    finally:
        os.kill(pid, signal.SIGKILL)
        reap(pid)
        os.close(report)
    # The replacement worker's first click makes the aggregator commit and ack again.
    replacement = SpoolWriter(tmp_path, "replacement", 1 << 20)
    replacement.write(event(20).encode())
    assert await consume(reader, offset_store) == [20]
    assert not child_file.exists()
    assert spool_files(tmp_path) == [tmp_path / replacement_name(tmp_path)]
    assert await offset_store.consumer_offsets(SOURCE) == {replacement_name(tmp_path): LINE}
    replacement.finish_file()


def replacement_name(directory: Path) -> str:
    [name] = [p.name for p in spool_files(directory) if "-replacement-" in p.name]
    return name


async def test_a_finished_file_is_removed_once_consumed(tmp_path, offset_store):
    writer = SpoolWriter(tmp_path, "api", max_bytes=1 << 20)
    for n in range(5):
        writer.write(event(n).encode())
    reader = await open_reader(tmp_path, offset_store)
    assert await consume(reader, offset_store) == list(range(5))
    assert len(spool_files(tmp_path)) == 1  # the writer holds it
    writer.finish_file()  # rotation or a clean shutdown
    writer.write(event(5).encode())  # starts a new file
    assert await consume(reader, offset_store) == [5]
    assert len(spool_files(tmp_path)) == 1
    assert await offset_store.consumer_offsets(SOURCE) == {spool_files(tmp_path)[0].name: LINE}
    writer.finish_file()


async def test_a_writer_killed_right_after_write_returned_loses_nothing(tmp_path, offset_store):
    pid, report = fork_writer(tmp_path, 500, then="kill-self")
    status = reap(pid)
    os.close(report)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    reader = await open_reader(tmp_path, offset_store)
    assert await consume(reader, offset_store, batch_size=128) == list(range(500))
    assert spool_files(tmp_path) == []  # its writer is dead, so the consumed file went


async def test_the_spool_stays_bounded_while_the_reader_keeps_up(tmp_path, offset_store):
    writer = SpoolWriter(tmp_path, "api", max_bytes=3 * LINE)
    reader = await open_reader(tmp_path, offset_store)
    most_files, seen = 0, []
    for n in range(600):
        writer.write(event(n).encode())
        most_files = max(most_files, len(list(tmp_path.iterdir())))
        if n % 5 == 4:
            seen.extend(await consume(reader, offset_store, batch_size=4))
    assert seen == list(range(600))
    assert most_files <= 3
    assert len(list(tmp_path.iterdir())) <= 1
    assert len(await offset_store.consumer_offsets(SOURCE)) <= 1  # offsets of deleted files are forgotten
    writer.finish_file()


async def test_malformed_lines_are_skipped_and_counted(tmp_path, offset_store):
    lines = [event(0).encode(), b"garbage\n", event(1).encode(), b"{}\n", b"\n", b"[1,2]\n", event(2).encode()]
    path = hand_written(tmp_path, b"".join(lines))
    reader = await open_reader(tmp_path, offset_store)
    batch = await reader.read(100, wait=0)
    assert [number(e) for e in batch.events] == [0, 1, 2]
    assert batch.malformed == 4
    assert batch.offsets == {path.name: path.stat().st_size}
    offset_store.commit(batch.source, batch.offsets)
    await reader.ack(batch)
    assert not path.exists()


async def test_a_dead_writers_torn_last_line_does_not_keep_its_file_forever(tmp_path, offset_store):
    # A disk that filled mid-line can leave a line with no end; its writer is gone, so it will never end.
    path = hand_written(tmp_path, event(0).encode() + event(1).encode() + event(2).encode()[:50])
    reader = await open_reader(tmp_path, offset_store)
    assert await consume(reader, offset_store) == [0, 1]
    assert not path.exists()
    assert await offset_store.consumer_offsets(SOURCE) == {}


async def test_a_disk_that_fills_mid_line_loses_only_the_events_that_were_refused(tmp_path, offset_store):
    limit = 5 * LINE + LINE // 2  # the sixth line is cut in half
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of dying
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            writer = SpoolWriter(tmp_path, "full", 1 << 30)
            written = 0
            try:
                for n in range(100):
                    writer.write(event(n).encode())
                    written += 1
            except EventQueueError as exc:
                os.write(write_end, f"{written}|{writer.health()[0]}|{exc.detail}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        written, health, detail = pipe.read().decode().split("|")
    reap(pid)
    assert (int(written), health) == (5, "failing")
    assert "File too large" in detail and str(tmp_path) in detail
    reader = await open_reader(tmp_path, offset_store)
    assert await consume(reader, offset_store) == [0, 1, 2, 3, 4]
    assert spool_files(tmp_path) == []


async def test_an_unwritable_spool_fails_loudly_and_recovers(tmp_path, offset_store):
    # Tests run as root, where chmod does not stop writes: a path below a regular file cannot be created by anyone.
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    spool = blocker / "spool"
    writer = SpoolWriter(spool, "api", max_bytes=1 << 20)
    with pytest.raises(EventQueueError) as caught:
        writer.write(event(0).encode())
    assert str(spool) in caught.value.detail and "cannot write click events" in caught.value.detail
    state, detail = writer.health()
    assert state == "failing" and detail == caught.value.detail

    blocker.unlink()  # the operator fixes the data directory
    writer.write(event(1).encode())
    assert writer.health() == ("ok", "spool ok")
    reader = await open_reader(spool, offset_store)
    assert await consume(reader, offset_store) == [1]
    writer.finish_file()


def test_a_failing_spool_reports_ok_again_once_it_can_be_written_without_waiting_for_a_click(tmp_path):
    # /ready keeps redirects away from a failing worker: the recovery must show without one coming through.
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    writer = SpoolWriter(blocker / "spool", "api", max_bytes=1 << 20)
    with pytest.raises(EventQueueError):
        writer.write(event(0).encode())
    assert writer.health()[0] == "failing"  # still: the probe cannot write either
    blocker.unlink()
    assert writer.health() == ("ok", "spool ok")
    assert spool_files(blocker / "spool") == [] and list((blocker / "spool").iterdir()) == []  # no probe left
