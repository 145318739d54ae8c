"""The cluster fixtures live in cluster_harness.py; this file only makes pytest see them."""

from cluster_harness import cluster, make_cluster, public_tmp_dir  # noqa: F401
