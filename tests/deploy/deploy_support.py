"""What the deployment tests share: the repo's deploy files read as data, and the outside tools.

Imported by name (`from deploy_support import ...`), as tests/pipeline/pipeline_support.py is:
pytest puts each test file's directory on sys.path.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
MONITORING = K8S / "monitoring"
REQUIRE_SERVICES = os.environ.get("BOLTLINK_REQUIRE_SERVICES") == "1"


def need_tool(name: str, install: str) -> str:
    """The path of a command-line tool; skip without it, or fail where CI requires every tool."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    message = f"{name} is not installed ({install})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and BOLTLINK_REQUIRE_SERVICES=1")
    pytest.skip(message)


# -- YAML and JSON ------------------------------------------------------------------------------------


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifest_paths() -> list[Path]:
    """Every Kubernetes manifest in k8s/ (the kustomization and k8s/monitoring/ are not objects)."""
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object, for every object in k8s/*.yaml."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in manifest_paths():
        for doc in load_documents(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{key} is defined twice"
            found[key] = doc
    return found


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    return objects()[(kind, name)]


def pod_templates() -> dict[str, dict[str, Any]]:
    """Name of the workload -> its pod template, for every Deployment and Job."""
    return {name: obj["spec"]["template"] for (kind, name), obj in objects().items() if kind in ("Deployment", "Job")}


def config_map_data() -> dict[str, str]:
    return k8s_object("ConfigMap", "boltlink")["data"]


def dashboard() -> dict[str, Any]:
    return json.loads((MONITORING / "grafana-dashboard.json").read_text())


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, as docker compose reads .env files (no quoting used in ours)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=value: {line!r}"
            values[key.strip()] = value.strip()
    return values


# -- the Dockerfile ------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, ENV...
    args: str  # the rest, continuation lines joined
    stage: int  # index of the FROM it belongs to


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    stage_names: list[str | None] = field(default_factory=list)

    def all(self, keyword: str, stage: int | None = None) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword and (stage is None or i.stage == stage)]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword, self.final_stage)
        assert found, f"the final stage has no {keyword}"
        return found[-1]

    @property
    def final_stage(self) -> int:
        return len(self.stage_names) - 1

    def env(self) -> dict[str, str]:
        """The final stage's ENV, as the container sees it (base stages' ENV included)."""
        values: dict[str, str] = {}
        for stage in self._lineage(self.final_stage):
            for instruction in self.all("ENV", stage):
                for token in shlex.split(instruction.args):
                    key, _, value = token.partition("=")
                    values[key] = value
        return values

    def _lineage(self, stage: int) -> list[int]:
        """The stage and the stages it is built FROM, oldest first."""
        base = self.all("FROM")[stage].args.split()[0]
        if base in self.stage_names:
            return [*self._lineage(self.stage_names.index(base)), stage]
        return [stage]

    def base_image(self, stage: int) -> str:
        return self.all("FROM")[self._lineage(stage)[0]].args.split()[0]

    def exec_form(self, keyword: str) -> list[str]:
        """ENTRYPOINT or CMD of the final stage, which must be in exec (JSON) form."""
        return json.loads(self.last(keyword).args)

    def container_command(self) -> list[str]:
        """What `docker run IMAGE` runs: ENTRYPOINT followed by CMD."""
        return self.exec_form("ENTRYPOINT") + self.exec_form("CMD")

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """The HEALTHCHECK's options (--interval...) and its CMD in exec form."""
        options_text, sep, command = self.last("HEALTHCHECK").args.partition(" CMD ")
        assert sep, "HEALTHCHECK must be HEALTHCHECK [options] CMD [...]"
        options = dict(option.lstrip("-").split("=", 1) for option in options_text.split())
        return options, json.loads(command)

    def user(self) -> tuple[int, int]:
        uid, _, gid = self.last("USER").args.partition(":")
        return int(uid), int(gid or uid)


def parse_dockerfile(path: Path = ROOT / "Dockerfile") -> Dockerfile:
    """Instructions with continuation lines joined and comments dropped, as the builder reads them."""
    instructions: list[Instruction] = []
    names: list[str | None] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments and blank lines, inside continuations too
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            names.append(parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None)
        instructions.append(Instruction(keyword, args.strip(), len(names) - 1))
    assert not pending, "the Dockerfile ends inside a continuation"
    return Dockerfile(instructions, names)


def extraction_run(dockerfile: Dockerfile) -> str:
    """The final stage's RUN that pre-extracts the pyz into SHIV_ROOT (the only RUN naming it)."""
    runs = [i.args for i in dockerfile.all("RUN", dockerfile.final_stage) if "$SHIV_ROOT" in i.args]
    assert len(runs) == 1, f"expected one RUN using $SHIV_ROOT in the final stage, found {len(runs)}"
    return runs[0]


# -- Kubernetes quantities ------------------------------------------------------------------------------


def cpu_millis(quantity: str | int | float) -> int:
    """A CPU quantity ("2", "1500m", 0.5) in millicores."""
    text = str(quantity)
    if text.endswith("m"):
        return int(text[:-1])
    return round(float(text) * 1000)


_MEMORY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def memory_bytes(quantity: str | int) -> int:
    match = re.fullmatch(r"(\d+)(|k|M|G|Ki|Mi|Gi)", str(quantity))
    assert match, f"unexpected memory quantity {quantity!r}"
    return int(match[1]) * _MEMORY_UNITS[match[2]]
