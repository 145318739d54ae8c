"""The cluster's own processes start without the CLI: the master and every worker it spawns.

click, rich and the subcommands cost each long-lived process ~5 MB of RSS (issue #8 bounds the
master at 40 MB). boltlink/entry.py sends `__master__` and `__worker__` past them.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from boltlink.cluster.master_main import write_config
from boltlink.config import Config

CLI_ONLY = ("click", "rich", "boltlink.cli")


def modules_after(argv: list[str]) -> dict[str, object]:
    """Run boltlink.entry.main with argv in a fresh interpreter; its exit code and the CLI modules it loaded."""
    code = (
        "import json, sys\n"
        f"sys.argv = ['boltlink', *{argv!r}]\n"
        "from boltlink.entry import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        f"print(json.dumps({{'code': code, 'loaded': [m for m in {CLI_ONLY!r} if m in sys.modules]}}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return {**json.loads(result.stdout.splitlines()[-1]), "stderr": result.stderr}


@pytest.mark.parametrize("command", ["__master__", "__worker__"])
def test_the_cluster_entry_points_load_no_cli_and_refuse_to_run_by_hand(command: str) -> None:
    outcome = modules_after([command])
    assert outcome["loaded"] == []
    assert outcome["code"] == 2
    assert outcome["stderr"].strip().splitlines() == [
        f"boltlink: {command} is started by {'start-cluster' if command == '__master__' else 'the cluster master'},"
        " not by hand"
    ]


def test_the_masters_configuration_file_is_private_and_holds_what_was_resolved(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path / "data"), port=5999, database_url="postgresql://u:secret@db/x")
    path = write_config(config)
    assert path.parent == config.run_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it may hold a database password
    assert Config.model_validate(json.loads(path.read_text())) == config


def test_the_master_removes_its_configuration_file_even_when_it_cannot_start(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path / "data"))
    path = write_config(config)
    path.write_text("{not json")
    outcome = modules_after(["__master__", str(path)])
    assert outcome["code"] == 2 and "cannot read the master's configuration" in str(outcome["stderr"])
    assert not path.exists()
