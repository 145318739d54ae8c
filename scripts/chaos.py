#!/usr/bin/env python3
"""Chaos against a real boltlink cluster: redirects keep flowing, and no click that got its 302 is lost.

    python scripts/chaos.py                       # every scenario, --duration 60 for the worker kills
    python scripts/chaos.py api-kills disk --duration 15

Each scenario starts a cluster from this checkout (python -m boltlink start-cluster) under
constant load from scripts/loadgen.py on 127.0.0.1, breaks something, and reads the clicks
back from GET /api/v1/links/{slug}/stats as a user would:

    api-kills    embedded: kill -9 a random API worker every 2 s for --duration s. The port never
                 refuses; only requests in flight on a killed worker fail; every 302 is one click
                 (a request cut after its click was queued may count too: at most one per failure).
    redis        distributed (private redis-server, scratch database on the shared PostgreSQL):
                 Redis stopped during load and started again. Redirects keep answering, /ready says
                 "degraded" (200) during the outage and "ready" after, every click arrives.
    postgres     distributed on a PRIVATE PostgreSQL (initdb in a temp dir): stopped during load and
                 started again. Cached links keep redirecting, POST /api/v1/links answers a 503 problem
                 while it is down and 201 after, every click arrives.
    aggregator   embedded: the aggregator SIGKILLed three times during load; the cluster respawns it;
                 the final counts are exact.
    disk         embedded, the SQLite database and spool on a small tmpfs (needs root and mount): the
                 disk filled during load, then a read-only spool directory, then the whole disk
                 read-only across a restart (start-cluster must fail with the reason). A click that cannot be
                 queued is refused with a 503 problem (never a 302 whose click is lost); /ready answers
                 503 with the reason and the logs say it; the database passes PRAGMA integrity_check and
                 every spool line decodes; once there is room again /ready is 200 without waiting for
                 a redirect, redirects and writes work, and every 302 is one click.

One line per scenario: requests sent, ok, failed by kind, clicks expected (302s) and recorded,
PASS / FAIL / SKIP; the exit status is 1 when a scenario failed. Bounded: every scenario ends
within its own time limit, and the whole run within --max-seconds, after which whatever it
started (clusters, servers, mounts, scratch databases) is killed and removed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_support import bound_run  # noqa: E402
from chaos_lab import ChaosCluster, Lab, chaos_cluster_factory  # noqa: E402
from chaos_scenarios import SCENARIOS, Outcome, header  # noqa: E402

DEFAULT_DURATION = 60.0
MAX_DURATION = 300.0


class ChaosTimeout(Exception):
    """The run went past --max-seconds."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"which to run (default: all): {', '.join(SCENARIOS)}")
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION,
                        help="seconds of worker kills in api-kills; the other scenarios scale from it "
                             "(default %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="hard bound on the whole run (default: 4 x duration + 120 s per scenario)")
    parser.add_argument("--logs", type=Path, default=None,
                        help="copy each cluster's logs/ into this directory before cleaning up")
    parser.add_argument("--seed", type=int, default=None, help="random seed (which worker gets killed)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}: choose from {', '.join(SCENARIOS)}")
    if not 5 <= args.duration <= MAX_DURATION:
        parser.error(f"--duration must be 5 to {MAX_DURATION:g} s")
    if args.max_seconds is None:
        args.max_seconds = 4 * args.duration + 120 * len(args.scenarios or SCENARIOS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    random.seed(args.seed)

    bound_run(args.max_seconds, ChaosTimeout)  # re-armed below for each scenario, to the same deadline
    deadline = time.monotonic() + args.max_seconds

    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="boltlink-chaos-") as work:
        for name in args.scenarios or list(SCENARIOS):
            scenario_dir = Path(work) / name
            scenario_dir.mkdir()
            lab = Lab(chaos_cluster_factory(scenario_dir), scenario_dir)
            started = time.monotonic()
            print(f"--- {name}", flush=True)
            stopped = False
            try:
                # SIGALRM at the deadline interrupts the scenario wherever it is; its cleanup runs after.
                signal.setitimer(signal.ITIMER_REAL, max(0.001, deadline - started))
                outcome = SCENARIOS[name](lab, args.duration)
            except (ChaosTimeout, KeyboardInterrupt) as exc:
                outcome, stopped = Outcome(name, error=f"stopped: {exc}"), True
            except Exception as exc:  # a scenario that breaks is a FAIL with its reason, the others still run
                outcome = Outcome(name, error=f"{type(exc).__name__}: {exc}")
                traceback.print_exc()
                _log_tails(lab)
            finally:
                survivors = _clean_up(lab, args.logs / name if args.logs else None)
            if survivors:
                outcome.check("nothing survives SIGKILL", False, ", ".join(survivors))
            outcome.seconds = time.monotonic() - started
            print(outcome.details(), flush=True)
            outcomes.append(outcome)
            if stopped:
                break
    print()
    print(header())
    for outcome in outcomes:
        print(outcome.line())
    return 0 if all(o.passed for o in outcomes) else 1


def _clean_up(lab: Lab, keep_logs: Path | None) -> list[str]:
    """Kill and remove what the scenario started (--max-seconds cannot interrupt this)."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    if keep_logs is not None:
        _keep_logs(lab, keep_logs)
    return lab.close()


def _keep_logs(lab: Lab, into: Path) -> None:
    for number, cluster in enumerate(lab.clusters):
        logs = cluster.data_dir / "logs"
        if logs.is_dir():
            shutil.copytree(logs, into / f"cluster{number}", dirs_exist_ok=True)


def _log_tails(lab: Lab) -> None:
    for cluster in lab.clusters:
        if isinstance(cluster, ChaosCluster):
            for name in ("master", "api-0", "api-1", "aggregator"):
                print(cluster.log_tail(name, 15), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
