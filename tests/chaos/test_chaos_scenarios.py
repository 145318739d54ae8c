"""Under fire, nothing lost: scripts/chaos.py's scenarios, shorter, on real clusters.

Each test runs one scenario of scripts/chaos_scenarios.py (what `python scripts/chaos.py`
runs for a minute each) and fails with the checks that did not hold. Redis restarts and
aggregator kills under load are tests/pipeline/test_exactly_once.py's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from chaos_lab import Lab
from chaos_scenarios import Outcome, api_kills, disk_trouble, postgres_restart
from chaos_servers import postgres_bin

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_SERVICES = os.environ.get("BOLTLINK_REQUIRE_SERVICES") == "1"


def assert_passed(outcome: Outcome) -> None:
    if outcome.skipped is not None:
        pytest.skip(outcome.skipped)
    assert outcome.passed, f"{outcome.line()}\n{outcome.failures()}"


@pytest.mark.slow
def test_api_workers_killed_every_2_s_never_refuse_and_every_answered_redirect_is_a_click(chaos_lab: Lab) -> None:
    outcome = api_kills(chaos_lab, duration=12)
    assert_passed(outcome)
    assert outcome.expected > 1000 and outcome.failed.get("refused", 0) == 0


@pytest.mark.slow
def test_postgres_restarted_during_load_keeps_redirects_answers_writes_503_and_loses_no_click(chaos_lab: Lab) -> None:
    if postgres_bin() is None:
        message = "no PostgreSQL binaries under /usr/lib/postgresql/*/bin for a private server"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (BOLTLINK_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    outcome = postgres_restart(chaos_lab, duration=18)
    assert_passed(outcome)
    assert outcome.failed_total == 0 and outcome.recorded == outcome.expected


@pytest.mark.slow
def test_a_full_then_read_only_disk_refuses_clicks_with_503_and_recovers_without_losing_one(chaos_lab: Lab) -> None:
    outcome = disk_trouble(chaos_lab, duration=20)
    assert_passed(outcome)
    assert outcome.failed.get("http 503", 0) > 0  # clicks were refused, not redirected and lost
    assert outcome.recorded == outcome.expected


def test_the_chaos_script_explains_itself_and_refuses_an_unbounded_or_unknown_run() -> None:
    script = [sys.executable, str(ROOT / "scripts" / "chaos.py")]
    helped = subprocess.run([*script, "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    for name in ("api-kills", "redis", "postgres", "aggregator", "disk", "--duration", "--max-seconds"):
        assert name in helped.stdout
    for bad in (["--duration", "100000"], ["nonsense"]):
        refused = subprocess.run([*script, *bad], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and "error:" in refused.stderr, (bad, refused.stderr)
