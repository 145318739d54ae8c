"""Malformed HTTP against a real `boltlink serve` on loopback, over raw sockets.

Oversized heads, unknown methods, bodies too big or lying about their size,
slow and silent clients, bytes that are not HTTP at all: each gets a clear
answer (a problem document, or hypercorn's bare 4xx when it cannot even parse
the request) or a closed connection within a bounded time; none gets a 5xx,
none leaves a traceback in the server's log, and none slows down the other
clients. body_timeout is 2 s here so the slow-body cases stay quick; headers
get HEADER_TIMEOUT (5 s) as in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import boltlink
from boltlink.workers.api import HEADER_TIMEOUT

pytestmark = pytest.mark.slow

REPO_ROOT = Path(boltlink.__file__).resolve().parent.parent
BODY_TIMEOUT = 2.0
MAX_BODY = 1_048_576  # the default max_body_size
BOOT_TIMEOUT = 30.0
SLACK = 3.0  # on top of a timeout, for a loaded 2-core CI machine


@dataclass
class Server:
    port: int
    key: str
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `serve` for the module (its own process group, killed at the end), with a key and a link."""
    tmp = tmp_path_factory.mktemp("malformed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}
    env |= {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            "BOLTLINK_DATA_DIR": str(tmp / "data"), "BOLTLINK_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "BOLTLINK_RATE_LIMIT_WRITES": "0"}  # one client sends every write here
    boltlink_cmd = [sys.executable, "-m", "boltlink"]
    made = subprocess.run([*boltlink_cmd, "apikey", "create", "--name", "fuzz", "--scope", "admin"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    port = _free_port()
    stderr_path = tmp / "serve.err"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen([*boltlink_cmd, "serve", "--port", str(port)], env=env, cwd=tmp,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    try:
        running = Server(port, made.stdout.strip(), stderr_path)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not _healthy(running):
            assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{running.log()}"
            assert time.monotonic() < deadline, f"serve did not answer /health in {BOOT_TIMEOUT} s"
            time.sleep(0.05)
        created = httpx.post(running.url + "/api/v1/links", headers={"X-API-Key": running.key},
                             json={"url": "https://example.com/landing", "slug": "known"})
        assert created.status_code == 201, created.text
        yield running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _healthy(server: Server) -> bool:
    try:
        return httpx.get(server.url + "/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(autouse=True)
def no_traceback_in_the_log(server: Server) -> Iterator[None]:
    before = len(server.log())
    yield
    logged = server.log()[before:]
    assert "Traceback" not in logged, logged


@dataclass
class Answer:
    status: int | None  # None: closed (or timed out) without a response
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection
    seconds: float

    def problem(self) -> dict:
        assert self.headers.get("content-type") == "application/problem+json", self.headers
        document = json.loads(self.body)
        assert document["status"] == self.status
        assert {"type", "title", "detail"} <= set(document)
        return document


def exchange(server: Server, request: bytes, *, then: Sequence[bytes] = (), timeout: float = 10.0,
             close_within: float = 0.0) -> Answer:
    """Send request (then each of then), and read until the server closes or answers one whole response.

    After a whole response, wait up to close_within seconds for the server to close the connection.
    """
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may close before it has read everything
            sock.sendall(request)
            for part in then:
                sock.sendall(part)
        data, closed = b"", False
        deadline = started + timeout
        while not _complete(data):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
        if _complete(data) and not closed and close_within:
            sock.settimeout(close_within)
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                while chunk := sock.recv(65536):  # what follows the answer (a second one) is not ours
                    pass
                closed = True
    return _parse(data, closed, time.monotonic() - started)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def _parse(data: bytes, closed: bool, seconds: float) -> Answer:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return Answer(None, {}, b"", closed, seconds)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[:int(headers["content-length"])]
    return Answer(int(lines[0].split()[1]), headers, body, closed, seconds)


def api_post(server: Server, headers: bytes = b"") -> bytes:
    return (b"POST /api/v1/links HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-API-Key: "
            + server.key.encode() + b"\r\n" + headers)


# Oversized heads ----------------------------------------------------------------------------------

@pytest.mark.parametrize("request_head", [
    b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 20) for i in range(4000)) + b"\r\n",
], ids=["request line", "one header", "many headers"])
def test_an_oversized_request_head_is_refused_and_the_connection_closed(server, request_head):
    answer = exchange(server, request_head, close_within=2)
    assert answer.status in (400, 431) and answer.closed


# Methods ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/known", "/api/v1/links", "/nothing"])
def test_an_unknown_method_gets_a_405_problem(server, path):
    answer = exchange(server, b"FOO " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert answer.status == 405
    assert answer.problem()["detail"] == "FOO is not allowed here."
    assert answer.headers["allow"]


def test_a_method_that_is_no_http_token_is_a_400_and_closed(server):
    answer = exchange(server, b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n", close_within=2)
    assert answer.status == 400 and answer.closed


# Bodies -------------------------------------------------------------------------------------------

def test_a_body_declared_too_big_gets_413_at_once_without_being_sent(server):
    answer = exchange(server, api_post(server, b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1)), timeout=5)
    assert answer.status == 413 and answer.seconds < 2
    assert answer.problem()["detail"] == "The request body is larger than this server accepts."


def test_a_chunked_body_growing_past_the_limit_gets_413(server):
    chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
    answer = exchange(server, api_post(server, b"Transfer-Encoding: chunked\r\n\r\n"),
                      then=[chunk] * (MAX_BODY // 65536 + 2) + [b"0\r\n\r\n"])
    assert answer.status == 413
    answer.problem()


def test_a_body_shorter_than_its_content_length_gets_408_after_body_timeout(server):
    started_body = b'{"url": "https://example.com/"}'
    answer = exchange(server, api_post(server, b"Content-Length: 500\r\n\r\n") + started_body, close_within=2)
    assert answer.status == 408 and BODY_TIMEOUT - 0.5 < answer.seconds < BODY_TIMEOUT + SLACK
    answer.problem()
    assert answer.closed


def test_a_body_longer_than_its_content_length_leaves_garbage_that_is_refused(server):
    body = b'{"url": "https://example.com/long-enough"}'
    answer = exchange(server, api_post(server, b"Content-Length: 10\r\n\r\n") + body + b"\r\n\r\n", close_within=2)
    assert answer.status == 400  # the first 10 bytes are no JSON; the rest is no request either
    answer.problem()
    assert answer.closed


@pytest.mark.parametrize("framing", [
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"Content-Length: -1\r\n\r\n",
    b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
], ids=["bad chunk size", "negative length", "two lengths"])
def test_broken_body_framing_is_a_400_and_closed(server, framing):
    answer = exchange(server, api_post(server, framing), close_within=2)
    assert answer.status == 400 and answer.closed


def test_a_body_that_is_not_utf8_is_a_400_problem(server):
    body = b'{"url": "\xff\xfe"}'
    answer = exchange(server, api_post(server, b"Content-Length: %d\r\n\r\n" % len(body)) + body)
    assert answer.status == 400
    assert answer.problem()["detail"] == "The request body is not valid JSON."


# Paths --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [b"/%ff%fe", b"/%ff%fe/qr", b"/a%00b", b"/%zz%4", b"/api/v1/links/%ff%c3"])
def test_a_path_with_invalid_utf8_or_percent_encoding_is_a_404_problem(server, path):
    answer = exchange(server, b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nX-API-Key: " + server.key.encode()
                      + b"\r\n\r\n")
    assert answer.status == 404
    answer.problem()


def test_raw_non_ascii_bytes_in_the_request_target_are_a_400(server):
    answer = exchange(server, b"GET /known?\x80\xff HTTP/1.1\r\nHost: t\r\n\r\n", close_within=2)
    assert answer.status == 400 and answer.closed


def test_raw_non_utf8_query_bytes_over_http2_get_an_answer_not_a_500(server):
    # HTTP/2 (cleartext, prior knowledge) passes bytes h11 would refuse; Quart decoded them as UTF-8 and failed.
    import h2.config
    import h2.connection
    import h2.events

    for path, expected in ((b"/health?\xff", 200), (b"/api/v1/links?q=\xff%ff", 200), (b"/known?\xfe", 302)):
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                          validate_outbound_headers=False))
        connection.initiate_connection()
        connection.send_headers(1, [(b":method", b"GET"), (b":path", path), (b":scheme", b"http"),
                                    (b":authority", b"t"), (b"x-api-key", server.key.encode())], end_stream=True)
        status = None
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(connection.data_to_send())
            while status is None:
                data = sock.recv(65536)
                assert data, "closed without an answer"
                for event in connection.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = int(dict(event.headers)[b":status"])
        assert status == expected, path


# Not HTTP at all ----------------------------------------------------------------------------------

TLS_CLIENT_HELLO = bytes.fromhex("16030100f5010000f10303") + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00"


@pytest.mark.parametrize("garbage", [bytes(range(256)) * 4, TLS_CLIENT_HELLO, b"\r\n" * 10 + b"\x00" * 100],
                         ids=["binary", "TLS ClientHello", "blank lines and NULs"])
def test_bytes_that_are_not_http_are_refused_and_closed_at_once(server, garbage):
    answer = exchange(server, garbage, timeout=HEADER_TIMEOUT + SLACK, close_within=2)
    assert answer.status in (None, 400) and answer.closed and answer.seconds < 2


def test_a_websocket_handshake_gets_a_problem_not_a_500(server):
    answer = exchange(server, b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert answer.status == 400
    answer.problem()


# Slow clients -------------------------------------------------------------------------------------

class Trickler(threading.Thread):
    """Sends head, then one byte of rest every interval; records when the server closed on it."""

    def __init__(self, server: Server, head: bytes, rest: bytes, interval: float) -> None:
        super().__init__(daemon=True)
        self.server, self.head, self.rest, self.interval = server, head, rest, interval
        self.answer: bytes = b""
        self.closed_after: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as sock:
            sock.settimeout(self.interval)
            try:
                sock.sendall(self.head)
                for byte in self.rest:
                    if self.stop.is_set():
                        return
                    with contextlib.suppress(TimeoutError):
                        data = sock.recv(65536)
                        if not data:
                            break
                        self.answer += data
                    sock.sendall(bytes([byte]))
                sock.settimeout(30)
                while data := sock.recv(65536):  # all sent: wait for the server's answer and close
                    self.answer += data
            except (ConnectionError, TimeoutError):
                pass
            self.closed_after = time.monotonic() - started


def test_a_slowloris_sending_a_header_byte_at_a_time_is_closed_after_the_header_timeout(server):
    slow = Trickler(server, b"GET /health HTTP/1.1\r\nHost: t\r\n", b"X-Slow: " + b"a" * 1000, interval=0.5)
    slow.start()
    slow.join(HEADER_TIMEOUT + SLACK)
    assert slow.closed_after is not None and slow.closed_after < HEADER_TIMEOUT + SLACK
    assert not slow.answer.startswith(b"HTTP/1.1 200")


def test_a_body_sent_a_byte_at_a_time_gets_408_after_body_timeout(server):
    slow = Trickler(server, api_post(server, b"Content-Length: 1000\r\n\r\n"), b" " * 1000, interval=0.2)
    slow.start()
    slow.join(BODY_TIMEOUT + SLACK)
    assert slow.closed_after is not None and slow.closed_after < BODY_TIMEOUT + SLACK
    assert slow.answer.startswith(b"HTTP/1.1 408")


def test_other_clients_are_answered_at_once_while_slow_and_broken_ones_hammer_the_server(server):
    slow = [Trickler(server, b"GET /health HTTP/1.1\r\nHost: t\r\n", b"X-Slow: " + b"a" * 1000, interval=0.5)
            for _ in range(20)]
    slow += [Trickler(server, api_post(server, b"Content-Length: 1000\r\n\r\n"), b" " * 1000, interval=0.2)
             for _ in range(5)]
    stop_garbage = threading.Event()

    def garbage() -> None:
        while not stop_garbage.is_set():
            for junk in (bytes(range(256)), TLS_CLIENT_HELLO, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n"):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), 2) as sock:
                    sock.sendall(junk)
                    sock.recv(1024)

    garbage_thread = threading.Thread(target=garbage, daemon=True)
    for thread in [*slow, garbage_thread]:
        thread.start()
    slowest, answered = 0.0, 0
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            deadline = time.monotonic() + HEADER_TIMEOUT + 1  # while every slow connection is still open
            while time.monotonic() < deadline:
                for path, status in (("/health", 200), ("/known", 302)):
                    started = time.monotonic()
                    response = client.get(path, follow_redirects=False)
                    slowest = max(slowest, time.monotonic() - started)
                    assert response.status_code == status
                    answered += 1
    except BaseException:
        for thread in slow:
            thread.stop.set()
        raise
    finally:
        stop_garbage.set()
    assert answered > 20 and slowest < 1.0, f"{answered} requests, the slowest took {slowest:.2f} s"
    for thread in [*slow, garbage_thread]:
        thread.join(HEADER_TIMEOUT + SLACK)
    assert all(t.closed_after is not None and t.closed_after < HEADER_TIMEOUT + SLACK for t in slow)
