#!/usr/bin/env python3
"""Memory of a boltlink cluster under a long, steady load: does any process grow? (issue #8)

    python scripts/soak.py [--minutes 10] [--rate N] [--sample-every 10] [--pyz dist/boltlink.pyz]
                           [--json soak.json]

Starts `start-cluster -i 2` in embedded mode on a free 127.0.0.1 port with the
10,000 benchmark links (benchmarks/slugs.py), finds its peak with 5 s of wrk
at 64 connections (skipped when --rate is given), then holds half of that
rate for --minutes: wrk with benchmarks/random_slug.lua spacing each thread's
requests evenly (its delay() hook; wrk2 is not packaged), every redirect a
recorded click as in production. Every --sample-every seconds it reads the RSS
of the master and of each API worker (and the cluster's requests/s over the
last 10 s, to show the load held steady).

The first sample is taken one interval into the steady load, after the peak
run has already touched every link, so caches are warm. It prints, per
process, the first, last and highest RSS and the growth from first to last:
PASS when every API worker grew by less than 5%. A worker replaced during the
soak (a crash, max_memory_restart) is a MISS: its growth cannot be seen.
RSS counts the pages forked processes share in each of them.

Exit 0 whatever the verdict; non-zero only when the run broke. Bounded:
it stops by itself after --minutes plus a few minutes of setting up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench
import bench_support as support
import psutil

from boltlink.config import Config

GROWTH_LIMIT = 0.05
PEAK_SECONDS = 5


@dataclass
class Sample:
    at: float  # seconds into the steady load
    rss: dict[str, int]  # process name -> RSS bytes
    pids: dict[str, int]
    requests_per_second: float  # the cluster's, over the master's last 10 s


@dataclass
class Soak:
    rate: float
    peak: float | None
    samples: list[Sample] = field(default_factory=list)
    wrk: dict[str, Any] = field(default_factory=dict)


def sample_cluster(cluster: bench.Cluster, master: psutil.Process, started: float) -> Sample:
    status = cluster.status()
    api = [p for p in status["processes"] if p["role"] == "api"]
    rss = {"master": master.memory_info().rss, **{p["name"]: p["memory"] for p in api}}
    pids = {"master": master.pid, **{p["name"]: p["pid"] for p in api}}
    return Sample(round(time.monotonic() - started, 1), rss, pids, status["cluster"]["requests_per_second"])


def soak(cluster: bench.Cluster, args: argparse.Namespace) -> Soak:
    peak = None
    if args.rate is None:
        peak = bench.run_wrk(cluster.url, PEAK_SECONDS, args.connections)["requests"] / PEAK_SECONDS
        print(f"peak: {peak:,.0f} req/s over {PEAK_SECONDS} s at {args.connections} connections", flush=True)
    rate = args.rate or peak / 2
    result = Soak(rate=rate, peak=peak)
    master = psutil.Process(cluster.master_pid)
    started = time.monotonic()
    next_sample = started + args.sample_every

    def sample() -> None:
        nonlocal next_sample
        if time.monotonic() < next_sample:
            return
        next_sample += args.sample_every
        taken = sample_cluster(cluster, master, started)
        result.samples.append(taken)
        print(f"  {taken.at:6.0f} s  {taken.requests_per_second:8,.0f} req/s  "
              + "  ".join(f"{name} {rss / 1e6:.1f} MB" for name, rss in taken.rss.items()), flush=True)

    print(f"steady load: {rate:,.0f} req/s for {args.minutes:g} min, a sample every {args.sample_every:g} s",
          flush=True)
    seconds = max(1, round(args.minutes * 60))
    result.wrk = bench.run_wrk(cluster.url, seconds, args.connections, env={"BENCH_RATE": f"{rate:.1f}"},
                               sample=sample)
    return result


def report(result: Soak) -> bool:
    """Print the per-process table; True when every API worker grew by less than GROWTH_LIMIT."""
    samples = result.samples
    if len(samples) < 2:
        raise RuntimeError(f"only {len(samples)} sample(s): run longer than two --sample-every intervals")
    achieved = result.wrk["requests"] / (result.wrk["duration_us"] / 1e6)
    rates = [s.requests_per_second for s in samples]
    print(f"\nload: {achieved:,.0f} req/s achieved of {result.rate:,.0f} asked (10-s windows: "
          f"{min(rates):,.0f} to {max(rates):,.0f}), p99 {result.wrk['p99_us'] / 1000:.1f} ms, "
          f"errors {sum(result.wrk['errors'].values()):,}")
    print(f"{'process':<8} {'first':>9} {'last':>9} {'max':>9} {'growth':>8}")
    passed = True
    for name in samples[0].rss:
        series = [s.rss[name] for s in samples if name in s.rss]
        first, last = series[0], series[-1]
        growth = (last - first) / first
        replaced = len({s.pids.get(name) for s in samples}) > 1
        note = "  REPLACED during the soak" if replaced else ""
        print(f"{name:<8} {first / 1e6:7.1f} MB {last / 1e6:7.1f} MB {max(series) / 1e6:7.1f} MB "
              f"{100 * growth:+7.1f}%{note}")
        if name != "master":
            passed = passed and not replaced and growth < GROWTH_LIMIT
    span = samples[-1].at - samples[0].at
    print(f"{'PASS' if passed else 'MISS'}  API worker memory grows by less than {100 * GROWTH_LIMIT:.0f}% "
          f"over {span / 60:.1f} min at {result.rate:,.0f} req/s")
    return passed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=support.HelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the steady load (0.1 to 60)")
    parser.add_argument("--rate", type=float, help="requests/s to hold (default: half of a 5-s peak run)")
    parser.add_argument("--connections", type=int, default=64, help="wrk's -c, for the peak and the soak")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between memory samples")
    parser.add_argument("--pyz", help="run boltlink from this built pyz instead of the source tree")
    parser.add_argument("--json", dest="json_path", help="write the samples and wrk's figures to this file")
    args = parser.parse_args(argv)
    if not 0.1 <= args.minutes <= 60:
        parser.error("--minutes must be 0.1 to 60")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    if args.sample_every < 1 or args.connections < 1:
        parser.error("--sample-every and --connections must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench.ensure_wrk()
    support.bound_run(args.minutes * 60 + 300)
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="boltlink-soak-") as work:
            data_dir = Path(work) / "data"
            asyncio.run(bench.create_links(Config(data_dir=str(data_dir))))
            cluster = bench.Cluster(bench.boltlink_command(args.pyz), data_dir, bench.clean_env(), instances=2)
            try:
                cluster.start()
                result = soak(cluster, args)
            finally:
                cluster.stop()
    except (RuntimeError, support.BenchTimeout) as exc:
        print(f"soak: broken run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        bench.STARTED.kill_all()
    try:
        passed = report(result)
    except RuntimeError as exc:
        print(f"soak: broken run: {exc}", file=sys.stderr)
        return 1
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({
            "rate": result.rate, "peak": result.peak, "passed": passed, "wrk": result.wrk,
            "samples": [vars(s) for s in result.samples],
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
