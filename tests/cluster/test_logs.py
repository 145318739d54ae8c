"""Per-process log files: the master's rotating writer, and tail / follow / flush for the CLI."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest

from boltlink.cluster.logs import (
    ProcessLogs,
    flush_logs,
    follow,
    log_names,
    read_last_lines,
    select_names,
    tail,
)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def sizes(log_dir: Path, name: str) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in log_dir.iterdir() if p.name.startswith(f"{name}.log")}


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def writer(log_dir: Path) -> Iterator[ProcessLogs]:
    logs = ProcessLogs(log_dir, max_bytes=200, backups=5)
    yield logs
    logs.close()


def test_write_appends_one_line_each_with_exactly_one_newline(writer: ProcessLogs, log_dir: Path) -> None:
    writer.write("api-0", "first")
    writer.write("api-0", "second\n")
    assert (log_dir / "api-0.log").read_text() == "first\nsecond\n"


def test_rotation_keeps_five_backups_each_within_max_bytes(writer: ProcessLogs, log_dir: Path) -> None:
    for number in range(300):
        writer.write("api-0", f"line {number:04d} " + "x" * 20)
    assert sorted(sizes(log_dir, "api-0")) == ["api-0.log"] + [f"api-0.log.{i}" for i in range(1, 6)]
    assert all(size <= 200 for size in sizes(log_dir, "api-0").values())
    # Newest in api-0.log, then .1, .2 … older, with no gap between consecutive files.
    newest = (log_dir / "api-0.log").read_text().splitlines()
    assert newest[-1].startswith("line 0299")
    previous = (log_dir / "api-0.log.1").read_text().splitlines()
    assert int(previous[-1].split()[1]) + 1 == int(newest[0].split()[1])


def test_a_long_burst_never_exceeds_the_bound(log_dir: Path) -> None:
    logs = ProcessLogs(log_dir, max_bytes=1000, backups=3)
    names = ["master", "api-0", "api-1"]
    for number in range(6000):
        name = names[number % 3]
        # Lengths vary, and now and then one line alone is larger than a whole file.
        logs.write(name, "y" * (5000 if number % 997 == 0 else number % 150))
        if number % 100 == 0:
            for process in names:
                assert sum(sizes(log_dir, process).values()) <= 4 * 1000
    logs.close()
    assert all(size <= 1000 for process in names for size in sizes(log_dir, process).values())


def test_no_backups_means_one_file(log_dir: Path) -> None:
    logs = ProcessLogs(log_dir, max_bytes=50, backups=0)
    for number in range(20):
        logs.write("aggregator", f"line {number}")
    logs.close()
    assert list(sizes(log_dir, "aggregator")) == ["aggregator.log"]
    assert (log_dir / "aggregator.log").read_text().splitlines()[-1] == "line 19"


def test_a_deleted_log_is_created_again(writer: ProcessLogs, log_dir: Path) -> None:
    writer.write("api-0", "before")
    (log_dir / "api-0.log").unlink()
    writer.write("api-0", "after")
    assert (log_dir / "api-0.log").read_text() == "after\n"


def test_a_failing_write_loses_the_line_not_the_master(writer: ProcessLogs, log_dir: Path) -> None:
    (log_dir / "api-0.log").mkdir()  # opening it fails even for root, like a full disk would
    writer.write("api-0", "lost")
    (log_dir / "api-0.log").rmdir()
    writer.write("api-0", "kept")
    assert (log_dir / "api-0.log").read_text() == "kept\n"


def test_names_that_are_not_file_names_are_refused(writer: ProcessLogs) -> None:
    with pytest.raises(ValueError):
        writer.write("../escape", "x")


def test_log_names_master_first_then_natural_order(log_dir: Path) -> None:
    log_dir.mkdir()
    for name in ["api-10.log", "api-2.log", "aggregator.log", "master.log", "api-2.log.1", "notes.txt"]:
        (log_dir / name).touch()
    assert log_names(log_dir) == ["master", "aggregator", "api-2", "api-10"]
    assert log_names(log_dir / "missing") == []


def test_a_role_selects_every_numbered_process_of_it() -> None:
    known = ["master", "aggregator", "api-2", "api-10", "apix-0"]
    assert select_names(known, ["api"]) == ["api-2", "api-10"]
    assert select_names(known, ["api-10", "master"]) == ["master", "api-10"]
    assert select_names(known, None) == known
    assert select_names(known, ["ap"]) == []


def test_read_last_lines_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text("".join(f"line {n}\n" for n in range(100)))
    expected = [f"line {n}" for n in range(95, 100)]
    for chunk_size in (1, 3, 7, 64, 100_000):
        assert read_last_lines(path, 5, chunk_size=chunk_size) == expected
    assert read_last_lines(path, 500, chunk_size=7) == [f"line {n}" for n in range(100)]
    assert read_last_lines(path, 0) == []
    path.write_text("a\nb\nhalf")  # a last line still being written counts as a line
    assert read_last_lines(path, 2, chunk_size=2) == ["b", "half"]
    assert read_last_lines(tmp_path / "missing.log", 5) == []


def test_tail_reads_only_the_end_of_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    with path.open("wb") as file:  # 200 MB of (sparse) zeros, then the lines we want
        file.truncate(200 * 1024 * 1024)
        file.seek(0, os.SEEK_END)
        file.write(b"".join(b"line %d\n" % n for n in range(20_000)))
    before = _bytes_read()
    assert read_last_lines(path, 15) == [f"line {n}" for n in range(19_985, 20_000)]
    assert _bytes_read() - before < 1024 * 1024


def _bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_tail_takes_the_last_lines_of_each_file_larger_than_a_chunk(log_dir: Path) -> None:
    log_dir.mkdir()
    (log_dir / "api-0.log").write_text("".join(f"api line {n:06d} {'z' * 40}\n" for n in range(5000)))
    (log_dir / "master.log").write_text("started\n")
    assert (log_dir / "api-0.log").stat().st_size > 64 * 1024
    result = tail(log_dir, ["api-0"], 3)
    assert [line.split()[2] for _, line in result] == ["004997", "004998", "004999"]
    assert {name for name, _ in tail(log_dir, None, 3)} == {"master", "api-0"}


def test_tail_continues_into_the_newest_backup_after_a_rotation(writer: ProcessLogs, log_dir: Path) -> None:
    for number in range(12):
        writer.write("api-0", f"line {number:02d} " + "x" * 40)  # 4 lines per file
    assert [line[:7] for _, line in tail(log_dir, None, 6)] == [f"line {n:02d}" for n in range(6, 12)]


def test_tail_merges_files_by_timestamp(log_dir: Path) -> None:
    log_dir.mkdir()
    (log_dir / "master.log").write_text(
        "2026-11-29T04:40:50+0000 INFO master started\n"
        "2026-11-29T04:40:53+0000 INFO api-1 respawned\n")
    (log_dir / "api-0.log").write_text(
        "2026-11-29T04:40:51+0000 INFO listening\n"
        "2026-11-29T04:40:54+0000 ERROR boom\n"
        "Traceback (most recent call last):\n"
        "ValueError: x\n"
        "2026-11-29T04:40:56+0000 INFO recovered\n")
    (log_dir / "api-1.log").write_text(  # another zone and a naive stamp, both comparable
        "2026-11-29T05:40:52+01:00 INFO listening\n"
        "2026-11-29 04:40:55,120 INFO naive\n")
    (log_dir / "aggregator.log").write_text("no timestamps here\nat all\n")
    merged = [(name, line.split(" ", 1)[-1]) for name, line in tail(log_dir, None, 10)]
    assert merged == [
        ("aggregator", "timestamps here"), ("aggregator", "all"),
        ("master", "INFO master started"),
        ("api-0", "INFO listening"),
        ("api-1", "INFO listening"),
        ("master", "INFO api-1 respawned"),
        ("api-0", "ERROR boom"), ("api-0", "(most recent call last):"), ("api-0", "x"),
        ("api-1", "04:40:55,120 INFO naive"),  # split() cut only the date
        ("api-0", "INFO recovered"),
    ]


class Follower:
    """follow() running in a thread, collecting what it yields, stopped on exit."""

    def __init__(self, log_dir: Path, names: list[str] | None = None) -> None:
        self.log_dir, self.names = log_dir, names
        self.lines: list[tuple[str, str]] = []
        self.polls = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _stopped(self) -> bool:
        self.polls += 1
        return self._stop.is_set()

    def _run(self) -> None:
        try:
            for item in follow(self.log_dir, self.names, poll_interval=0.005, stop=self._stopped):
                self.lines.append(item)
        except BaseException as exc:  # surfaced in the test thread by __exit__
            self.failure = exc

    def __enter__(self) -> Follower:
        self._thread.start()
        # stop() runs before each pass: a second call means the files present at the start were found.
        wait_until(lambda: self.polls >= 2)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()
        if self.failure is not None:
            raise self.failure

    def wait_for(self, count: int) -> list[tuple[str, str]]:
        wait_until(lambda: len(self.lines) >= count or self.failure is not None)
        return self.lines


def test_follow_yields_appended_lines_only(writer: ProcessLogs, log_dir: Path) -> None:
    writer.write("master", "old line")
    with Follower(log_dir) as follower:
        writer.write("master", "new 1")
        writer.write("master", "new 2")
        assert follower.wait_for(2) == [("master", "new 1"), ("master", "new 2")]


def test_follow_picks_up_a_new_file_from_its_start(writer: ProcessLogs, log_dir: Path) -> None:
    writer.write("master", "old line")
    with Follower(log_dir, ["api"]) as follower:
        writer.write("api-3", "scaled up")
        writer.write("master", "not selected")
        writer.write("api-3", "serving")
        assert follower.wait_for(2) == [("api-3", "scaled up"), ("api-3", "serving")]


def test_follow_survives_rotation_without_losing_lines(writer: ProcessLogs, log_dir: Path) -> None:
    writer.write("api-0", "old line")
    expected = []
    with Follower(log_dir) as follower:
        # 42-byte lines, 4 to a 200-byte file: each batch rotates once, and the follower catches up
        # before the next (two rotations between polls would skip the middle file, as with tail -F).
        for batch in range(4):
            for number in range(4):
                line = f"batch {batch} line {number} " + "x" * 26
                writer.write("api-0", line)
                expected.append(("api-0", line))
            follower.wait_for(len(expected))
        assert (log_dir / "api-0.log.3").exists()
        assert follower.lines == expected


def test_follow_rereads_a_flushed_file_from_its_start(writer: ProcessLogs, log_dir: Path) -> None:
    writer.write("api-0", "a fairly long line written before the flush")
    with Follower(log_dir) as follower:
        writer.write("api-0", "before flush")
        follower.wait_for(1)
        writer.flush()
        writer.write("api-0", "after")
        assert follower.wait_for(2) == [("api-0", "before flush"), ("api-0", "after")]


def test_flush_empties_logs_and_writing_goes_on(writer: ProcessLogs, log_dir: Path) -> None:
    for number in range(40):
        writer.write("api-0", f"line {number} " + "x" * 30)
        writer.write("master", f"line {number}")
    assert (log_dir / "api-0.log.2").exists()
    assert writer.flush() == ["master", "api-0"]
    assert sizes(log_dir, "api-0") == {"api-0.log": 0}
    assert sizes(log_dir, "master") == {"master.log": 0}
    writer.write("api-0", "after")
    assert (log_dir / "api-0.log").read_bytes() == b"after\n"  # at offset 0: no hole of NULs


def test_flush_from_another_process_while_the_master_writes(writer: ProcessLogs, log_dir: Path) -> None:
    writer.write("api-0", "old api line")
    writer.write("master", "old master line")
    assert flush_logs(log_dir, ["api"]) == ["api-0"]  # what the CLI does, without the master's writer
    writer.write("api-0", "after")
    assert (log_dir / "api-0.log").read_bytes() == b"after\n"
    assert (log_dir / "master.log").read_text() == "old master line\n"


def test_tail_merges_json_lines_by_their_time_field(log_dir: Path) -> None:
    log_dir.mkdir()  # log_format = "json": the time is the first field, not the start of the line
    (log_dir / "master.log").write_text('{"time": "2026-11-29T04:40:50.000+00:00", "message": "a"}\n'
                                        '{"time": "2026-11-29T04:40:52.500+00:00", "message": "c"}\n')
    (log_dir / "api-0.log").write_text('{"time": "2026-11-29T04:40:51.000+00:00", "message": "b"}\n')
    assert [json.loads(line)["message"] for _, line in tail(log_dir, None, 10)] == ["a", "b", "c"]
