"""Fixtures of the chaos tests: a Lab (scripts/chaos_lab.py) whose clusters are the test harness's.

The scenarios themselves are scripts/chaos_scenarios.py's, the ones scripts/chaos.py runs, on
tests/pipeline's PipelineCluster (tests/cluster/cluster_harness.py underneath, loaded through
tests/harness_import.py): tagged processes, every one SIGKILLed when the test ends.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
for folder in (TESTS / "pipeline", TESTS.parent / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

pytest.register_assert_rewrite("pipeline_support")  # as tests/pipeline/conftest.py does, whichever comes first

from chaos_lab import Lab  # noqa: E402
from pipeline_support import cluster_factory  # noqa: E402


@pytest.fixture
def chaos_lab(tmp_path: Path) -> Iterator[Lab]:
    """A Lab on harness clusters; afterwards its clusters, servers, mounts and databases are gone."""
    factory = cluster_factory(tmp_path)
    lab = Lab(next(factory), tmp_path / "lab")
    lab.work.mkdir()
    try:
        yield lab
    finally:
        survivors = lab.close()  # clusters first: they hold files on the mounts
        next(factory, None)  # the harness's own sweep, which fails the test if a process survived
        assert not survivors, f"processes survived SIGKILL: {survivors}"
