"""A real `boltlink serve` with an API key, and headless Chromium (Debian's) driven by Playwright.

Without Chromium or Playwright these tests skip, unless BOLTLINK_REQUIRE_SERVICES=1 (CI), where they fail.
Every page a test opens is watched: a console error (a CSP violation is one), an uncaught exception or
a JavaScript dialog fails the test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BOLTLINK_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
BOOT_TIMEOUT = 30.0


def _need_browser() -> None:
    missing = []
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing.append(f"{CHROMIUM} (Debian's chromium package)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if not missing:
        return
    message = "browser tests need " + " and ".join(missing)
    if os.environ.get("BOLTLINK_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (BOLTLINK_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Server:
    url: str
    key: str
    proc: subprocess.Popen[bytes]
    log: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.key}, timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running(tmp: Path, *command: str) -> Iterator[Server]:
    """Make an API key in a fresh data dir, run `boltlink <command> --port P` there, kill its group after."""
    _need_browser()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    boltlink = [sys.executable, "-m", "boltlink", "--data-dir", str(tmp / "data")]
    made = subprocess.run([*boltlink, "apikey", "create", "--name", "ui"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert made.returncode == 0, made.stderr
    port = _free_port()
    log = tmp / "boltlink.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*boltlink, *command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=tmp, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", made.stdout.strip(), proc, log)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"boltlink {command[0]} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(server.url + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, BOOT_TIMEOUT, f"{server.url}/health")
        yield server
    finally:
        # The whole group: a cluster's workers too (they also exit by themselves when their master dies).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`boltlink serve` on a free port with a fresh SQLite data dir (it aggregates clicks in-process)."""
    with running(tmp_path_factory.mktemp("ui-serve"), "serve") as server:
        yield server


@pytest.fixture
def cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`boltlink start-cluster --foreground -i 1`: one API worker, the aggregator and analytics."""
    with running(tmp_path_factory.mktemp("ui-cluster"), "start-cluster", "--foreground", "-i", "1") as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@dataclass
class Watch:
    """What a page did that it should not have."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def open_page(browser: Any, watch: Watch) -> Iterator[Callable[[Server], Any]]:
    """open_page(server): a fresh browser profile at desktop size on that server, clipboard allowed."""
    contexts = []

    def run(server: Server) -> Any:
        context = browser.new_context(viewport=DESKTOP, base_url=server.url, accept_downloads=True)
        contexts.append(context)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("console", lambda msg: watch.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: watch.errors.append(str(exc)))

        def on_dialog(dialog: Any) -> None:
            watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return page

    yield run
    for context in contexts:
        context.close()
    # Expected failures (a 401 while signing in with a wrong key, 404s a test asked for) log as
    # "Failed to load resource"; anything else, a CSP violation above all, is a bug.
    unexpected = [e for e in watch.errors if not e.startswith("Failed to load resource")]
    assert unexpected == [], unexpected
    assert watch.dialogs == [], watch.dialogs


@pytest.fixture
def page(open_page: Callable[[Server], Any], server: Server) -> Any:
    return open_page(server)


@pytest.fixture
def sign_in(page: Any, server: Server) -> Callable[[], Any]:
    """sign_in(): open the UI and sign in through its form; returns the page, on the links list."""

    def run() -> Any:
        page.goto("/")
        page.get_by_label("API key").fill(server.key)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", level=1, name="Links").wait_for()
        return page

    return run


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
