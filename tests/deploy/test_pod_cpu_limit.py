"""How many API workers a pod runs: its CPU limit, counted the same way by the downward API and by `max`.

k8s/api-deployment.yaml passes BOLTLINK_INSTANCES from the container's
limits.cpu (divisor 1, which the downward API rounds up). `instances = max`
would read the same limit from the CFS quota the kubelet writes for it. The
fake trees here are laid out as a container sees them under Kubernetes:
cgroup v2 in the container's own cgroup namespace (/proc/self/cgroup says
0::/ and /sys/fs/cgroup is the container's cgroup), and cgroup v1 with the
container's cgroup mounted at /sys/fs/cgroup/cpu,cpuacct. Both ways must give
the same count for every limit, fractional ones included, so the Deployment
can use either. (tests/cluster/test_cpus.py covers usable_cpus() itself:
host-style trees, ancestors, garbage, affinity.)
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from deploy_support import cpu_millis, k8s_object

from boltlink.cluster.cpus import usable_cpus
from boltlink.cluster.master import api_instances
from boltlink.config import load_config

CFS_PERIOD_US = 100_000  # the kubelet's cpuCFSQuotaPeriod default
NODE = set(range(64))  # a big node: the limit, not the node, decides


def manifest_cpu_limit() -> str:
    (box,) = k8s_object("Deployment", "boltlink-api")["spec"]["template"]["spec"]["containers"]
    return str(box["resources"]["limits"]["cpu"])


def downward_api_value(limit: str) -> str:
    """What resourceFieldRef limits.cpu with divisor "1" puts in the environment: the limit in CPUs, rounded up."""
    return str(math.ceil(cpu_millis(limit) / 1000))


def kubelet_quota_us(limit: str) -> int:
    """The CFS quota the kubelet writes for a CPU limit (milliCPUToQuota), at least 1 ms."""
    return max(cpu_millis(limit) * CFS_PERIOD_US // 1000, 1000)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def container_v2(tmp_path: Path, limit: str) -> dict[str, Path]:
    proc_self, cgroup = tmp_path / "proc" / "self", tmp_path / "sys" / "fs" / "cgroup"
    write(proc_self / "cgroup", "0::/\n")
    write(cgroup / "cpu.max", f"{kubelet_quota_us(limit)} {CFS_PERIOD_US}\n")
    return {"proc_self": proc_self, "cgroup_root": cgroup}


def container_v1(tmp_path: Path, limit: str) -> dict[str, Path]:
    """Without a cgroup namespace: /proc names the host path, and the mount's root is that same cgroup."""
    pod = "/kubepods/pod3f1c6c1e-5c9b-4a53-9d0e-0b1f2a7c8d9e/4c0ffee"
    proc_self, mount = tmp_path / "proc" / "self", tmp_path / "sys" / "fs" / "cgroup" / "cpu,cpuacct"
    write(proc_self / "cgroup", f"12:memory:{pod}\n4:cpu,cpuacct:{pod}\n1:name=systemd:{pod}\n")
    write(proc_self / "mountinfo", "\n".join([
        "1020 1019 0:97 / / ro,relatime master:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w",
        f"1030 1029 0:29 {pod} {mount} ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu,cpuacct",
    ]) + "\n")
    write(mount / "cpu.cfs_quota_us", f"{kubelet_quota_us(limit)}\n")
    write(mount / "cpu.cfs_period_us", f"{CFS_PERIOD_US}\n")
    return {"proc_self": proc_self, "cgroup_root": tmp_path / "no-cgroup-v2"}


LIMITS = sorted({manifest_cpu_limit(), "250m", "1", "1500m", "2500m", "3", "8"}, key=cpu_millis)


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("layout", [container_v2, container_v1], ids=["cgroup-v2", "cgroup-v1"])
def test_the_deployments_instances_match_what_max_reads(tmp_path: Path, layout, limit: str) -> None:
    from_cgroup = usable_cpus(**layout(tmp_path, limit), affinity=NODE)
    config = load_config(environ={"BOLTLINK_INSTANCES": downward_api_value(limit)})
    assert api_instances(config) == from_cgroup == max(1, math.ceil(cpu_millis(limit) / 1000))


def test_the_manifests_limit_gives_two_workers() -> None:
    """The pods are sized for 2 cores: 2 API workers, which the requests and the HPA's target assume."""
    assert downward_api_value(manifest_cpu_limit()) == "2"


def test_max_never_counts_more_than_the_node_has(tmp_path: Path) -> None:
    """A limit above the node's CPUs (possible when requests < limits): `max` stops at the node.

    The downward API would not: it passes the limit as it is, which is why the Deployment keeps its CPU
    request equal to its limit (test_k8s_manifests.py), so a pod never lands on a node smaller than it.
    """
    node = {0, 1, 2, 3}
    assert usable_cpus(**container_v2(tmp_path / "v2", "8"), affinity=node) == 4
    assert usable_cpus(**container_v1(tmp_path / "v1", "8"), affinity=node) == 4
    assert downward_api_value("8") == "8"
