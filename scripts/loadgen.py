#!/usr/bin/env python3
"""A small, bounded HTTP/1.1 load generator for 127.0.0.1, for the cluster tests and by hand.

    python scripts/loadgen.py http://127.0.0.1:5000/x --connections 64 --duration 10

N keep-alive connections each send GET requests back to back (or --pause
seconds apart, for a light load) until the duration or the request count is
reached (or a stop event is set), and always stop by themselves. A response
that says `Connection: close` is followed by a reconnect, which is not a
failure. Failed, by kind:

    refused      connection refused while connecting
    reset        connection reset (or broken pipe) while connecting or mid-request
    no_response  the server closed the connection before any byte of a response
    incomplete   the server closed the connection in the middle of a response
    timeout      no complete response (or connection) within --timeout
    bad_status   a status other than 2xx or 3xx
    protocol     a response that is not HTTP/1.x
    other        any other socket error

Every attempted request ends as exactly one of ok or a failure: sent == ok + failed.
Only asyncio streams of the standard library: no dependency beyond Python 3.11.
From tests: `from loadgen import run_load, BackgroundLoad` with scripts/ on sys.path.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ALLOWED_HOST = "127.0.0.1"
MAX_CONNECTIONS = 1024
MAX_DURATION = 600.0  # seconds: a run never lasts longer, whatever it is asked
MAX_REQUESTS = 10_000_000
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
RECONNECT_PAUSE = 0.01  # after a failed connect, so a server that is down is not hammered
FAILURE_KINDS = ("refused", "reset", "no_response", "incomplete", "timeout", "bad_status", "protocol", "other")
ERROR_SAMPLES = 20
LATENCY_SAMPLES = 100_000  # a uniform sample of this many latencies is kept: memory stays bounded


class LoadError(ValueError):
    """The load asked for is not one this tool will make (host, bounds)."""


@dataclass
class Target:
    host: str
    port: int
    request: bytes  # the exact bytes of one GET

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise LoadError(f"only http:// URLs, not {url!r}")
        if parts.hostname != ALLOWED_HOST:
            raise LoadError(f"only {ALLOWED_HOST} may be loaded, not {parts.hostname!r}")
        port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {ALLOWED_HOST}:{port}\r\n"
            "User-Agent: boltlink-loadgen/1\r\nAccept: */*\r\n\r\n"
        ).encode("ascii")
        return cls(ALLOWED_HOST, port, request)


@dataclass
class LoadResult:
    """Counts of one run. Live while the run goes on (BackgroundLoad.result), final after."""

    url: str
    connections: int
    elapsed: float = 0.0
    sent: int = 0
    ok: int = 0
    failed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAILURE_KINDS, 0))
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    per_second: list[int] = field(default_factory=list)  # ok responses completed in second 0, 1, ...
    reconnects: int = 0  # after a response that said Connection: close: not failures
    connects: int = 0  # successful TCP connects
    workers: collections.Counter[str] = field(default_factory=collections.Counter)  # by worker_header
    errors: list[str] = field(default_factory=list)  # the first few failures, described
    latencies: list[float] = field(default_factory=list, repr=False)  # a sample (LATENCY_SAMPLES)
    finished: bool = False

    def add_latency(self, seconds: float) -> None:
        """Reservoir sampling over all ok responses so far (Vitter's algorithm R)."""
        if len(self.latencies) < LATENCY_SAMPLES:
            self.latencies.append(seconds)
        else:
            slot = random.randrange(self.ok)
            if slot < LATENCY_SAMPLES:
                self.latencies[slot] = seconds

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url, "connections": self.connections, "elapsed": round(self.elapsed, 3),
            "sent": self.sent, "ok": self.ok, "failed": self.failed_total, "failed_by_kind": dict(self.failed),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, "per_second": self.per_second,
            "reconnects": self.reconnects, "connects": self.connects, "workers": dict(self.workers),
            "latency_ms": {"p50": round(self.percentile(0.5) * 1000, 2),
                           "p99": round(self.percentile(0.99) * 1000, 2),
                           "max": round(max(self.latencies, default=0.0) * 1000, 2)},
            "errors": self.errors,
        }

    def summary(self) -> str:
        rate = self.ok / self.elapsed if self.elapsed else 0.0
        failed = ", ".join(f"{k} {v}" for k, v in self.failed.items() if v) or "none"
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items())) or "none"
        lines = [
            f"{self.url}: {self.connections} connections, {self.elapsed:.1f} s",
            f"  sent {self.sent}, ok {self.ok}, failed {self.failed_total} ({failed})",
            f"  {rate:.0f} ok/s; per second: {' '.join(str(n) for n in self.per_second)}",
            f"  statuses: {statuses}; connects {self.connects}, reconnects after Connection: close "
            f"{self.reconnects}",
            f"  latency p50 {self.percentile(0.5) * 1000:.1f} ms, p99 {self.percentile(0.99) * 1000:.1f} ms, "
            f"max {max(self.latencies, default=0.0) * 1000:.1f} ms",
        ]
        if self.workers:
            lines.append("  by worker: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.workers.items())))
        lines += [f"  error: {e}" for e in self.errors[:5]]
        return "\n".join(lines)


class _Failure(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class _Run:
    def __init__(self, target: Target, result: LoadResult, deadline: float, requests: int | None,
                 timeout: float, should_stop: Callable[[], bool], worker_header: str | None,
                 pause: float) -> None:
        self.target = target
        self.result = result
        self.deadline = deadline
        self.requests = requests
        self.timeout = timeout
        self.should_stop = should_stop
        self.worker_header = worker_header.lower().encode() if worker_header else None
        self.pause = pause
        self.started = time.monotonic()

    def _claim(self) -> bool:
        """Take one request from the budget; False when the run is over."""
        if time.monotonic() >= self.deadline or self.should_stop():
            return False
        if self.requests is not None and self.result.sent >= self.requests:
            return False
        self.result.sent += 1
        return True

    def _fail(self, kind: str, detail: str) -> None:
        self.result.failed[kind] += 1
        if len(self.result.errors) < ERROR_SAMPLES:
            self.result.errors.append(f"{time.monotonic() - self.started:.3f}s {kind}: {detail}")

    async def connection(self) -> None:
        """One client connection: request after request, reconnecting whenever the server closed it."""
        writer: asyncio.StreamWriter | None = None
        reader: asyncio.StreamReader | None = None
        try:
            while self._claim():
                began = time.monotonic()
                try:
                    # A request may run past the deadline by at most its timeout: the run stays bounded.
                    async with asyncio.timeout(self.timeout):
                        if writer is None:
                            reader, writer = await self._connect()
                        assert reader is not None
                        writer.write(self.target.request)
                        await writer.drain()
                        status, close = await self._read_response(reader)
                except _Failure as failure:
                    self._fail(failure.kind, str(failure))
                    writer = await _close(writer)
                    if failure.kind in ("refused", "other"):
                        await asyncio.sleep(RECONNECT_PAUSE)
                    continue
                except TimeoutError:
                    self._fail("timeout", f"no response within {self.timeout:g} s")
                    writer = await _close(writer)
                    continue
                except (ConnectionResetError, BrokenPipeError) as exc:
                    self._fail("reset", repr(exc))
                    writer = await _close(writer)
                    continue
                except OSError as exc:
                    self._fail("other", repr(exc))
                    writer = await _close(writer)
                    await asyncio.sleep(RECONNECT_PAUSE)
                    continue
                done = time.monotonic()
                self.result.statuses[status] += 1
                if 200 <= status < 400:
                    self.result.ok += 1
                    second = int(done - self.started)
                    per_second = self.result.per_second
                    while len(per_second) <= second:
                        per_second.append(0)
                    per_second[second] += 1
                    self.result.add_latency(done - began)
                else:
                    self._fail("bad_status", f"status {status}")
                if close:
                    self.result.reconnects += 1
                    writer = await _close(writer)
                if self.pause:
                    await asyncio.sleep(self.pause)
        finally:
            await _close(writer)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            reader, writer = await asyncio.open_connection(self.target.host, self.target.port,
                                                           limit=MAX_HEADER_BYTES)
        except ConnectionRefusedError as exc:
            raise _Failure("refused", repr(exc)) from None
        except ConnectionResetError as exc:
            raise _Failure("reset", repr(exc)) from None
        except OSError as exc:
            raise _Failure("other", f"connect: {exc!r}") from None
        self.result.connects += 1
        return reader, writer

    async def _read_response(self, reader: asyncio.StreamReader) -> tuple[int, bool]:
        """Read one whole response; its status and whether the server will close the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise _Failure("incomplete", f"connection closed after {len(exc.partial)} bytes of the head") \
                    from None
            raise _Failure("no_response", "connection closed before any response") from None
        except asyncio.LimitOverrunError:
            raise _Failure("protocol", f"response head over {MAX_HEADER_BYTES} bytes") from None
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise _Failure("protocol", f"bad status line {lines[0][:80]!r}")
        status, version = int(parts[1]), parts[0]
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise _Failure("protocol", f"bad header line {line[:80]!r}")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = headers[name] + b", " + value if name in headers else value
        connection = {t.strip() for t in headers.get(b"connection", b"").lower().split(b",")}
        close = b"close" in connection or (version == b"HTTP/1.0" and b"keep-alive" not in connection)
        if self.worker_header is not None and self.worker_header in headers:
            self.result.workers[headers[self.worker_header].decode("latin-1")] += 1
        try:
            if status < 200 or status in (204, 304):
                pass  # no body
            elif b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                await _read_chunked(reader)
            elif b"content-length" in headers:
                length = headers[b"content-length"]
                if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                    raise _Failure("protocol", f"bad Content-Length {length[:40]!r}")
                await reader.readexactly(int(length))
            else:  # delimited by the end of the connection
                await _read_to_eof(reader)
                close = True
        except asyncio.IncompleteReadError as exc:
            raise _Failure("incomplete", f"connection closed {len(exc.partial)} bytes into the body") from None
        except asyncio.LimitOverrunError:
            raise _Failure("protocol", "a chunk-size line too long") from None
        return status, close


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _Failure("protocol", f"bad chunk size {size_text[:40]!r}") from None
        total += size
        if total > MAX_BODY_BYTES:
            raise _Failure("protocol", "body too large")
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return
        await reader.readexactly(size + 2)


async def _read_to_eof(reader: asyncio.StreamReader) -> None:
    total = 0
    while chunk := await reader.read(65536):
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise _Failure("protocol", "body too large")


async def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return None


def _check_bounds(connections: int, duration: float | None, requests: int | None, timeout: float,
                  pause: float = 0.0) -> None:
    if not 1 <= connections <= MAX_CONNECTIONS:
        raise LoadError(f"connections must be 1 to {MAX_CONNECTIONS}, not {connections}")
    if duration is None and requests is None:
        raise LoadError("give a duration or a request count (or both): a run must end")
    if duration is not None and not 0 < duration <= MAX_DURATION:
        raise LoadError(f"duration must be over 0 and at most {MAX_DURATION:g} s, not {duration}")
    if requests is not None and not 1 <= requests <= MAX_REQUESTS:
        raise LoadError(f"requests must be 1 to {MAX_REQUESTS}, not {requests}")
    if not 0 < timeout <= 60:
        raise LoadError(f"timeout must be over 0 and at most 60 s, not {timeout}")
    if not 0 <= pause <= 60:
        raise LoadError(f"pause must be 0 to 60 s, not {pause}")


async def load(url: str, *, connections: int = 64, duration: float | None = None, requests: int | None = None,
               timeout: float = 5.0, should_stop: Callable[[], bool] | None = None,
               worker_header: str | None = None, pause: float = 0.0,
               result: LoadResult | None = None) -> LoadResult:
    """Load url from `connections` keep-alive connections; see the module docstring. Never runs past
    min(duration, MAX_DURATION) + timeout seconds."""
    target = Target.parse(url)
    _check_bounds(connections, duration, requests, timeout, pause)
    result = result or LoadResult(url, connections)
    started = time.monotonic()
    deadline = started + min(duration or MAX_DURATION, MAX_DURATION)
    run = _Run(target, result, deadline, requests, timeout, should_stop or (lambda: False), worker_header, pause)
    run.started = started
    try:
        await asyncio.gather(*(run.connection() for _ in range(connections)))
    finally:
        result.elapsed = time.monotonic() - started
        result.finished = True
    return result


def run_load(url: str, **options: Any) -> LoadResult:
    """load() from synchronous code: blocks until the run is over."""
    return asyncio.run(load(url, **options))


class BackgroundLoad:
    """load() in a thread of its own, for a test that does something else meanwhile.

        with BackgroundLoad(url, connections=64, duration=60) as background:
            background.wait_until(lambda r: r.ok >= 500, timeout=10)
            ...                          # reload, deploy, ...
        result = background.result       # stopped and joined on leaving the block

    `duration` still bounds the run when nobody calls stop().
    """

    def __init__(self, url: str, **options: Any) -> None:
        Target.parse(url)
        _check_bounds(options.get("connections", 64), options.get("duration"), options.get("requests"),
                      options.get("timeout", 5.0), options.get("pause", 0.0))
        self.result = LoadResult(url, options.get("connections", 64))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._options = options
        self._thread = threading.Thread(target=self._run, name="loadgen", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(load(self.result.url, should_stop=self._stop.is_set, result=self.result, **self._options))
        except BaseException as exc:  # handed to the caller by stop()
            self._error = exc

    def start(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def wait_until(self, condition: Callable[[LoadResult], bool], timeout: float, poll: float = 0.02) -> bool:
        """Poll condition(result) until true (True) or timeout / the run ended (False)."""
        deadline = time.monotonic() + timeout
        while not condition(self.result):
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return condition(self.result)
            time.sleep(poll)  # poll interval
        return True

    def stop(self) -> LoadResult:
        """End the run (each connection finishes its request in flight) and return the result."""
        self._stop.set()
        limit = self._options.get("timeout", 5.0) + 10.0
        self._thread.join(limit)
        if self._thread.is_alive():
            raise RuntimeError(f"the load did not stop within {limit:g} s")
        if self._error is not None:
            raise self._error
        return self.result

    def __enter__(self) -> BackgroundLoad:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bounded HTTP/1.1 keep-alive load against 127.0.0.1.")
    parser.add_argument("url", help="http://127.0.0.1:PORT/PATH")
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("-d", "--duration", type=float, help="seconds (default 10 unless --requests is given)")
    parser.add_argument("-n", "--requests", type=int, help="stop after this many requests")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between requests on a connection")
    parser.add_argument("--worker-header", help="count responses by this response header's value")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    duration = args.duration if args.duration is not None or args.requests else 10.0
    try:
        result = run_load(args.url, connections=args.connections, duration=duration, requests=args.requests,
                          timeout=args.timeout, worker_header=args.worker_header, pause=args.pause)
    except LoadError as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        return 130
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.summary())
    return 1 if result.failed_total else 0


if __name__ == "__main__":
    sys.exit(main())
