"""The data directory must be the master's alone: it refuses to start in one other users could change.

Whoever may write into DATA_DIR can swap the SQLite database (and with it every
API key), plant click events in spool/, or slip their own control socket into
run/ for the CLI to talk to. So a start needs DATA_DIR, and DATA_DIR/run when it
exists, to belong to the user boltlink runs as and to be writable by nobody else
(no group or other write bit). Nothing is changed behind the user's back: the
error says what to run. A data directory boltlink creates itself is born 0700,
whatever the umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from boltlink.config import Config
from boltlink.errors import ConfigError


def ensure_private_data_dir(config: Config) -> None:
    """Create the data directory (0700) if missing; raise ConfigError unless it and run/ are private."""
    try:
        config.data_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create the data directory {config.data_path}: {exc.strerror}") from None
    for path in (config.data_path, config.run_path):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue  # run/ is made 0700 by the master (runfiles.py)
        check_private(path, info)


def check_private(path: Path, info: os.stat_result) -> None:
    uid = os.geteuid()
    if info.st_uid != uid:
        raise ConfigError(f"{path} belongs to uid {info.st_uid}, but boltlink runs as uid {uid}: "
                          f"start it as that user, or give it the directory (chown {uid} {path})")
    writable = [who for bit, who in ((stat.S_IWGRP, "its group"), (stat.S_IWOTH, "other users"))
                if info.st_mode & bit]
    if writable:
        raise ConfigError(f"{path} is writable by {' and '.join(writable)} (mode {stat.S_IMODE(info.st_mode):04o}), "
                          f"who could replace boltlink's database or control socket: chmod go-w {path}")
