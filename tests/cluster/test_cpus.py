"""usable_cpus() on fake /proc/self and cgroup trees, then once on the real machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from boltlink.cluster.cpus import describe_cpus, usable_cpus

MANY = set(range(64))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def v2_host(tmp_path: Path, cgroup_path: str, cpu_max: dict[str, str]) -> dict[str, Path]:
    """A cgroup v2 host; cpu_max maps a cgroup directory ("" = root) to its cpu.max content."""
    proc_self, root = tmp_path / "proc" / "self", tmp_path / "cgroup"
    write(proc_self / "cgroup", f"0::{cgroup_path}\n")
    root.mkdir(parents=True, exist_ok=True)
    for directory, content in cpu_max.items():
        write(root / directory / "cpu.max", content)
    return {"proc_self": proc_self, "cgroup_root": root}


def v1_host(tmp_path: Path, cgroup_path: str, mount_root: str, quotas: dict[str, tuple[str, str]]) -> dict[str, Path]:
    """A cgroup v1 host with cpu,cpuacct mounted at <tmp>/mnt/cpu,cpuacct (the comma is real life)."""
    proc_self, mount = tmp_path / "proc" / "self", tmp_path / "mnt" / "cpu,cpuacct"
    write(proc_self / "cgroup", f"5:memory:/elsewhere\n4:cpu,cpuacct:{cgroup_path}\n1:name=systemd:/\n0::/\n")
    write(proc_self / "mountinfo", "\n".join([
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw",
        f"31 22 0:27 / {tmp_path}/mnt rw,nosuid shared:9 - tmpfs tmpfs ro,mode=755",
        f"33 31 0:29 {mount_root} {tmp_path}/mnt/cpuset rw,nosuid shared:11 - cgroup cgroup rw,cpuset",
        f"34 31 0:30 {mount_root} {mount} rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct",
    ]) + "\n")
    mount.mkdir(parents=True, exist_ok=True)
    for directory, (quota, period) in quotas.items():
        write(mount / directory / "cpu.cfs_quota_us", quota + "\n")
        write(mount / directory / "cpu.cfs_period_us", period + "\n")
    # An empty v2 root: on a v1 host nothing is found there.
    return {"proc_self": proc_self, "cgroup_root": tmp_path / "no-v2"}


def test_v2_limit_at_the_leaf(tmp_path: Path) -> None:
    host = v2_host(tmp_path, "/kubepods/pod1/ctr", {"": "max 100000", "kubepods/pod1/ctr": "200000 100000"})
    assert usable_cpus(**host, affinity=MANY) == 2


def test_v2_limit_on_an_ancestor_only(tmp_path: Path) -> None:
    # The leaf says "max" and the levels above the pod have no cpu.max at all: the pod's limit applies.
    limits = {"kubepods/pod1": "300000 100000", "kubepods/pod1/ctr": "max 100000"}
    host = v2_host(tmp_path, "/kubepods/pod1/ctr", limits)
    assert usable_cpus(**host, affinity=MANY) == 3


def test_v2_smallest_limit_along_the_path_wins(tmp_path: Path) -> None:
    host = v2_host(tmp_path, "/a/b", {"a": "100000 100000", "a/b": "400000 100000"})
    assert usable_cpus(**host, affinity=MANY) == 1


def test_v2_max_everywhere_means_the_affinity_mask(tmp_path: Path) -> None:
    host = v2_host(tmp_path, "/a/b", {"": "max 100000", "a": "max 100000", "a/b": "max 100000"})
    assert usable_cpus(**host, affinity=MANY) == 64
    assert describe_cpus(**host, affinity=MANY).startswith("64 of ")


def test_v2_fractional_quota_rounds_up(tmp_path: Path) -> None:
    host = v2_host(tmp_path, "/app", {"app": "150000 100000"})
    assert usable_cpus(**host, affinity=MANY) == 2
    assert "(cgroup quota 1.5)" in describe_cpus(**host, affinity=MANY)


def test_a_tiny_quota_still_gives_one_cpu(tmp_path: Path) -> None:
    host = v2_host(tmp_path, "/app", {"app": "10000 100000"})
    assert usable_cpus(**host, affinity=MANY) == 1


def test_v1_with_the_host_hierarchy_mounted(tmp_path: Path) -> None:
    host = v1_host(tmp_path, "/docker/abc", "/", {"": ("-1", "100000"), "docker/abc": ("200000", "100000")})
    assert usable_cpus(**host, affinity=MANY) == 2
    assert describe_cpus(**host, affinity=MANY) == f"2 of {max(os.cpu_count() or 1, 64)} CPUs (cgroup quota 2.0)"


def test_v1_ancestor_quota_applies(tmp_path: Path) -> None:
    host = v1_host(tmp_path, "/docker/abc", "/", {"docker": ("100000", "50000"), "docker/abc": ("-1", "100000")})
    assert usable_cpus(**host, affinity=MANY) == 2


def test_v1_inside_a_container_whose_mount_root_is_its_own_cgroup(tmp_path: Path) -> None:
    # /proc/self/cgroup names the host path, but only /docker/abc is mounted, at the mount point itself.
    host = v1_host(tmp_path, "/docker/abc/sub", "/docker/abc", {"": ("-1", "100000"), "sub": ("300000", "100000")})
    assert usable_cpus(**host, affinity=MANY) == 3
    # The container's own limit sits on the mount point.
    host = v1_host(tmp_path, "/docker/abc", "/docker/abc", {"": ("200000", "100000")})
    assert usable_cpus(**host, affinity=MANY) == 2


def test_v1_unlimited(tmp_path: Path) -> None:
    host = v1_host(tmp_path, "/docker/abc", "/", {"": ("-1", "100000"), "docker/abc": ("-1", "100000")})
    assert usable_cpus(**host, affinity=MANY) == 64


def test_missing_files_mean_no_limit(tmp_path: Path) -> None:
    nothing = {"proc_self": tmp_path / "no-proc", "cgroup_root": tmp_path / "no-cgroup"}
    assert usable_cpus(**nothing, affinity={0, 1, 2}) == 3
    host = v1_host(tmp_path, "/docker/abc", "/", {})
    (host["proc_self"] / "mountinfo").unlink()
    assert usable_cpus(**host, affinity={0, 1, 2}) == 3


@pytest.mark.parametrize("content", ["", "garbage", "200000", "abc 100000", "200000 0", "-5 100000", "1 2 3",
                                     "\xff\xfe"])
def test_garbage_cpu_max_means_no_limit(tmp_path: Path, content: str) -> None:
    host = v2_host(tmp_path, "/app", {})
    (host["cgroup_root"] / "app").mkdir()
    (host["cgroup_root"] / "app" / "cpu.max").write_bytes(content.encode("latin-1"))  # "\xff\xfe" is not UTF-8
    assert usable_cpus(**host, affinity={0, 1, 2, 3}) == 4


def test_garbage_v1_files_mean_no_limit(tmp_path: Path) -> None:
    host = v1_host(tmp_path, "/docker/abc", "/", {"docker/abc": ("lots", "100000")})
    write(host["proc_self"] / "mountinfo", "nonsense\n - \n1 2 3 - cgroup\n")
    assert usable_cpus(**host, affinity={0, 1, 2, 3}) == 4


def test_path_escaping_the_hierarchy_is_ignored(tmp_path: Path) -> None:
    write(tmp_path / "outside" / "cpu.max", "100000 100000")
    host = v2_host(tmp_path, "/../outside", {})
    assert usable_cpus(**host, affinity={0, 1, 2, 3}) == 4


def test_affinity_smaller_than_the_quota_wins(tmp_path: Path) -> None:
    host = v2_host(tmp_path, "/app", {"app": "800000 100000"})
    assert usable_cpus(**host, affinity={3}) == 1
    assert describe_cpus(**host, affinity={3}) == f"1 of {os.cpu_count()} CPUs (affinity)"


def _real_quota_applies() -> bool:
    """Whether this machine's own cgroup (v2 root or v1 cpu mount) sets a CPU quota."""
    v2 = Path("/sys/fs/cgroup/cpu.max")
    if v2.exists() and not v2.read_text().startswith("max"):
        return True
    v1 = [Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us")]
    return any(p.exists() and p.read_text().strip() != "-1" for p in v1)


@pytest.mark.skipif(_real_quota_applies(), reason="this machine's cgroup sets a CPU quota")
def test_real_machine_without_quota_uses_the_affinity_mask() -> None:
    assert usable_cpus() == len(os.sched_getaffinity(0))


def test_real_child_pinned_to_one_cpu_reports_one() -> None:
    cpu = min(os.sched_getaffinity(0))
    code = (f"import os; os.sched_setaffinity(0, {{{cpu}}}); "
            "from boltlink.cluster.cpus import describe_cpus, usable_cpus; print(usable_cpus(), describe_cpus())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    count, description = result.stdout.strip().split(" ", 1)
    assert count == "1"
    assert description.startswith("1 of ")
