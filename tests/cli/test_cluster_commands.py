"""The cluster commands where no cluster is needed: nothing running, bad flags, `startup`.

Run in-process with CliRunner; nothing here starts a process (the real
cluster is in tests/cluster/).
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

import boltlink
import boltlink.cluster.process
from boltlink.cluster.runfiles import RunFiles

Run = Callable[..., Result]
PYZ = "/opt/boltlink.pyz"


def one_error_line(result: Result) -> str:
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("boltlink: ")
    return lines[0]


# -- nothing running -------------------------------------------------------------------------


def test_stop_when_nothing_runs_says_so_and_exits_0(run: Run, data_dir: Path) -> None:
    result = run("stop")

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == f"boltlink is not running for {data_dir}: nothing to stop"


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["reload"], ["restart"],
                                     ["scale", "api", "+1"]])
def test_commands_that_need_a_master_say_none_runs(run: Run, data_dir: Path, command: list[str]) -> None:
    result = run(*command)

    assert result.exit_code == 3, result.output
    assert one_error_line(result) == f"boltlink: boltlink is not running for {data_dir}"


def test_scale_takes_a_negative_count_as_a_count(run: Run) -> None:
    result = run("scale", "api", "-1")  # not "No such option: -1"

    assert result.exit_code == 3, result.output
    assert "not running" in one_error_line(result)


def test_a_stale_pidfile_is_not_a_running_master(run: Run, data_dir: Path) -> None:
    run_dir = data_dir / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "boltlink.pid").write_text("999999\n")  # no process holds its lock
    (run_dir / "boltlink.sock").write_text("")

    status = run("status")
    stop = run("stop")

    assert status.exit_code == 3 and "not running" in status.stderr
    assert stop.exit_code == 0 and "nothing to stop" in stop.stderr


# -- start-cluster refusing before it starts anything ---------------------------------------------


@pytest.mark.parametrize("value", ["0", "lots", "-2"])
def test_start_cluster_refuses_a_bad_instance_count(run: Run, value: str) -> None:
    result = run("start-cluster", "-i", value)

    assert result.exit_code == 2, result.output
    assert "-i" in result.stderr
    assert "Traceback" not in result.output


def test_start_cluster_refuses_a_bad_config_value_naming_it(run: Run, data_dir: Path) -> None:
    result = run("start-cluster", env={"BOLTLINK_LISTEN_TIMEOUT": "soon"})

    assert result.exit_code == 2, result.output
    assert "BOLTLINK_LISTEN_TIMEOUT" in one_error_line(result)
    assert not (data_dir / "run" / "boltlink.pid").exists()


def test_start_cluster_while_a_master_holds_the_lock_says_already_running(run: Run, data_dir: Path) -> None:
    holder = RunFiles(data_dir / "run")
    holder.acquire()  # this test process plays the running master
    try:
        result = run("start-cluster", "--port", "0")
    finally:
        holder.release()

    assert result.exit_code == 1, result.output
    line = one_error_line(result)
    assert "already running" in line and f"master pid {os.getpid()}" in line


# -- startup -----------------------------------------------------------------------------------------


def test_startup_refuses_to_run_from_a_checkout(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(Path(boltlink.__file__).with_name("__main__.py"))])  # python -m boltlink

    result = run("startup")

    assert result.exit_code == 2, result.output
    assert "run startup from the built boltlink.pyz, not from a checkout" in one_error_line(result)


@pytest.fixture
def from_pyz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boltlink.cluster.process, "boltlink_command", lambda: [sys.executable, PYZ])


@pytest.mark.usefixtures("from_pyz")
def test_startup_prints_a_unit_running_this_pyz_in_the_foreground(run: Run, data_dir: Path) -> None:
    result = run("startup")

    assert result.exit_code == 0, result.output
    unit = result.stdout
    assert f"ExecStart={sys.executable} {PYZ} --data-dir {data_dir} start-cluster --foreground\n" in unit
    assert f"User={getpass.getuser()}\n" in unit
    assert f"WorkingDirectory={data_dir}\n" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID\n" in unit
    assert "TimeoutStopSec=20\n" in unit  # kill_timeout 10 + drain_delay 0.5 + 10, whole seconds
    assert "[Install]\nWantedBy=multi-user.target" in unit


@pytest.mark.usefixtures("from_pyz")
def test_startup_unit_keeps_the_config_file_and_user(run: Run, tmp_path: Path, data_dir: Path) -> None:
    config = tmp_path / "boltlink.toml"
    config.write_text("kill_timeout = 30\n")

    result = run("--config", "boltlink.toml", "startup", "--user", "boltlink")

    assert result.exit_code == 0, result.output
    assert (f"ExecStart={sys.executable} {PYZ} --data-dir {data_dir} --config {config} "
            "start-cluster --foreground\n") in result.stdout
    assert "User=boltlink\n" in result.stdout
    assert "TimeoutStopSec=40\n" in result.stdout
