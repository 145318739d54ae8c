#!/usr/bin/env python3
"""Build dist/boltlink.pyz, the one-file boltlink, with shiv.

    python3 build.py                 build dist/boltlink.pyz
    python3 build.py --output PATH   build somewhere else
    python3 build.py --lock          regenerate requirements.lock from pyproject.toml

Needs only Python 3.11 with venv and pip; the tools live in .build/venv.
Two builds of the same commit on one machine are byte-identical: the staged
files are cleaned of build-specific leftovers, their modes normalised, every
zip timestamp is the commit time and shiv's build id is the content's hash.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BUILD_DIR = ROOT / ".build"
BUILD_VENV = BUILD_DIR / "venv"
SITE = BUILD_DIR / "site"
LOCK = ROOT / "requirements.lock"
ENTRY_POINT = "boltlink.entry:main"
# pip is pinned too: it writes the staged metadata.
TOOLS = ["pip==26.3", "shiv==1.0.8"]
# Copied next to the *.py files. Keep in step with [tool.setuptools.package-data].
PACKAGE_DATA = ["store/migrations/*/*.sql", "web/static/**/*", "web/templates/**/*"]
# /docs loads only swagger-ui-bundle.js, the standalone preset, the css and the
# favicons; the source maps and ES-module bundles are ~7 MB nobody loads.
SWAGGER_UNUSED = ["*.map", "swagger-ui-es-bundle*.js"]
# The pyz is built on one 3.11.x and run on another (Debian 12's python3 is
# 3.11.2), so the lock must also hold what only older patch releases need.
# Belongs in pyproject's dependencies; kept here until it moves there.
# 1980-01-01, the earliest date a zip entry can hold: used outside a git checkout.
FALLBACK_EPOCH = "315532800"


class BuildError(Exception):
    """A failed step: one line, plus optionally the tail of a tool's output (args[1])."""


def run(cmd: list, what: str, env: dict | None = None) -> str:
    """Run a command quietly; on failure raise with the last lines of its output."""
    try:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    except OSError as exc:
        raise BuildError(f"{what} failed: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise BuildError(f"{what} failed (exit {proc.returncode})", tail)
    return proc.stdout


def make_venv(path: Path, packages: list[str]) -> Path:
    """Create a venv at path with packages installed; return its python."""
    run([sys.executable, "-m", "venv", "--clear", path], f"creating a venv in {path}")
    python = path / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", *packages], f"installing {' '.join(packages)}")
    return python


def build_venv() -> Path:
    """Reuse .build/venv if it runs and holds exactly TOOLS for this Python, else recreate it."""
    python = BUILD_VENV / "bin" / "python"
    stamp = BUILD_VENV / "boltlink-tools.txt"
    wanted = f"{platform.python_version()} {' '.join(TOOLS)}\n"
    up_to_date = stamp.exists() and stamp.read_text() == wanted
    if up_to_date and subprocess.run([python, "-c", ""], capture_output=True).returncode == 0:
        return python
    print(f"build: creating .build/venv with {', '.join(TOOLS)}")
    make_venv(BUILD_VENV, TOOLS)
    stamp.write_text(wanted)
    return python


def write_lock() -> None:
    """Install [project].dependencies into a throwaway venv and pin everything it got.

    Same set as `pip install .`, without building boltlink in-tree (which
    leaves build/ and boltlink.egg-info/ in the shared checkout).
    """
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    with tempfile.TemporaryDirectory() as tmp:
        python = make_venv(Path(tmp) / "venv", TOOLS[:1])
        print(f"build: resolving {len(dependencies)} dependencies in a clean venv")
        run([python, "-m", "pip", "install", "-q", "--only-binary", ":all:", *dependencies], "pip install")
        pins = run([python, "-m", "pip", "freeze"], "pip freeze").split()  # sorted by name
    header = "# Runtime dependencies of boltlink, pinned. Regenerate: python3 build.py --lock\n"
    LOCK.write_text(header + "\n".join(pins) + "\n")
    print(f"{LOCK.name}  {len(pins)} packages")


def stage(python: Path) -> None:
    """Fill .build/site with the locked dependencies and the boltlink package."""
    package = ROOT / "boltlink"
    entry_module = ROOT / ENTRY_POINT.partition(":")[0].replace(".", "/")
    if not (entry_module.is_dir() or entry_module.with_suffix(".py").exists()):
        raise BuildError(f"{entry_module.relative_to(ROOT)} is missing: the pyz starts {ENTRY_POINT}")
    if not LOCK.exists():
        raise BuildError(f"{LOCK.name} is missing: run python3 build.py --lock")

    shutil.rmtree(SITE, ignore_errors=True)  # from scratch: no leftovers from an older lock
    print("build: installing locked dependencies")
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--only-binary", ":all:"]
    run([*pip, "--target", SITE, "-r", LOCK], "installing locked dependencies")

    files = set(package.rglob("*.py"))
    files.update(path for pattern in PACKAGE_DATA for path in package.glob(pattern) if path.is_file())
    for src in files:
        if "__pycache__" not in src.parts:
            dst = SITE / src.relative_to(ROOT)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)

    write_build_info(sorted(f for f in files if "__pycache__" not in f.parts))

    # bin/ holds console scripts whose shebang is this build venv's absolute
    # path; the pyz starts through its own entry point and never uses them.
    doomed = [SITE / "bin", *SITE.rglob("__pycache__"), *SITE.rglob("direct_url.json")]
    for pattern in SWAGGER_UNUSED:
        doomed += (SITE / "swagger_ui_bundle").rglob(pattern)
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for record in SITE.glob("*.dist-info/RECORD"):  # it hashes those scripts too
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(line for line in lines if not line.startswith("../../bin/")))

    # shiv stores each file's mode in the zip: make it independent of the umask.
    for path in SITE.rglob("*"):
        if path.is_file():
            path.chmod(0o755 if path.stat().st_mode & 0o111 else 0o644)


