"""GET /api/v1/cluster: the cluster master's view of its processes, for the web UI's overview.

Only API workers started by `start-cluster` can ask the master; `serve` alone answers 404.
"""

from __future__ import annotations

from pydantic import BaseModel
from quart import Blueprint
from quart_schema import document_response, security_scheme_blueprint, tag_blueprint, validate_response

from boltlink.errors import NotFound
from boltlink.web.auth import require_scope
from boltlink.web.models import Problem
from boltlink.web.state import app_state

blueprint = Blueprint("cluster", __name__, url_prefix="/api/v1")
tag_blueprint(blueprint, ["operations"])
security_scheme_blueprint(blueprint, [{"apiKey": []}, {"bearer": []}])


# The models list what the API shows of `status --json`; the rest (the data directory's path, the
# master's socket address, per-role internals) is dropped by validation and stays on the server.
class MasterOut(BaseModel):
    pid: int
    version: str
    build: str | None
    phase: str
    uptime: float


class ProcessOut(BaseModel):
    name: str
    role: str
    pid: int | None
    status: str
    cpu: float
    memory: int
    restarts: int
    uptime: float
    requests_per_second: float
    p99_ms: float | None
    error_rate: float
    version: str | None


class ClusterFigures(BaseModel):
    requests_per_second: float
    p99_ms: float | None
    error_rate: float
    history: list[float]


class ClusterOut(BaseModel):
    master: MasterOut
    processes: list[ProcessOut]
    cluster: ClusterFigures


@blueprint.get("/cluster")
@require_scope("stats:read")
@validate_response(ClusterOut)
@document_response(Problem, 404)
@document_response(Problem, 503)
async def cluster_status() -> ClusterOut:
    """Every process of the cluster with its cpu, memory, restarts and requests/s; 404 under plain `serve`."""
    ask = app_state().cluster_status
    if ask is None:
        raise NotFound("This API is not running under a cluster (it was started with `boltlink serve`).")
    return ClusterOut.model_validate(await ask())
