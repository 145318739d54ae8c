"""/docs: Swagger UI over /openapi.json, served from the pyz itself (no CDN: it must work offline)."""

from __future__ import annotations

from functools import cache

from quart import Blueprint, Response
from quart_schema import hide
from werkzeug.exceptions import NotFound

blueprint = Blueprint("docs", __name__)

_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}

# The start-up script is a file, not inline, so the page works under a CSP without 'unsafe-inline'.
_INIT_JS = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout"
  });
});
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>boltlink API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head><body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
<script src="/docs/assets/init.js"></script>
</body></html>
"""


# Everything from this server; web/security_headers.py's default ('none' for all) would blank the page.
_CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",  # Swagger UI's icons are data: URLs in its stylesheet
    "connect-src 'self'",  # /openapi.json, and "Try it out"
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
])


@blueprint.get("/docs")
@hide
async def docs_page() -> Response:
    return Response(_PAGE, content_type="text/html; charset=utf-8", headers={"Content-Security-Policy": _CSP})


@blueprint.get("/docs/assets/<name>")
@hide
async def docs_asset(name: str) -> Response:
    if name == "init.js":
        return Response(_INIT_JS, content_type="text/javascript")
    if name not in _ASSETS:
        raise NotFound()
    response = Response(_asset_bytes(name), content_type=_ASSETS[name])
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response


@cache
def _asset_bytes(name: str) -> bytes:
    from swagger_ui_bundle import swagger_ui_path  # imported late: only /docs needs it

    return (swagger_ui_path / name).read_bytes()
