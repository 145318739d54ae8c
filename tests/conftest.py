"""Shared fixtures: the real PostgreSQL and Redis servers, fresh per test; the built pyz.

Tests that need a server skip when it is unreachable, unless
BOLTLINK_REQUIRE_SERVICES=1 (CI), where they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

POSTGRES_URL = os.environ.get("BOLTLINK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BOLTLINK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("BOLTLINK_REQUIRE_SERVICES") == "1"
ROOT = Path(__file__).resolve().parents[1]
KEEP_ENV = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "PYENV_ROOT", "PYENV_VERSION")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def _need(url: str, port: int, what: str) -> None:
    if _reachable(url, port):
        return
    message = f"{what} is not reachable at {url}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (BOLTLINK_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a brand-new, empty PostgreSQL database, dropped after the test."""
    _need(POSTGRES_URL, 5432, "PostgreSQL")
    import asyncpg

    name = f"boltlink_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(POSTGRES_URL)._replace(path=f"/{name}"))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_url() -> str:
    _need(REDIS_URL, 6379, "Redis")
    return REDIS_URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_pyz(output: Path, source: Path = ROOT) -> float:
    """Run SOURCE/build.py --output OUTPUT as a user would; return how long it took."""
    # build.py targets the system python3; ours is as good when it is 3.11 too.
    python = sys.executable if sys.version_info[:2] == (3, 11) else shutil.which("python3") or "python3"
    started = time.monotonic()
    proc = subprocess.run(
        [python, str(source / "build.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"build.py failed:\n{proc.stdout}{proc.stderr}"
    return time.monotonic() - started


@pytest.fixture(scope="session")
def pyz_builder() -> Callable[..., float]:
    """build_pyz(output, source=ROOT): build a pyz from the checkout (or a patched copy of it)."""
    return build_pyz


@pytest.fixture(scope="session")
def built_pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """boltlink.pyz built once per session from this checkout by build.py (slow: mark its users slow).

    The first build may create .build/venv and fetch the locked wheels; later ones take seconds.
    Tests that run it copy it first if they change it or the directory it is in.
    """
    path = tmp_path_factory.mktemp("pyz") / "boltlink.pyz"
    print(f"\nbuild: {build_pyz(path):.1f} s")
    return path


@pytest.fixture(scope="session")
def user_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A user's shell to run the pyz in: no venv on PATH, no PYTHONPATH or BOLTLINK_*, a private SHIV_ROOT."""
    env = {name: os.environ[name] for name in KEEP_ENV if name in os.environ}
    dirs = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    env["PATH"] = os.pathsep.join(d for d in dirs if d and not (Path(d).parent / "pyvenv.cfg").exists())
    env["SHIV_ROOT"] = str(tmp_path_factory.mktemp("shiv-root"))
    # The shebang is `/usr/bin/env python3`: that must be a 3.11, or nothing here means anything.
    check = subprocess.run(
        ["/usr/bin/env", "python3", "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 11))"], env=env
    )
    if check.returncode != 0:
        pytest.fail("python3 on PATH (without venvs) is not Python 3.11, which the pyz needs")
    return env
