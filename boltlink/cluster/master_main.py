"""`boltlink __master__ CONFIG.json [--echo]`: the cluster master, without the CLI around it.

start-cluster (detached or --foreground) resolves the configuration as usual,
writes it to a private file in the run directory (it may hold database
passwords) and starts this; the master reads the file, removes it, and runs.
Errors end as the CLI's do: one "boltlink: ..." line on stderr (daemon.py
shows it to the user) and the error's exit code.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from boltlink.config import Config
from boltlink.errors import INTERNAL_ERROR_EXIT, BoltlinkError


def write_config(config: Config) -> Path:
    """The configuration as the master will read it: a 0600 file in the run directory (0700)."""
    config.run_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix="master-config-", suffix=".json", dir=config.run_path)
    with os.fdopen(fd, "w") as file:  # mkstemp makes it 0600
        json.dump(config.model_dump(mode="json", exclude_unset=True), file)
    return Path(name)


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("boltlink: __master__ is started by start-cluster, not by hand", file=sys.stderr)
        return 2
    path = Path(argv[0])
    try:
        config = Config.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        print(f"boltlink: cannot read the master's configuration {path}: {exc}", file=sys.stderr)
        return 2
    finally:
        path.unlink(missing_ok=True)
    from boltlink.cluster.master import run_master

    try:
        run_master(config, echo="--echo" in argv[1:])
    except BoltlinkError as exc:
        print(f"boltlink: {exc.detail}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("boltlink: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, as the CLI says it, rather than a traceback
        print(f"boltlink: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return INTERNAL_ERROR_EXIT
    return 0
