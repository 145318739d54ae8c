"""The shipped artefact: build boltlink.pyz with build.py and use it as a user would.

Every test here is slow: the first build may create .build/venv and fetch the
locked wheels; the pyz's first start extracts and compiles its site-packages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import boltlink

pytestmark = pytest.mark.slow


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pyz(built_pyz: Path) -> Path:
    """The session's build (tests/conftest.py); these tests only read it and its directory."""
    return built_pyz


def run_pyz(pyz: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """./boltlink.pyz ARGS, from the pyz's own (temporary, outside the repo) directory."""
    return subprocess.run(
        [f"./{pyz.name}", *args], cwd=pyz.parent, env=env, capture_output=True, text=True, timeout=120
    )


def test_shebang_is_env_python3(pyz: Path) -> None:
    with pyz.open("rb") as f:
        assert f.readline() == b"#!/usr/bin/env python3\n"
    assert os.access(pyz, os.X_OK)


def test_two_builds_are_byte_identical(pyz: Path, tmp_path: Path, pyz_builder: Callable[..., float]) -> None:
    again = tmp_path / "boltlink.pyz"
    print(f"\nrebuild: {pyz_builder(again):.1f} s")
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
