"""scripts/bench.py and scripts/soak.py run end to end and print their verdicts (a short version of each).

They need wrk: without it these tests skip, unless BOLTLINK_REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_SERVICES = os.environ.get("BOLTLINK_REQUIRE_SERVICES") == "1"


@pytest.fixture
def wrk() -> None:
    if shutil.which("wrk"):
        return
    message = "wrk is not installed (apt-get install wrk)"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and BOLTLINK_REQUIRE_SERVICES=1")
    pytest.skip(message)


def run_script(name: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTLINK_")}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_bench_prints_the_table_and_the_goals(wrk: None, tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    proc = run_script("bench.py", "--rounds", "1", "--duration", "2", "--warmup", "1", "--connections", "8",
                      "--only", "a,c", "--json", str(results), timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert re.search(r"^\(a\) boltlink -i 2, embedded +[\d,]+ +[\d.]+ ms +[\d.]+ ms +[\d,]+ +[\d.]+", out, re.M), out
    assert re.search(r"^\(c\) raw ASGI dict, hypercorn +[\d,]+ .* 1\.00 ", out, re.M), out
    assert re.search(r"(PASS|MISS) +\(a\)/\(c\) >= 1\.0 ", out), out
    assert re.search(r"n/a +\(a\)/\(d\) >= 2\.0 +not measured", out), out
    assert "load average" in out
    # Every redirect wrk saw became a recorded click: the pipeline under load loses nothing.
    clicks = json.loads(results.read_text())["runs"][0]
    assert clicks["key"] == "a" and clicks["clicks_expected"] > 0
    assert clicks["clicks_expected"] <= clicks["clicks_recorded"] <= clicks["clicks_expected"] + clicks["clicks_slack"]
    assert "PASS  every redirect of (a) recorded as a click" in out, out


def test_soak_samples_memory_and_gives_a_verdict(wrk: None) -> None:
    proc = run_script("soak.py", "--minutes", "0.15", "--rate", "200", "--sample-every", "3", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for name in ("master", "api-0", "api-1"):
        assert re.search(rf"^{name} +[\d.]+ MB +[\d.]+ MB +[\d.]+ MB +[+-][\d.]+%", out, re.M), out
    assert re.search(r"^(PASS|MISS)  API worker memory grows by less than 5%", out, re.M), out
