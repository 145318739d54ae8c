"""The master's pidfile lock, as `status` and `stop` read it while a master may be exiting."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from boltlink.cluster import runfiles
from boltlink.cluster.runfiles import RunFiles


def test_a_running_master_is_found_by_its_lock(tmp_path: Path) -> None:
    master = RunFiles(tmp_path / "run")
    master.acquire()
    try:
        assert RunFiles(tmp_path / "run").running_pid() == os.getpid()
    finally:
        master.release()
    assert RunFiles(tmp_path / "run").running_pid() is None


def test_a_master_removing_its_pidfile_mid_read_still_gives_its_pid(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`stop` once failed with FileNotFoundError (exit 70) when the master exited between the two reads."""
    master = RunFiles(tmp_path / "run")
    master.acquire()
    real_flock = fcntl.flock

    def flock_as_the_master_exits(fd: int, operation: int) -> None:
        if operation & fcntl.LOCK_SH:
            master.pidfile.unlink()  # the master's release() runs right now
        real_flock(fd, operation)

    monkeypatch.setattr(runfiles.fcntl, "flock", flock_as_the_master_exits)
    try:
        assert RunFiles(tmp_path / "run").running_pid() == os.getpid()
    finally:
        monkeypatch.undo()
        master.release()
