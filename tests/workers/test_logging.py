"""Log lines: the JSON and text formats, request ids on records and responses, the access log.

The last test runs `serve` as a real process (helpers from test_serve.py) and
reads its stderr as a log shipper would: one JSON object per line.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart
from test_serve import STOP_TIMEOUT, Start, serve
from test_serve import start as start  # the fixture that runs boltlink and reaps it

from boltlink.config import Config
from boltlink.logformat import JsonFormatter, RequestIdFilter, TextFormatter, current_request_id
from boltlink.store import create_store
from boltlink.store.base import LinkStore
from boltlink.web import create_app
from boltlink.web.request_log import RequestLogMiddleware

GENERATED_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
FIELDS = {"time", "level", "process", "pid", "logger", "message"}


@pytest.fixture
def capture() -> Iterator[Callable[[logging.Formatter], io.StringIO]]:
    """capture(formatter) -> the text that formatter writes for records of the "boltlink.test" logger."""
    logger = logging.getLogger("boltlink.test")
    handlers: list[logging.Handler] = []

    def attach(formatter: logging.Formatter) -> io.StringIO:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        logger.addHandler(handler)
        handlers.append(handler)
        return stream

    logger.setLevel(logging.DEBUG)
    yield attach
    for handler in handlers:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def in_request(request_id: str, emit: Callable[[], None]) -> None:
    token = current_request_id.set(request_id)
    try:
        emit()
    finally:
        current_request_id.reset(token)


# -- formats ------------------------------------------------------------------------------------------


def test_json_line_carries_time_level_process_pid_message_and_request_id(capture: Any) -> None:
    stream = capture(JsonFormatter("api-3"))

    in_request("req-1", lambda: logging.getLogger("boltlink.test").warning("two\nlines %s", "here"))

    line = stream.getvalue()
    assert line.count("\n") == 1
    record = json.loads(line)
    assert FIELDS | {"request_id"} <= record.keys()
    assert datetime.fromisoformat(record["time"]).utcoffset() is not None
    assert (record["level"], record["process"], record["pid"]) == ("WARNING", "api-3", os.getpid())
    assert (record["logger"], record["message"], record["request_id"]) == ("boltlink.test", "two\nlines here", "req-1")


def test_json_line_outside_a_request_has_no_request_id_and_keeps_extra_fields(capture: Any) -> None:
    stream = capture(JsonFormatter("aggregator"))

    logging.getLogger("boltlink.test").info("batch", extra={"events": 12})

    record = json.loads(stream.getvalue())
    assert "request_id" not in record
    assert (record["process"], record["events"]) == ("aggregator", 12)


def test_json_line_of_an_exception_holds_the_traceback_on_the_same_line(capture: Any) -> None:
    stream = capture(JsonFormatter("api-0"))

    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("boltlink.test").exception("failed")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["message"] == "failed"
    assert "Traceback" in record["exc_info"] and "ValueError: boom" in record["exc_info"]


def test_text_line_names_the_process_and_the_request(capture: Any) -> None:
    stream = capture(TextFormatter("api-0"))

    in_request("req-2", lambda: logging.getLogger("boltlink.test").info("hello"))
    logging.getLogger("boltlink.test").info("outside")

    inside, outside = stream.getvalue().splitlines()
    assert inside.endswith(f" INFO api-0[{os.getpid()}] boltlink.test [req-2]: hello")
    assert outside.endswith(f" INFO api-0[{os.getpid()}] boltlink.test: outside")


# -- request ids and the access log in the app ------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LinkStore]:
    store = create_store(Config(data_dir=str(tmp_path)))
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def make_app(tmp_path: Path, store: LinkStore) -> Callable[..., Quart]:
    def make(**settings: Any) -> Quart:
        return create_app(Config(data_dir=str(tmp_path), **settings), store)

    return make


class RecordList(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """The boltlink records logged from here on, stamped with their request id as the workers' handler does."""
    logger = logging.getLogger("boltlink")
    handler = RecordList()
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


async def test_every_response_carries_a_new_request_id(make_app: Callable[..., Quart]) -> None:
    client = make_app().test_client()

    first = (await client.get("/health")).headers["X-Request-ID"]
    second = (await client.get("/nope")).headers["X-Request-ID"]

    assert GENERATED_ID.fullmatch(first) and GENERATED_ID.fullmatch(second)
    assert first != second


