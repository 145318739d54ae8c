"""The baseline: a raw ASGI app answering GET /<slug> from a dict, nothing else.

    hypercorn -w 2 -k uvloop -b 127.0.0.1:8000 benchmarks.asgi_dict:app

302 with Location for a known slug, 404 otherwise: the least any redirect
server can do per request, so its req/s is the ceiling the server stack
(hypercorn, uvloop, this machine) allows. Not boltlink code.
"""

from __future__ import annotations

from typing import Any

from benchmarks.slugs import links

LINKS = {f"/{slug}": url.encode("latin-1") for slug, url in links().items()}
NOT_FOUND_BODY = b"not found"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    location = LINKS.get(scope["path"])
    if location is None:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"9")]})
        await send({"type": "http.response.body", "body": NOT_FOUND_BODY})
        return
    await send({"type": "http.response.start", "status": 302,
                "headers": [(b"location", location), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _lifespan(receive: Any, send: Any) -> None:
    """Nothing to open or close; answer the server's startup and shutdown so it doesn't warn."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
