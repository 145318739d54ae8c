"""The HTTP API: create_app(config) builds the Quart app; nothing connects at import time."""

from __future__ import annotations

from quart import Quart
from quart_schema import APIKeySecurityScheme, HttpSecurityScheme, Info, QuartSchema

from boltlink import __version__
from boltlink.config import Config
from boltlink.events import create_sink
from boltlink.events.base import EventSink
from boltlink.store import create_store
from boltlink.store.base import LinkStore
from boltlink.web import cluster, docs, health, links, metrics, qr, redirect, stats, ui
from boltlink.web.fast_redirect import FastRedirect
from boltlink.web.openapi import BoltlinkOpenAPIProvider
from boltlink.web.problems import TolerantRequest, register_error_handlers
from boltlink.web.request_log import RequestLogMiddleware
from boltlink.web.security_headers import SecurityHeadersMiddleware
from boltlink.web.state import AppState
from boltlink.web.telemetry import TelemetryMiddleware, name_routes


def create_app(config: Config, store: LinkStore | None = None, sink: EventSink | None = None) -> Quart:
    """The API app. Pass an opened store and sink to own their lifetime; otherwise the app opens and closes them."""
    app = Quart("boltlink")
    app.request_class = TolerantRequest
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_size
    app.config["BODY_TIMEOUT"] = config.body_timeout  # Quart answers 408 past it: a trickled body can't hold on
    QuartSchema(
        app,
        info=Info(title="boltlink", version=__version__,
                  description="Shorten links, follow them, and manage them with an API key."),
        swagger_ui_path=None,  # /docs is served by web/docs.py from bundled files
        redoc_ui_path=None,
        scalar_ui_path=None,
        openapi_provider_class=BoltlinkOpenAPIProvider,  # problems as problem+json, non-JSON answers too
        security_schemes={
            "apiKey": APIKeySecurityScheme(in_="header", name="X-API-Key"),
            "bearer": HttpSecurityScheme(scheme="bearer"),
        },
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # fields in the order the models declare them
    state = AppState(config=config, store=store or create_store(config), sink=sink or create_sink(config, "api"))
    app.extensions["boltlink"] = state
    app.after_serving(state.links.close)  # first: a warm-up still running stops before the store closes
    if store is None:
        app.before_serving(state.store.open)
        app.after_serving(state.store.close)
    if sink is None:
        app.before_serving(state.sink.open)
        app.after_serving(state.sink.close)
    app.after_serving(state.limiter.close)
    app.before_serving(state.links.start_warm_up)  # once the store is open; serving does not wait for it

    register_error_handlers(app)
    for module in (health, docs, metrics, links, stats, cluster, ui, qr, redirect):
        app.register_blueprint(module.blueprint)
    if config.test_hooks:
        from boltlink.web import testhooks

        app.register_blueprint(testhooks.blueprint)
    name_routes(app)
    app.asgi_app = FastRedirect(app.asgi_app, state)  # type: ignore[method-assign]
    app.asgi_app = RequestLogMiddleware(app.asgi_app, access_log=config.access_log)  # type: ignore[method-assign]
    app.asgi_app = SecurityHeadersMiddleware(app.asgi_app)  # type: ignore[method-assign]
    app.asgi_app = TelemetryMiddleware(app.asgi_app, state.counters, state)  # type: ignore[method-assign]
    return app
