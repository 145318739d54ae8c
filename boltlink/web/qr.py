"""GET /<slug>/qr: the short link as a QR code (SVG or PNG), public like the redirect itself."""

from __future__ import annotations

import io
from typing import Literal

from pydantic import Field
from quart import Blueprint, Response
from quart_schema import document_response, tag, validate_querystring

from boltlink.errors import LinkNotFound
from boltlink.validation import SLUG_RE
from boltlink.web.links import short_base
from boltlink.web.models import Problem, Strict
from boltlink.web.openapi import document_media
from boltlink.web.state import app_state

blueprint = Blueprint("qr", __name__)

QR_BORDER = 4  # the quiet zone the QR standard asks for, in modules
CONTENT_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


class QrQuery(Strict):
    format: Literal["svg", "png"] = "svg"
    size: int = Field(256, ge=64, le=2048, description="Largest width in pixels; whole modules only, so often less.")


@blueprint.get("/<slug>/qr")
@tag(["redirect"])
@validate_querystring(QrQuery)
@document_media(200, "The QR code of the short URL.", *CONTENT_TYPES.values())
@document_response(Problem, 404)
@document_response(Problem, 422)
async def qr_code(slug: str, query_args: QrQuery) -> Response:
    """The short link's QR code. Drawing it is not a click."""
    if not SLUG_RE.fullmatch(slug) or await app_state().store.get_link(slug) is None:
        raise LinkNotFound(slug)
    image = render_qr(short_base() + slug, query_args.format, query_args.size)
    response = Response(image, content_type=CONTENT_TYPES[query_args.format])
    # The code depends only on the slug and the base URL, never on the link's target, so it can be cached.
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def render_qr(text: str, kind: str, size: int) -> bytes:
    import segno  # imported late: only this route needs it, and every worker start would pay ~5 ms

    code = segno.make(text, error="m", micro=False)
    modules = code.symbol_size(scale=1, border=QR_BORDER)[0]
    buffer = io.BytesIO()
    # Dark on white whatever the page behind it: a transparent code is unreadable on a dark theme.
    options = {"xmldecl": False} if kind == "svg" else {}
    code.save(buffer, kind=kind, scale=max(1, size // modules), border=QR_BORDER, dark="#000", light="#fff",
              **options)
    return buffer.getvalue()
