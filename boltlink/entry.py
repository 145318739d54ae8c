"""The entry point of the pyz and of `python -m boltlink`: the CLI, or the cluster master.

The master runs as long as the cluster does and needs none of the CLI: click,
rich and every subcommand's imports cost it 5 MB of RSS for nothing, and each
worker it spawns as much. So start-cluster starts it as `boltlink __master__
CONFIG.json`, and it spawns `boltlink __worker__ ROLE ...`, which this module
sends straight to cluster/master_main.py and workers/spawned.py.
"""

from __future__ import annotations

import sys

MASTER_COMMAND = "__master__"
WORKER_COMMAND = "__worker__"  # what the master spawns: workers/spawned.py, also without the CLI


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command == MASTER_COMMAND:
        from boltlink.cluster.master_main import main as run_master

        sys.exit(run_master(sys.argv[2:]))
    if command == WORKER_COMMAND:
        from boltlink.workers.spawned import main as run_worker

        sys.exit(run_worker(sys.argv[2:]))
    from boltlink.cli import main as run_cli

    run_cli()
