"""GET /metrics: the Prometheus text format, cluster-wide under a cluster (boltlink.metrics has the figures).

Under the cluster the master holds every worker's counts, so the API worker
that gets the scrape asks it over the control socket; `serve` alone shows
its own. With metrics_port set, the master serves /metrics on that port and
the API port answers 404; with metrics_token set, a scrape needs
`Authorization: Bearer <token>`.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request
from quart_schema import document_response, tag

from boltlink.errors import NotFound, Unauthorized
from boltlink.metrics import CONTENT_TYPE, authorized, build_info, render, this_process
from boltlink.web.models import Problem
from boltlink.web.openapi import document_media
from boltlink.web.state import AppState, app_state

blueprint = Blueprint("metrics", __name__)



@blueprint.get("/metrics")
@tag(["operations"])
@document_media(200, "The Prometheus text exposition format.", "text/plain")
@document_response(Problem, 401)
@document_response(Problem, 404)
async def metrics() -> Response:
    """Prometheus metrics: requests by route and status class, latency histogram, clicks, processes.

    Needs `Authorization: Bearer <metrics_token>` when that setting is on; 404 when metrics_port moved it.
    """
    state = app_state()
    config = state.config
    if config.metrics_port is not None:
        raise NotFound(f"/metrics is served on port {config.metrics_port} (metrics_port)")
    if not authorized(request.headers.get("Authorization"), config.metrics_token):
        raise Unauthorized("/metrics needs Authorization: Bearer <metrics_token>")
    snapshot = await state.cluster_metrics() if state.cluster_metrics is not None else own_snapshot(state)
    return Response(render(snapshot), content_type=CONTENT_TYPE)


def own_snapshot(state: AppState) -> dict[str, Any]:
    """This process alone (`serve`): its requests, and the clicks its in-process aggregator recorded."""
    counts = state.counters.snapshot()
    aggregator = state.aggregator_figures
    return {
        "build": build_info(),
        "http": counts,
        "clicks_queued": counts["clicks_queued"],
        "clicks_aggregated": int(aggregator.get("recorded", 0)) if aggregator is not None else 0,
        "aggregator": aggregator,
        "processes": [this_process("serve", "api")],
    }
