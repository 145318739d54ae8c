"""The image's command lines, run outside a container against the built pyz, laid out as the image has it.

Docker does not run here. So each test gets a directory holding what the
image holds: the pyz where the Dockerfile COPYs it, the Dockerfile's ENV (its
absolute paths moved into that directory), and SHIV_ROOT filled by the
Dockerfile's own pre-extraction RUN line, run as written and as root, like
`docker build` runs it. The ENTRYPOINT + CMD and HEALTHCHECK command lines,
parsed from the Dockerfile so they cannot drift, then run as the image's
USER: root ignores file modes, and a read-only SHIV_ROOT must really be one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploy_support import REQUIRE_SERVICES, Dockerfile, extraction_run, parse_dockerfile

from boltlink.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PYC_UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, source never checked


@dataclass
class Image:
    """A directory laid out like the image, and how to run a command in it as its USER."""

    root: Path
    dockerfile: Dockerfile
    env: dict[str, str]
    user: tuple[int, int] | None  # (uid, gid) to switch to; None when the tests already run unprivileged

    @property
    def shiv_root(self) -> Path:
        return Path(self.env["SHIV_ROOT"])

    @property
    def workdir(self) -> Path:
        return self.inside(self.dockerfile.last("WORKDIR").args)

    def inside(self, path: str) -> Path:
        """An absolute path of the image, in this directory."""
        return self.root / path.lstrip("/")

    def as_user(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.user[0], "group": self.user[1], "extra_groups": []}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def skip_or_fail(message: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(message + " (BOLTLINK_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def python311_for(user: tuple[int, int] | None, user_env: dict[str, str]) -> str:
    """A Python 3.11 the image's user may run (the session's may sit in root's home, closed to others)."""
    where = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"], env=user_env,
                           capture_output=True, text=True, timeout=60)
    candidates = [where.stdout.strip(), "/usr/local/bin/python3.11", "/usr/bin/python3.11", sys.executable]
    extra = {} if user is None else {"user": user[0], "group": user[1], "extra_groups": []}
    for candidate in filter(None, candidates):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            check = subprocess.run([candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 11))"],
                                   cwd="/", capture_output=True, timeout=60, **extra)
            if check.returncode == 0:
                return candidate
    skip_or_fail(f"no Python 3.11 that uid {user[0] if user else os.getuid()} may run (tried {candidates})")
    raise AssertionError("unreachable")


@pytest.fixture
def image(built_pyz: Path, user_env: dict[str, str]) -> Iterator[Image]:
    """The image's files, with SHIV_ROOT pre-extracted by the Dockerfile's RUN line."""
    dockerfile = parse_dockerfile()
    uid, gid = dockerfile.user()
    user = (uid, gid) if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="boltlink-image-"))  # not under pytest's tmp dir: that is 0700
    try:
        root.chmod(0o755)
        # COPY --from=build --chmod=0555 /dist/boltlink.pyz /usr/local/bin/boltlink
        (copy,) = dockerfile.all("COPY", dockerfile.final_stage)
        options = dict(word[2:].split("=", 1) for word in copy.args.split() if word.startswith("--"))
        target = root / copy.args.split()[-1].lstrip("/")
        target.parent.mkdir(parents=True)
        shutil.copyfile(built_pyz, target)
        target.chmod(int(options["chmod"], 8))
        # `python3` as the image has it on PATH: a 3.11 the image's user can run.
        interpreter = root / "python" / "python3"
        interpreter.parent.mkdir()
        interpreter.symlink_to(python311_for(user, user_env))

        env = {key: (str(root / value.lstrip("/")) if value.startswith("/") else value)
               for key, value in dockerfile.env().items()}
        env.update(PATH=os.pathsep.join([str(target.parent), str(interpreter.parent), "/usr/bin", "/bin"]),
                   LANG="C.UTF-8")
        image = Image(root, dockerfile, env, user)
        data = Path(env["BOLTLINK_DATA_DIR"])
        data.mkdir(parents=True, mode=0o750)
        if user is not None:
            os.chown(data, *user)
        image.workdir.mkdir(parents=True, exist_ok=True)

        # As `docker build` runs it: root, the image's ENV, /bin/sh -c.
        built = subprocess.run(["/bin/sh", "-c", extraction_run(dockerfile)], env=env, cwd=root,
                               capture_output=True, text=True, timeout=300)
        assert built.returncode == 0, f"the pre-extraction RUN failed:\n{built.stdout}{built.stderr}"
        yield image
    finally:
        for path in [root, *root.rglob("*")]:  # SHIV_ROOT is read-only: open it up to remove it
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def snapshot(directory: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_mode, p.stat().st_size, p.stat().st_mtime_ns)
            for p in [directory, *directory.rglob("*")]}


