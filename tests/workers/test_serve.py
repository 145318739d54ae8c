"""`boltlink serve` as a real process: it answers, stops cleanly on SIGTERM, and fails readably.

Each server runs in its own process group, is polled (never slept on) until it
answers, and is killed with its whole group by the fixture finalizer whatever
the test did.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import boltlink

pytestmark = pytest.mark.slow

REPO_ROOT = Path(boltlink.__file__).resolve().parent.parent
CLOSED_PORT_URL = "postgresql://postgres@127.0.0.1:1/x"
BOOT_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def answers_health(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"boltlink exited with {self.proc.returncode}:\n{self.stderr}")
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def wait_healthy(self) -> Process:
        wait_until(self.answers_health, BOOT_TIMEOUT, f"GET {self.url}/health")
        return self

    def wait_exit(self, timeout: float = BOOT_TIMEOUT) -> int:
        return self.proc.wait(timeout=timeout)


Start = Callable[..., Process]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """start("serve", "--port", "5000", env={...}): run boltlink on tmp_path/data; every process is reaped."""
    started: list[Process] = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}
    base_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))

    def run(*args: str, env: dict[str, str] | None = None) -> Process:
        n = len(started)
        stdout_path, stderr_path = tmp_path / f"boltlink-{n}.out", tmp_path / f"boltlink-{n}.err"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "boltlink", "--data-dir", str(tmp_path / "data"), *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=tmp_path,
                env={**base_env, **(env or {})},
                start_new_session=True,
            )
        port = int(args[args.index("--port") + 1]) if "--port" in args else None
        started.append(Process(proc, stdout_path, stderr_path, port))
        return started[-1]

    yield run

    for process in started:
        # The whole group, even when the leader is gone: a child it left must not outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.proc.pid, signal.SIGKILL)
        process.proc.wait(timeout=10)


def serve(start: Start, env: dict[str, str] | None = None) -> Process:
    return start("serve", "--port", str(free_port()), env=env)


def assert_one_line_failure(process: Process) -> str:
    assert process.wait_exit() != 0, process.stderr
    assert "Traceback" not in process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith("boltlink: ")
    return lines[0]


# ---------------------------------------------------------------------------------------------------


def test_serve_answers_health_and_ready(start: Start) -> None:
    server = serve(start).wait_healthy()

    health = httpx.get(server.url + "/health")
    ready = httpx.get(server.url + "/ready")

    assert health.json()["status"] == "ok"
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    assert "server" not in health.headers  # hypercorn's `server: hypercorn-h11` would say what runs here
    assert "date" in health.headers  # which HTTP requires of a server with a clock


def test_sigterm_stops_serve_with_exit_0(start: Start) -> None:
    server = serve(start).wait_healthy()

    server.proc.send_signal(signal.SIGTERM)

    assert server.wait_exit(STOP_TIMEOUT) == 0
    assert "Traceback" not in server.stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/health", timeout=1)


def test_sigint_stops_serve_with_exit_0(start: Start) -> None:
    server = serve(start).wait_healthy()

    server.proc.send_signal(signal.SIGINT)

    assert server.wait_exit(STOP_TIMEOUT) == 0
    assert "Traceback" not in server.stderr


def test_second_serve_on_the_same_port_fails_in_one_line(start: Start) -> None:
    first = serve(start).wait_healthy()

    second = start("serve", "--port", str(first.port))

    line = assert_one_line_failure(second)
    assert str(first.port) in line
    assert "in use" in line
    assert first.answers_health()


def test_boot_failure_with_unreachable_database_fails_in_one_line(start: Start) -> None:
    server = serve(start, env={"BOLTLINK_DATABASE_URL": CLOSED_PORT_URL})

    line = assert_one_line_failure(server)
    assert "127.0.0.1:1" in line


def test_bad_config_fails_before_serving(start: Start) -> None:
    server = serve(start, env={"BOLTLINK_PORT": "abc"})

    assert "BOLTLINK_PORT" in assert_one_line_failure(server)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_link_created_through_the_api_redirects(start: Start, backend: str, request: pytest.FixtureRequest) -> None:
    env = {"BOLTLINK_DATABASE_URL": request.getfixturevalue("postgres_url")} if backend == "postgres" else {}
    make_key = start("apikey", "create", "--name", "ci", "--scope", "links:write", env=env)
    assert make_key.wait_exit() == 0, make_key.stderr
    key = make_key.stdout.strip()
    server = serve(start, env=env).wait_healthy()

    created = httpx.post(
        server.url + "/api/v1/links",
        headers={"X-API-Key": key},
        json={"url": "https://example.com/target?x=1", "slug": "abc"},
    )
    followed = httpx.get(server.url + "/abc", headers={"User-Agent": "Mozilla/5.0 Firefox/125.0"})

    assert created.status_code == 201, created.text
    assert created.json()["short_url"].endswith("/abc")
    assert followed.status_code == 302
    assert followed.headers["Location"] == "https://example.com/target?x=1"
    assert httpx.get(server.url + "/nope").status_code == 404


def test_serve_alone_counts_the_clicks_of_its_redirects(start: Start) -> None:
    """In embedded mode `serve` aggregates in-process: one process is a complete shortener."""
    make_key = start("apikey", "create", "--name", "clicks", "--scope", "admin")
    assert make_key.wait_exit() == 0, make_key.stderr
    headers = {"X-API-Key": make_key.stdout.strip()}
    server = serve(start).wait_healthy()
    httpx.post(server.url + "/api/v1/links", headers=headers, json={"url": "https://example.com", "slug": "c"})
    for _ in range(5):
        httpx.get(server.url + "/c", headers={"User-Agent": "Mozilla/5.0 Firefox/125.0"})
    httpx.get(server.url + "/c", headers={"User-Agent": "Googlebot/2.1"})
    httpx.head(server.url + "/c")

    def clicks() -> dict[str, int]:
        return httpx.get(server.url + "/api/v1/links/c", headers=headers).json()["clicks"]

    wait_until(lambda: clicks()["total"] == 6, BOOT_TIMEOUT, "the six GET redirects to be counted")
    assert clicks() == {"total": 6, "humans": 5, "bots": 1}


def test_serve_alone_serves_metrics_on_metrics_port(start: Start) -> None:
    metrics_port = free_port()
    server = serve(start, env={"BOLTLINK_METRICS_PORT": str(metrics_port)}).wait_healthy()
    for _ in range(3):
        httpx.get(server.url + "/ready")
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert 'boltlink_http_requests_total{route="/ready",status_class="2xx"} 3' in text
    assert httpx.get(server.url + "/metrics").status_code == 404  # moved off the API port


def test_a_role_running_alone_serves_its_metrics_on_metrics_port(start: Start) -> None:
    metrics_port = free_port()
    start("worker", "aggregator", env={"BOLTLINK_METRICS_PORT": str(metrics_port)})
    url = f"http://127.0.0.1:{metrics_port}/metrics"

    def scraped() -> str | None:
        try:
            return httpx.get(url, timeout=1).text
        except httpx.TransportError:
            return None

    # The port opens first; the aggregator's figures follow once it has opened its store and source.
    wait_until(lambda: "boltlink_aggregator_lag_seconds" in (scraped() or ""), BOOT_TIMEOUT, f"lag in {url}")
    text = scraped() or ""
    assert "boltlink_aggregator_lag_seconds 0.0" in text
    assert 'boltlink_process_up{process="aggregator",role="aggregator"} 1' in text
