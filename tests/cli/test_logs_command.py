"""`boltlink logs`, run with CliRunner through a group that behaves like the real one."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import boltlink.cli.logs as logs_command
from boltlink.cli import BoltlinkGroup
from boltlink.cli.context import CliContext
from boltlink.cluster.logs import ProcessLogs, follow

Run = Callable[..., Result]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "logs"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("BOLTLINK_")]:
        monkeypatch.delenv(name)

    @click.group(cls=BoltlinkGroup)
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = CliContext(flags={"data_dir": str(tmp_path / "data")})

    root.add_command(logs_command.logs)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(root, ["logs", *args], prog_name="boltlink")

    return invoke


@pytest.fixture
def cluster_logs(log_dir: Path) -> Iterator[ProcessLogs]:
    """master, api-0 and api-10, three timestamped lines each, interleaved in time."""
    writer = ProcessLogs(log_dir)
    for second in range(9):
        name = ["master", "api-0", "api-10"][second % 3]
        writer.write(name, f"2026-11-29T04:40:{second:02d}+0000 INFO {name} says {second}")
    yield writer
    writer.close()


def test_prints_every_log_merged_with_padded_prefixes(run: Run, cluster_logs: ProcessLogs) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "master | 2026-11-29T04:40:00+0000 INFO master says 0",
        "api-0  | 2026-11-29T04:40:01+0000 INFO api-0 says 1",
        "api-10 | 2026-11-29T04:40:02+0000 INFO api-10 says 2",
    ]
    assert len(lines) == 9
    assert lines[-1].endswith("says 8")


def test_lines_limits_each_log(run: Run, cluster_logs: ProcessLogs) -> None:
    result = run("--lines", "1")
    assert result.exit_code == 0, result.output
    assert [line.split()[-1] for line in result.stdout.splitlines()] == ["6", "7", "8"]


def test_a_role_selects_its_processes_and_pads_to_them(run: Run, cluster_logs: ProcessLogs) -> None:
    result = run("api", "-n", "1")
    assert result.stdout.splitlines() == [
        "api-0  | 2026-11-29T04:40:07+0000 INFO api-0 says 7",
        "api-10 | 2026-11-29T04:40:08+0000 INFO api-10 says 8",
    ]
    single = run("api-0", "-n", "2")
    assert single.stdout.splitlines() == [
        "api-0 | 2026-11-29T04:40:04+0000 INFO api-0 says 4",
        "api-0 | 2026-11-29T04:40:07+0000 INFO api-0 says 7",
    ]


def test_an_unknown_name_fails_in_one_line_naming_the_known_ones(run: Run, cluster_logs: ProcessLogs) -> None:
    result = run("worker")
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr.splitlines() == ["boltlink: No logs for 'worker'; known processes: master, api-0, api-10."]


def test_no_logs_yet_is_said_and_is_not_an_error(run: Run, log_dir: Path) -> None:
    for args in [(), ("api",), ("--flush",)]:
        result = run(*args)
        assert result.exit_code == 0
        assert result.stdout == ""
        assert result.stderr.strip() == f"No logs yet in {log_dir}."


def test_flush_empties_the_selected_logs(run: Run, cluster_logs: ProcessLogs, log_dir: Path) -> None:
    result = run("api", "--flush")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Flushed the logs of api-0, api-10."
    assert (log_dir / "api-0.log").read_text() == ""
    assert (log_dir / "master.log").read_text() != ""
    result = run("--flush")
    assert result.stdout.strip() == "Flushed the logs of master, api-0, api-10."
    assert run().stdout == ""


def test_follow_prints_the_tail_then_new_lines_until_ctrl_c(
        run: Run, cluster_logs: ProcessLogs, log_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deadline = time.monotonic() + 10
    polls = 0

    def write_once_started() -> bool:
        nonlocal polls
        polls += 1
        if polls == 2:  # the first pass has found the existing files: a line, then a new worker
            cluster_logs.write("api-0", "2026-11-29T04:41:00+0000 INFO live")
            cluster_logs.write("api-11", "2026-11-29T04:41:01+0000 INFO scaled up")
        return time.monotonic() > deadline  # never hang the suite

    def following(log_dir: Path, names: list[str] | None, **_: Any) -> Iterator[tuple[str, str]]:
        for count, item in enumerate(follow(log_dir, names, poll_interval=0.005, stop=write_once_started), 1):
            yield item
            if count == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(logs_command, "follow", following)
    result = run("api", "-f", "-n", "1")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "api-0  | 2026-11-29T04:40:07+0000 INFO api-0 says 7",
        "api-10 | 2026-11-29T04:40:08+0000 INFO api-10 says 8",
        "api-0  | 2026-11-29T04:41:00+0000 INFO live",
        "api-11 | 2026-11-29T04:41:01+0000 INFO scaled up",
    ]
