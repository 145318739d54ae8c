"""start-cluster without --foreground: run the master detached, return once it is ready.

The master runs as a fresh `boltlink __master__` process (entry.py) in its own
session (so closing the terminal does not stop it). This process waits until
every worker reports ready and returns the status, or, when the master gives
up, raises with the reason taken from the end of master.log.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from boltlink.cluster import control
from boltlink.cluster.logs import read_last_lines
from boltlink.cluster.runfiles import RunFiles
from boltlink.cluster.supervisor import ClusterError
from boltlink.config import Config

POLL_SECONDS = 0.1


def start_detached(config: Config, master_command: list[str]) -> dict[str, Any]:
    run_files = RunFiles(config.run_path)
    config.run_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    early_output = config.run_path / "daemon.out"  # anything printed before logging is set up
    # Appended, not truncated: a concurrent start-cluster for the same data dir
    # writes here too, and each reads back only what its own master printed.
    with early_output.open("ab") as out:
        early_offset = out.tell()
        master = subprocess.Popen(
            master_command, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    wait = config.listen_timeout * 2 + 10  # the master gives up by itself after listen_timeout
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        code = master.poll()
        if code is not None:
            raise ClusterError(_why_it_stopped(config, early_output, early_offset, code))
        try:
            status = control.request(run_files, "status", timeout=5)
        except (control.NotRunning, control.CommandFailed):
            status = None
        # Only our own master counts: the one answering may be a concurrent
        # start-cluster's, while ours is about to fail on the run lock.
        if status and status["master"]["pid"] == master.pid and status["master"]["phase"] == "running":
            return status
        time.sleep(POLL_SECONDS)
    master.terminate()
    raise ClusterError(f"the cluster was not ready after {wait:.0f} s; see {config.log_path / 'master.log'}")


def _why_it_stopped(config: Config, early_output: Path, early_offset: int, code: int) -> str:
    # The master's own last words come first: the CLI's one "boltlink: ..." error
    # with the failing worker's output under it (master.log keeps only the
    # record's first line as an ERROR line, and may be another master's).
    with early_output.open("rb") as file:
        file.seek(early_offset)
        early = file.read().decode("utf-8", "replace").splitlines()[-20:]
    lines = read_last_lines(config.log_path / "master.log", 12)
    errors = [line for line in lines if " ERROR " in line]
    shown = early or errors or lines
    detail = "\n".join(f"  {line}" for line in shown)
    return f"the cluster master exited (code {code}) before it was ready:\n{detail}"
