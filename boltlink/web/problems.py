"""Every error response, written once: RFC 9457 problem JSON, or a small HTML page for browsers.

Handlers raise (boltlink.errors or werkzeug's HTTPException); the handlers
registered here turn that into the response. No stack trace reaches a client.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError
from quart import Quart, Request, Response, has_request_context, request, websocket
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from boltlink.errors import BoltlinkError, FieldError, InvalidInput
from boltlink.web.error_log import RepeatedErrorLog

log = logging.getLogger("boltlink.web")

PROBLEM_JSON = "application/problem+json"

_HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{status} {title}</title><style>{style}</style></head>
<body><h1>{status} {title}</h1><p>{detail}</p></body></html>
"""
_PAGE_STYLE = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}"
# The page's own policy (web/security_headers.py keeps it): its one style element, by hash; no script at all.
_PAGE_CSP = "; ".join([
    "default-src 'none'",
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(_PAGE_STYLE.encode()).digest()).decode()}'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
])


def problem(status: int, detail: str, *, title: str | None = None, type_: str = "about:blank",
            extensions: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Response:
    """The error response for the current request, negotiated by Accept outside /api/."""
    title = title or _phrase(status)
    if _wants_html():
        body = _HTML_PAGE.format(status=status, title=html.escape(title), detail=html.escape(detail),
                                 style=_PAGE_STYLE)
        response = Response(body, status=status, content_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": _PAGE_CSP})
    else:
        document = {"type": type_, "title": title, "status": status, "detail": detail, **(extensions or {})}
        response = Response(json.dumps(document), status=status, content_type=PROBLEM_JSON)
    response.headers.update(headers or {})
    return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _incoming() -> Any:
    """What is being answered: an HTTP request, or a WebSocket handshake (no route takes one: it gets an error)."""
    return request if has_request_context() else websocket


def _wants_html() -> bool:
    # API clients always get JSON; elsewhere a browser (asking for text/html first) gets a page.
    incoming = _incoming()
    if incoming.path.startswith("/api/"):
        return False
    best = incoming.accept_mimetypes.best_match([PROBLEM_JSON, "application/json", "text/html"])
    return best == "text/html"


# Printable ASCII but the space: what a query string keeps as it came.
QUERY_SAFE = "".join(map(chr, range(0x21, 0x7F)))


class TolerantRequest(Request):
    """A request whose malformed parts get a clear answer instead of a UnicodeDecodeError (a 500).

    - Raw non-ASCII bytes in the query string (HTTP/2 lets them through; h11 answers 400 itself)
      are percent-encoded as they came: Quart decodes the query string as UTF-8 before any handler.
    - A body that is not UTF-8 is not JSON either: 400, like any malformed body.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.query_string.isascii():
            self.query_string = quote(self.query_string, safe=QUERY_SAFE).encode("ascii")

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        try:
            return await super().get_json(force=force, silent=silent, cache=cache)
        except UnicodeDecodeError as exc:
            return None if silent else self.on_json_loading_failed(exc)


def register_error_handlers(app: Quart) -> None:
    server_errors = RepeatedErrorLog(log)  # a full disk fails every redirect alike: one line per 10 s

    @app.errorhandler(BoltlinkError)
    async def boltlink_error(exc: BoltlinkError) -> Response:
        if exc.status >= 500:
            server_errors.error(f"{type(exc).__name__}: {exc.detail}")
        return problem(exc.status, exc.detail, title=exc.title, type_=exc.problem_type,
                       extensions=exc.extensions(), headers=exc.headers())

    @app.errorhandler(RequestSchemaValidationError)
    async def schema_error(exc: RequestSchemaValidationError) -> Response:
        return await boltlink_error(invalid_input_from(exc.validation_error))

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {}
        if status == 405 and exc.get_headers():
            headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return problem(status, _http_detail(exc), headers=headers)

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", _incoming().method, _incoming().path)
        return problem(500, "The server hit an unexpected error; it has been logged.")


def _http_detail(exc: HTTPException) -> str:
    if exc.code == 413:
        return "The request body is larger than this server accepts."
    if exc.code == 404:
        return "Nothing is here."
    if exc.code == 405:
        return f"{_incoming().method} is not allowed here."
    if exc.code == 415:
        return "Send the body as JSON with Content-Type: application/json."
    if exc.code == 400:
        return "The request body is not valid JSON." if _incoming().is_json else "The request is malformed."
    return exc.description or _phrase(exc.code or 500)


def invalid_input_from(error: Exception) -> InvalidInput:
    """Pydantic's complaints as field errors; anything else (e.g. not JSON) as a body error."""
    if isinstance(error, ValidationError):
        fields = [
            FieldError(".".join(str(p) for p in e["loc"]) or "body", _pydantic_message(e))
            for e in error.errors()
        ]
        return InvalidInput(fields)
    return InvalidInput.field("body", "must be a JSON object")


def _pydantic_message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "is not a known field"
    if error["type"] == "missing":
        return "is required"
    return str(error["msg"])
