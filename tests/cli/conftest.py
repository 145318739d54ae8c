"""`run(...)`: the boltlink command in-process (click's CliRunner) on a throwaway data dir."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from boltlink.cli import cli

Run = Callable[..., Result]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def run(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """run("links", "list", env={...}): boltlink with --data-dir, isolated from the caller's BOLTLINK_* env."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("BOLTLINK_")]:
        monkeypatch.delenv(name)
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, ["--data-dir", str(data_dir), *args], env=env, prog_name="boltlink")

    return invoke
