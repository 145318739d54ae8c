"""The master refuses a data directory other users could write into, in one line, before it starts anything."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from boltlink.cluster.datadir import ensure_private_data_dir
from boltlink.config import Config
from boltlink.errors import ConfigError

NOBODY = 65534


def start_cluster(data_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`boltlink start-cluster` in a process of its own: were the check to fail, a cluster would really start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}
    return subprocess.run([sys.executable, "-m", "boltlink", "--data-dir", str(data_dir), "start-cluster", *flags,
                           "--port", "0", "-i", "1"], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("flags", [(), ("--foreground",)], ids=["detached", "foreground"])
@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_data_dir_writable_by_others_is_refused_with_the_fix(tmp_path: Path, mode: int, flags: tuple[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(mode)

    result = start_cluster(data, *flags)

    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("boltlink: ") and f"chmod go-w {data}" in line
    assert f"(mode {mode:04o})" in line
    assert list(data.iterdir()) == []  # no run/, no logs/: nothing was started


def test_a_run_dir_writable_by_its_group_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "run").mkdir(parents=True)
    data.chmod(0o755)
    (data / "run").chmod(0o770)

    result = start_cluster(data, "--foreground")

    assert result.returncode == 2
    assert f"{data / 'run'} is writable by its group" in result.stderr
    assert f"chmod go-w {data / 'run'}" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_a_data_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, NOBODY, NOBODY)

    with pytest.raises(ConfigError, match=f"belongs to uid {NOBODY}, but boltlink runs as uid 0"):
        ensure_private_data_dir(Config(data_dir=str(data)))


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o755, 0o1755])
def test_private_data_dirs_pass(tmp_path: Path, mode: int) -> None:
    """pytest's tmp dirs (0700) and tests/cluster's public_tmp_dir (0755) among them."""
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(mode)
    (data / "run").mkdir(mode=0o700)

    ensure_private_data_dir(Config(data_dir=str(data)))


def test_a_new_data_dir_is_born_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    old = os.umask(0o002)  # Debian's default for users with a group of their own
    try:
        ensure_private_data_dir(Config(data_dir=str(data)))
    finally:
        os.umask(old)

    assert stat.S_IMODE(data.stat().st_mode) == 0o700
