"""Fixtures of the click pipeline tests: clusters (embedded or distributed) and a private Redis.

The helpers live in pipeline_support.py, imported by that name (see its docstring).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("pipeline_support")  # its asserts explain themselves as a test's do

from pipeline_support import PipelineCluster, RedisServer, cluster_factory  # noqa: E402


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Iterator[Callable[..., PipelineCluster]]:
    """make_pipeline(redis=None, database_url=None, **settings) -> a PipelineCluster, not started."""
    yield from cluster_factory(tmp_path)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, started; killed (and its files removed) afterwards."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    home = tmp_path / "redis"
    home.mkdir()
    server = RedisServer(home).start()
    yield server
    server.kill()


@pytest.fixture(params=["embedded", "distributed"])
def pipeline(request: pytest.FixtureRequest) -> PipelineCluster:
    """A cluster, not started: SQLite + spool, or PostgreSQL + a private Redis.

    The servers are set up before the cluster, so that they are torn down after it is killed.
    """
    if request.param == "embedded":
        return request.getfixturevalue("make_pipeline")()
    redis, database_url = request.getfixturevalue("private_redis"), request.getfixturevalue("postgres_url")
    return request.getfixturevalue("make_pipeline")(redis=redis, database_url=database_url)
