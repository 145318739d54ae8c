"""How soon the master brings a dead worker back: at once if it was serving, slower and slower if it cannot start."""

from __future__ import annotations

import signal

from boltlink.cluster.process import WorkerProcess
from boltlink.cluster.supervisor import BACKOFF_FACTOR, BACKOFF_START, Supervisor
from boltlink.config import Config

KILLED = -signal.SIGKILL


def dies(supervisor: Supervisor, *, served: bool, lived: float) -> float:
    """A process of the aggregator's slot exits after `lived` s; the respawn delay the master chose."""
    slot = supervisor.slots["aggregator"]
    process = WorkerProcess(slot.name, "aggregator")
    process.pid = 12345
    process.started_at -= lived
    process.went_online = served
    slot.process = process
    supervisor.live.add(process)
    supervisor._on_exit(process, KILLED)
    assert slot.process is None and not slot.errored
    return BACKOFF_START * BACKOFF_FACTOR ** (slot.backoff_step - 1)  # the delay it just scheduled


def supervisor() -> Supervisor:
    # No process is ever spawned: "stopping" before any respawn timer fires (they are 0.1 s and up).
    sup = Supervisor(Config(roles=["api", "aggregator"], min_uptime=1, max_restarts=100), None, 1,  # type: ignore[arg-type]
                     lambda name, line: None, None)  # type: ignore[arg-type]
    sup.phase = "running"
    return sup


async def test_a_worker_killed_while_serving_comes_back_at_once_however_often() -> None:
    sup = supervisor()
    try:
        delays = [dies(sup, served=True, lived=2.0) for _ in range(12)]  # kill -9 every 2 s (scripts/chaos.py)
    finally:
        sup.phase = "stopping"
    assert delays == [BACKOFF_START] * 12


async def test_a_worker_that_cannot_start_backs_off_more_each_time() -> None:
    sup = supervisor()
    try:
        delays = [dies(sup, served=False, lived=1.5) for _ in range(8)]  # a boot failure, after min_uptime
        quick = [dies(sup, served=True, lived=0.2) for _ in range(2)]  # ready, then dead within min_uptime
    finally:
        sup.phase = "stopping"
    assert delays == sorted(delays) and delays[-1] > 10 * BACKOFF_START
    assert quick[0] > delays[-1]