def write_build_info(sources: list[Path]) -> None:
    """boltlink/_build_info.py: an id of this build's code, shown by `status` to tell builds apart."""
    digest = hashlib.sha256(LOCK.read_bytes())
    for src in sources:
        digest.update(str(src.relative_to(ROOT)).encode() + b"\0" + src.read_bytes())
    (SITE / "boltlink" / "_build_info.py").write_text(
        '"""Written by build.py: the id of this build."""\n\n' f'BUILD_ID = "{digest.hexdigest()[:12]}"\n'
    )


def source_date_epoch() -> str:
    """The last commit's time, so that every zip timestamp follows from the commit."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return os.environ["SOURCE_DATE_EPOCH"]
    try:
        git = ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"]
        out = subprocess.run(git, capture_output=True, text=True).stdout.strip()
    except OSError:  # no git on this machine
        out = ""
    return out if out.isdigit() else FALLBACK_EPOCH


def build(output: Path) -> None:
    stage(build_venv())
    output.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: a running pyz keeps reading its
    # own (old) file instead of one rewritten under it.
    partial = output.with_name(output.name + ".partial")
    shiv = [
        BUILD_VENV / "bin" / "shiv",
        "--site-packages", SITE,
        "--reproducible",  # fixed zip timestamps: SOURCE_DATE_EPOCH below
        # Compile all modules once, at first extraction: that run takes 1.3 s
        # more and 19 MB more disk, but with PYTHONDONTWRITEBYTECODE=1 (or a
        # read-only SHIV_ROOT) every later start importing the app takes
        # 0.29 s instead of 0.69 s. SHIV_COMPILE_PYC=0 opts out at run time.
        "--compile-pyc",
        # No --build-id: shiv's default, the sha256 of the staged files, is
        # deterministic and changes whenever the content does.
        "-e", ENTRY_POINT,
        "-p", "/usr/bin/env python3",
        "-o", partial,
    ]  # fmt: skip
    print("build: running shiv")
    try:
        run(shiv, "shiv", env={**os.environ, "SOURCE_DATE_EPOCH": source_date_epoch()})
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    shown = os.path.relpath(output) if output.is_relative_to(Path.cwd()) else output
    print(f"{shown}  {output.stat().st_size / 1e6:.1f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description="Build boltlink.pyz with shiv, reproducibly.")
    parser.add_argument("--output", type=Path, default=ROOT / "dist" / "boltlink.pyz", help="where to write")
    parser.add_argument("--lock", action="store_true", help="regenerate requirements.lock and exit")
    args = parser.parse_args()
    os.umask(0o022)  # the venv and the staged files get the same modes everywhere
    try:
        if sys.version_info[:2] != (3, 11):
            raise BuildError(f"needs Python 3.11 (the pyz is tied to it), not {platform.python_version()}")
        BUILD_DIR.mkdir(exist_ok=True)
        # One build at a time per checkout: they share .build/site (the tests build too).
        with open(BUILD_DIR / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if args.lock:
                write_lock()
            else:
                build(args.output.absolute())
    except BuildError as exc:
        print(f"build.py: error: {exc.args[0]}", file=sys.stderr)
        for line in exc.args[1] if len(exc.args) > 1 else []:
            print(f"    {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
