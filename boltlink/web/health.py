"""/health (is the process alive?) and /ready (should it get traffic?)."""

from __future__ import annotations

from quart import Blueprint
from quart_schema import validate_response

from boltlink import __version__
from boltlink.errors import StoreUnavailable
from boltlink.web.models import Health, Readiness
from boltlink.web.state import app_state

blueprint = Blueprint("health", __name__)


@blueprint.get("/health")
@validate_response(Health)
async def health() -> Health:
    """Liveness: answers while the event loop runs; touches no dependency."""
    return Health(status="ok", version=__version__)


@blueprint.get("/ready")
@validate_response(Readiness, 200)
@validate_response(Readiness, 503)
async def ready() -> tuple[Readiness, int]:
    """Readiness: 503 while shutting down, when the store does not answer, or when clicks are being lost.

    With Redis down the answer stays 200 ("degraded"): redirects work and
    clicks are spooled locally, and taking every pod out of service would
    turn a Redis outage into a full one. The same holds for a store that
    stops answering while this process has links cached: those keep
    redirecting (writes answer 503), so the process stays in service.
    """
    state = app_state()
    events, events_detail = state.sink.health()
    if state.draining:
        return Readiness(status="draining", store="unknown", events=events_detail), 503
    try:
        await state.store.ping()
    except StoreUnavailable as exc:
        serving = len(state.links) > 0 and events != "failing"  # cached links still redirect
        return Readiness(status="degraded" if serving else "unavailable", store=exc.detail,
                         events=events_detail), 200 if serving else 503
    if events == "failing":
        return Readiness(status="unavailable", store="ok", events=events_detail), 503
    return Readiness(status="degraded" if events == "degraded" else "ready", store="ok", events=events_detail), 200