async def test_a_sane_incoming_request_id_is_echoed(make_app: Callable[..., Quart]) -> None:
    sane = "Edge-42_a.b" + "x" * 117  # 128 characters, the longest taken

    response = await make_app().test_client().get("/health", headers={"X-Request-ID": sane})

    assert response.headers["X-Request-ID"] == sane


@pytest.mark.parametrize("insane", ["x" * 129, "has space", 'quo"te', "back\\slash", "ünï"])
async def test_an_insane_incoming_request_id_is_replaced(make_app: Callable[..., Quart], insane: str) -> None:
    response = await make_app().test_client().get("/health", headers={"X-Request-ID": insane})

    replaced = response.headers["X-Request-ID"]
    assert replaced != insane
    assert GENERATED_ID.fullmatch(replaced)


async def test_records_logged_while_handling_a_request_carry_its_id(
    make_app: Callable[..., Quart], records: list[logging.LogRecord]
) -> None:
    app = make_app()

    @app.get("/-/log-something")
    async def log_something() -> str:
        logging.getLogger("boltlink.web").warning("handling")
        return "ok"

    response = await app.test_client().get("/-/log-something", headers={"X-Request-ID": "trace-7"})

    assert response.status_code == 200
    handling = [record for record in records if record.getMessage() == "handling"]
    assert [record.request_id for record in handling] == ["trace-7"]  # type: ignore[attr-defined]


async def test_access_log_writes_one_record_per_request_with_its_id(
    make_app: Callable[..., Quart], records: list[logging.LogRecord]
) -> None:
    client = make_app(access_log=True).test_client()

    ok = await client.get("/health", headers={"X-Request-ID": "probe-1"})
    missing = await client.get("/nope?secret=1")

    access = [record for record in records if record.name == "boltlink.access"]
    fields = [(r.method, r.path, r.status, r.request_id) for r in access]  # type: ignore[attr-defined]
    assert fields == [("GET", "/health", 200, "probe-1"), ("GET", "/nope", 404, missing.headers["X-Request-ID"])]
    assert ok.headers["X-Request-ID"] == "probe-1"
    assert all(record.duration_ms >= 0 and record.client for record in access)  # type: ignore[attr-defined]
    assert '"GET /health HTTP/1.1" 200' in access[0].getMessage()


async def test_access_log_is_off_by_default(
    make_app: Callable[..., Quart], records: list[logging.LogRecord]
) -> None:
    client = make_app().test_client()

    await client.get("/health")
    await client.get("/nope")

    assert [record for record in records if record.name == "boltlink.access"] == []


async def test_access_log_says_500_for_an_app_that_failed_and_499_for_a_client_that_left(
    records: list[logging.LogRecord],
) -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def abandoned(scope: Any, receive: Any, send: Any) -> None:
        return None  # what Quart does when the client disconnects before the response

    async def send(message: Any) -> None:
        return None

    scope = {"type": "http", "method": "GET", "path": "/x", "raw_path": b"/x", "headers": [], "client": None}
    with pytest.raises(RuntimeError):
        await RequestLogMiddleware(failing, access_log=True)(scope, None, send)
    await RequestLogMiddleware(abandoned, access_log=True)(scope, None, send)

    assert [record.status for record in records] == [500, 499]  # type: ignore[attr-defined]


# -- serve, as a log shipper reads it ---------------------------------------------------------------


@pytest.mark.slow
def test_serve_with_json_logs_writes_only_json_lines_and_access_lines_carry_request_ids(start: Start) -> None:
    server = serve(start, env={"BOLTLINK_LOG_FORMAT": "json", "BOLTLINK_ACCESS_LOG": "1"}).wait_healthy()

    given = httpx.get(server.url + "/health", headers={"X-Request-ID": "ship-1"})
    generated = httpx.get(server.url + "/nope")
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait_exit(STOP_TIMEOUT) == 0, server.stderr

    lines = server.stderr.splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(record, dict) and record.keys() >= FIELDS for record in records), server.stderr
    assert {record["process"] for record in records} == {"api"}
    assert {record["pid"] for record in records} == {server.proc.pid}
    access = {record["request_id"]: record for record in records if record["logger"] == "boltlink.access"}
    generated_id = generated.headers["X-Request-ID"]
    assert given.headers["X-Request-ID"] == "ship-1"
    assert (access["ship-1"]["path"], access["ship-1"]["status"]) == ("/health", 200)
    assert (access[generated_id]["path"], access[generated_id]["status"]) == ("/nope", 404)
    assert any(record["logger"] == "boltlink.api" and record["message"].startswith("listening") for record in records)
