"""The web UI: one page at / and its static files at /ui/<version>/<name>, all from inside the pyz.

The page is plain ES modules talking to the public /api/v1 endpoints with the
user's API key, so it can do nothing the API can't. "ui" is a reserved slug,
so the assets never shadow a short link. Their URLs carry a hash of their
content: a new build changes every URL, so browsers may cache them for a year.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from quart import Blueprint, Response
from quart_schema import hide
from werkzeug.exceptions import NotFound

blueprint = Blueprint("ui", __name__)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
VERSION_MARK = "{{version}}"  # in index.html, replaced by the assets' content hash

# No inline script or style anywhere, and Trusted Types with no policy: assigning
# a string to innerHTML (or any other HTML sink) throws instead of parsing it.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "img-src 'self' data: blob:",
    "style-src 'self'",
    "script-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Assets:
    version: str
    files: dict[str, bytes]  # name -> content, index.html excluded
    index: bytes


@cache
def assets() -> Assets:
    """Read the files once per process; they are small (see tests/web/test_ui_assets.py)."""
    folder = resources.files("boltlink.web").joinpath("static/ui")
    files = {entry.name: entry.read_bytes() for entry in folder.iterdir()
             if entry.is_file() and "." + entry.name.rpartition(".")[2] in _TYPES}
    index = files.pop("index.html")
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name])
    version = digest.hexdigest()[:12]
    return Assets(version, files, index.replace(VERSION_MARK.encode(), version.encode()))


@blueprint.after_request
async def secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@blueprint.get("/")
@hide
async def page() -> Response:
    response = Response(assets().index, content_type=_TYPES[".html"])
    response.cache_control.no_cache = True  # always revalidate: it names the current assets
    return response


@blueprint.get("/ui/<version>/<name>")
@hide
async def asset(version: str, name: str) -> Response:
    current = assets()
    if name not in current.files:
        raise NotFound()
    response = Response(current.files[name], content_type=_TYPES["." + name.rpartition(".")[2]])
    if version == current.version:
        response.cache_control.public = True
        response.cache_control.max_age = 365 * 86400
        response.cache_control.immutable = True
    else:
        # A page from another build (e.g. mid-reload) still gets today's file, just not cached for good.
        response.cache_control.no_cache = True
    return response
