"""/__test__/...: ways for the cluster tests to slow, hang, bloat or crash a worker.

Registered only when the config says test_hooks = true; they do not exist otherwise.
"""

from __future__ import annotations

import asyncio
import os
import time

from quart import Blueprint, request
from quart_schema import hide

blueprint = Blueprint("testhooks", __name__, url_prefix="/__test__")

_ballast: list[bytearray] = []


@blueprint.get("/sleep")
@hide
async def sleep() -> dict[str, float]:
    """A slow request: answers after ?seconds= (for graceful-stop tests)."""
    seconds = float(request.args.get("seconds", "1"))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@blueprint.post("/hang")
@hide
async def hang() -> dict[str, str]:
    """Block the event loop for good, as a deadlocked worker would: heartbeats stop."""
    time.sleep(3600)
    return {"hung": "no"}


@blueprint.post("/allocate")
@hide
async def allocate() -> dict[str, int]:
    """Hold ?mb= more megabytes, as a leaking worker would."""
    megabytes = int(request.args.get("mb", "100"))
    _ballast.append(bytearray(os.urandom(1024)) * (megabytes * 1024))
    return {"held_mb": sum(len(b) for b in _ballast) // 1_000_000}


@blueprint.get("/pid")
@hide
async def pid() -> dict[str, int]:
    """Which worker answered (for load-balance and respawn tests)."""
    return {"pid": os.getpid()}