def test_pre_extraction_leaves_a_compiled_read_only_site_packages(image: Image, built_pyz: Path) -> None:
    with zipfile.ZipFile(built_pyz) as pyz:
        build_id = json.loads(pyz.read("environment.json"))["build_id"]
    # shiv looks for SHIV_ROOT/<pyz name>_<build id>/site-packages: found, it extracts nothing.
    (site,) = image.shiv_root.glob("*/site-packages")
    assert site.parent.name == f"{image.inside(image.dockerfile.container_command()[0]).name}_{build_id}"
    assert len(list(image.shiv_root.iterdir())) == 2, "the extraction and shiv's lock file, nothing else"

    sources = list(site.rglob("*.py"))
    assert len(sources) > 500
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
        assert pyc.is_file(), f"{source.relative_to(site)} is not compiled"
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == PYC_UNCHECKED_HASH, f"{pyc.relative_to(site)}: flags {flags:#b}"
    writable = [p for p in [image.shiv_root, *image.shiv_root.rglob("*")] if p.lstat().st_mode & 0o222]
    assert not writable, f"{len(writable)} writable, e.g. {writable[0]}"


def tail(log: Path) -> str:
    return "\n--- container output (tail) ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])


def test_cmd_serves_health_and_stops_cleanly_on_sigterm(image: Image, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    port = free_port()
    # 127.0.0.1, not the image's 0.0.0.0: nothing here should listen on the test machine's interfaces.
    # Two API workers, as the Kubernetes pods get from their CPU limit, whatever this machine has.
    env = {**image.env, "BOLTLINK_HOST": "127.0.0.1", "BOLTLINK_PORT": str(port), "BOLTLINK_INSTANCES": "2",
           "HOME": image.env["BOLTLINK_DATA_DIR"]}
    config = load_config(environ=env)
    before = snapshot(image.shiv_root)
    command = image.dockerfile.container_command()
    options, healthcheck = image.dockerfile.healthcheck()
    check_timeout = float(options["timeout"].rstrip("s"))

    def health_check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(healthcheck, env=env, cwd=image.workdir, capture_output=True, text=True,
                              timeout=check_timeout, **image.as_user())

    log = tmp_path / "container.log"
    with log.open("wb") as out:
        container = subprocess.Popen(command, env=env, cwd=image.workdir, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     **image.as_user())

    def kill_group() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(container.pid, signal.SIGKILL)
        container.wait()

    request.addfinalizer(kill_group)

    # The master logs "cluster ready" once every worker said it is: only then is a SIGTERM a stop, not a failed start.
    deadline = time.monotonic() + 60
    while "cluster ready" not in log.read_text(errors="replace"):
        assert container.poll() is None, f"exited with {container.returncode}" + tail(log)
        assert time.monotonic() < deadline, "no 'cluster ready' within 60 s" + tail(log)
        time.sleep(0.1)  # poll interval

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as client:
        health = client.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        assert client.get("/ready").status_code == 200

    checked = health_check()
    assert checked.returncode == 0, f"HEALTHCHECK failed: {checked.stderr}" + tail(log)

    container.send_signal(signal.SIGTERM)
    try:
        code = container.wait(timeout=config.drain_delay + config.kill_timeout + 10)
    except subprocess.TimeoutExpired:
        pytest.fail("still running after SIGTERM, drain_delay and kill_timeout" + tail(log))
    assert code == 0, f"exited with {code} after SIGTERM" + tail(log)

    # The control for the check above: with nothing listening, the same command fails.
    assert health_check().returncode != 0
    # Nothing was extracted, compiled or changed in SHIV_ROOT: the image's can stay read-only.
    assert snapshot(image.shiv_root) == before
    # And the processes ran as the image's user, on the data volume.
    if image.user is not None:
        owners = {p.stat().st_uid for p in Path(env["BOLTLINK_DATA_DIR"]).rglob("*")}
        assert owners == {image.user[0]}
    assert stat.S_ISDIR(Path(env["BOLTLINK_DATA_DIR"], "logs").stat().st_mode)
