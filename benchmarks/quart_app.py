"""A straightforward Quart redirect app, as one would write it without thinking about speed.

    hypercorn -w 2 -k uvloop -b 127.0.0.1:8000 benchmarks.quart_app:app
    uvicorn --workers 2 --loop uvloop --http httptools --port 8000 benchmarks.quart_app:app

The same dict of links as benchmarks/asgi_dict.py, looked up in a route:
what boltlink's redirect would cost with Quart's routing, request and
response objects and nothing of boltlink's own. Not boltlink code.
"""

from __future__ import annotations

from quart import Quart, abort, redirect
from werkzeug.wrappers.response import Response

from benchmarks.slugs import links

LINKS = links()

app = Quart(__name__)


@app.get("/<slug>")
async def follow(slug: str) -> Response:
    url = LINKS.get(slug)
    if url is None:
        abort(404)
    return redirect(url, 302)
