"""Versioned schema migrations: the .sql files under store/migrations/<dialect>/.

A file is named NNNN_name.sql and its version is NNNN. The runner in each
backend creates schema_migrations itself, then applies every file whose
version is not recorded there, in version order, all in one transaction.
Files must not contain BEGIN/COMMIT.

The files are read with importlib.resources, never by filesystem path, so
they are found inside a zipapp as well as in a checkout.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

from boltlink.errors import MigrationError

DIALECTS = ("sqlite", "postgres")
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


@functools.cache
def load_migrations(dialect: str) -> tuple[Migration, ...]:
    """Every migration of one dialect, in version order. Raises MigrationError on a misnamed file."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    folder = resources.files("boltlink.store").joinpath("migrations").joinpath(dialect)
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"Migration file {dialect}/{entry.name} is not named NNNN_name.sql.")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"Migrations {dialect}/{found[version].filename} and {dialect}/{entry.name}"
                f" share version {version}."
            )
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return tuple(found[v] for v in sorted(found))


def pending(migrations: tuple[Migration, ...], done: set[int]) -> list[Migration]:
    """The migrations not yet recorded, in order.

    Versions recorded but unknown to this code are ignored: during a rolling
    upgrade an older worker meets the newer schema, which must stay compatible.
    """
    return [m for m in migrations if m.version not in done]


def latest(migrations: tuple[Migration, ...], done: set[int]) -> int:
    return max(done | {m.version for m in migrations}, default=0)
