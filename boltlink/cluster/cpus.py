"""How many CPUs this process may really use: what `start-cluster -i max` starts.

os.cpu_count() is the host's core count; a container limited to 2 CPUs on a
64-core host must start 2 workers, not 64. Two things limit us:

- the affinity mask (taskset, cpuset, `docker --cpuset-cpus`), and
- the cgroup CPU quota (`docker --cpus`, Kubernetes `limits.cpu`), read from
  cgroup v2 `cpu.max` or cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`.

A quota can be set on any ancestor cgroup, so the effective one is the
smallest along the path to the root. Whatever cannot be read or parsed counts
as "no limit": a wrong guess here must never stop the cluster from starting.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

PROC_SELF = Path("/proc/self")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(*, proc_self: Path = PROC_SELF, cgroup_root: Path = CGROUP_ROOT,
                affinity: set[int] | None = None) -> int:
    """The smaller of the affinity mask and the cgroup quota rounded up; at least 1."""
    allowed = len(_affinity(affinity))
    quota = cgroup_cpu_quota(proc_self=proc_self, cgroup_root=cgroup_root)
    if quota is not None:
        allowed = min(allowed, math.ceil(quota))
    return max(1, allowed)


def describe_cpus(*, proc_self: Path = PROC_SELF, cgroup_root: Path = CGROUP_ROOT,
                  affinity: set[int] | None = None) -> str:
    """One line for the logs, e.g. "2 of 64 CPUs (cgroup quota 2.0)" or "1 of 2 CPUs (affinity)"."""
    mask = _affinity(affinity)
    quota = cgroup_cpu_quota(proc_self=proc_self, cgroup_root=cgroup_root)
    usable = usable_cpus(proc_self=proc_self, cgroup_root=cgroup_root, affinity=mask)
    host = max(os.cpu_count() or 1, len(mask))
    if quota is not None and math.ceil(quota) < len(mask):
        reason = f"cgroup quota {round(quota, 2)}"
    elif len(mask) < host:
        reason = "affinity"
    else:
        reason = "no limit"
    return f"{usable} of {host} CPUs ({reason})"


def cgroup_cpu_quota(*, proc_self: Path = PROC_SELF, cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in CPUs (1.5 = one and a half), or None when there is none we can read.

    Both hierarchies are checked: on a hybrid host the cpu controller lives in
    v1 while /proc/self/cgroup also lists a v2 path.
    """
    try:
        membership = (proc_self / "cgroup").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    quotas = [_v2_quota(membership, cgroup_root), _v1_quota(membership, proc_self)]
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def _affinity(affinity: set[int] | None) -> set[int]:
    if affinity is not None:
        return affinity
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):  # not on Linux: fall back to the core count
        return set(range(os.cpu_count() or 1))


def _v2_quota(membership: str, cgroup_root: Path) -> float | None:
    for line in membership.splitlines():
        if line.startswith("0::"):
            return _min_along_path(cgroup_root, line[3:], _read_cpu_max)
    return None


def _v1_quota(membership: str, proc_self: Path) -> float | None:
    cgroup_path = None
    for line in membership.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0] != "0" and "cpu" in parts[1].split(","):
            cgroup_path = parts[2]
            break
    if cgroup_path is None:
        return None
    mount = _v1_cpu_mount(proc_self)
    if mount is None:
        return None
    mount_root, mount_point = mount
    # Inside a container the mount's root is the container's own cgroup, so the
    # path /proc shows (relative to the host hierarchy) must be cut down to it.
    if mount_root != "/":
        if cgroup_path == mount_root or cgroup_path.startswith(mount_root.rstrip("/") + "/"):
            cgroup_path = cgroup_path[len(mount_root):] or "/"
        else:  # the path is outside what is mounted: the mount point is all we can see
            cgroup_path = "/"
    return _min_along_path(mount_point, cgroup_path, _read_cfs_quota)


def _v1_cpu_mount(proc_self: Path) -> tuple[str, Path] | None:
    """(mount root, mount point) of the cgroup v1 hierarchy holding the cpu controller."""
    try:
        mountinfo = (proc_self / "mountinfo").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    for line in mountinfo.splitlines():
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] != "cgroup":
            continue
        if "cpu" in tail[2].split(","):
            return _unescape(fields[3]), Path(_unescape(fields[4]))
    return None


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _min_along_path(base: Path, cgroup_path: str, read_quota: Callable[[Path], float | None]) -> float | None:
    """The smallest quota set on the cgroup or any ancestor up to base."""
    parts = [p for p in cgroup_path.strip().split("/") if p]
    if any(p in (".", "..") for p in parts):
        return None  # never look outside the hierarchy
    quotas = [read_quota(base.joinpath(*parts[:depth])) for depth in range(len(parts), -1, -1)]
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def _read_cpu_max(directory: Path) -> float | None:
    """cgroup v2 cpu.max: "max 100000" is no limit, "200000 100000" is 2 CPUs."""
    fields = _read(directory / "cpu.max").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def _read_cfs_quota(directory: Path) -> float | None:
    """cgroup v1: cpu.cfs_quota_us (-1 is no limit) over cpu.cfs_period_us."""
    return _ratio(_read(directory / "cpu.cfs_quota_us").strip(), _read(directory / "cpu.cfs_period_us").strip())


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""
