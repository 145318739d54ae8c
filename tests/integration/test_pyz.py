"""The shipped artefact: build boltlink.pyz with build.py and use it as a user would.

Every test here is slow: the first build may create .build/venv and fetch the
locked wheels; the pyz's first start extracts and compiles its site-packages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import boltlink

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEEP_ENV = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "PYENV_ROOT", "PYENV_VERSION")


def build(output: Path) -> float:
    """Run build.py as a user would; return how long it took."""
    # build.py targets the system python3; ours is as good when it is 3.11 too.
    python = sys.executable if sys.version_info[:2] == (3, 11) else shutil.which("python3") or "python3"
    started = time.monotonic()
    proc = subprocess.run(
        [python, str(ROOT / "build.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"build.py failed:\n{proc.stdout}{proc.stderr}"
    return time.monotonic() - started


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pyz") / "boltlink.pyz"
    print(f"\nbuild: {build(path):.1f} s")
    return path


@pytest.fixture(scope="session")
def user_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A user's shell: no venv on PATH, no PYTHONPATH or BOLTLINK_*, a private SHIV_ROOT."""
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


def run_pyz(pyz: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """./boltlink.pyz ARGS, from the pyz's own (temporary, outside the repo) directory."""
    return subprocess.run(
        [f"./{pyz.name}", *args], cwd=pyz.parent, env=env, capture_output=True, text=True, timeout=120
    )


def test_shebang_is_env_python3(pyz: Path) -> None:
    with pyz.open("rb") as f:
        assert f.readline() == b"#!/usr/bin/env python3\n"
    assert os.access(pyz, os.X_OK)


def test_two_builds_are_byte_identical(pyz: Path, tmp_path: Path) -> None:
    again = tmp_path / "boltlink.pyz"
    print(f"\nrebuild: {build(again):.1f} s")
    assert sha256(again) == sha256(pyz)


def test_help(pyz: Path, user_env: dict[str, str]) -> None:
    proc = run_pyz(pyz, user_env, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout


def test_version(pyz: Path, user_env: dict[str, str]) -> None:
    proc = run_pyz(pyz, user_env, "--version")
    assert proc.returncode == 0, proc.stderr
    assert boltlink.__version__ in proc.stdout


def tail(log: Path) -> str:
    return "\n--- server output (tail) ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])


def test_end_to_end(pyz: Path, user_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    data = str(tmp_path / "data")
    created = run_pyz(pyz, user_env, "--data-dir", data, "apikey", "create", "--name", "e2e", "--scope", "admin")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"stdout must be the key alone, got {created.stdout!r}"
    key = lines[0].strip()

    port = free_port()
    server_log = tmp_path / "server.log"  # shown when an assertion fails
    with server_log.open("wb") as log:
        server = subprocess.Popen(
            [f"./{pyz.name}", "--data-dir", data, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=pyz.parent,
            env=user_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the finalizer gets every worker
        )

    def kill_group() -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()

    request.addfinalizer(kill_group)

    # trust_env=False: no proxy from the environment between us and 127.0.0.1.
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as client:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"server exited with {server.returncode}" + tail(server_log)
            try:
                if client.get("/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "GET /health not 200 within 60 s" + tail(server_log)
            time.sleep(0.1)  # poll interval

        link = {"url": "https://example.com/landing", "slug": "e2e"}
        created_link = client.post("/api/v1/links", headers={"X-API-Key": key}, json=link)
        assert created_link.status_code == 201, created_link.text
        body = created_link.json()
        assert body["slug"] == "e2e"
        assert "short_url" in body

        redirect = client.get("/e2e")  # httpx does not follow redirects unless asked
        assert redirect.status_code == 302, redirect.text
        assert redirect.headers["location"] == "https://example.com/landing"

    server.send_signal(signal.SIGTERM)
    try:
        code = server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("server still running 15 s after SIGTERM" + tail(server_log))
    assert code == 0, f"server exited with {code} after SIGTERM" + tail(server_log)
