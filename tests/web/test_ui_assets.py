"""The web UI's page and files: served from this server only, small, cached by content, under a strict CSP."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from boltlink.config import Config
from boltlink.shortener import LinkDraft, LinkRules, create_link
from boltlink.validation import RESERVED_SLUGS
from boltlink.web.ui import assets

ROOT = Path(__file__).resolve().parents[2]
UI_DIR = ROOT / "boltlink" / "web" / "static" / "ui"
FIRST_VISIT_BUDGET = 300_000  # bytes, uncompressed (issue #6)
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an identifier, never fetched
HOST_URL = re.compile(r"[a-z][a-z0-9+.-]*://[\w\[]", re.IGNORECASE)
REFERENCE = re.compile(r"""(?:src|href)="([^"]+)"|from\s+"([^"]+)"|import\s*\(\s*"([^"]+)"|url\(([^)]+)\)""")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """SQLite only: nothing here depends on the database."""
    return Config(data_dir=str(tmp_path))


def references(text: str) -> list[str]:
    return [next(group for group in match.groups() if group) for match in REFERENCE.finditer(text)]


async def first_visit(client) -> dict[str, tuple[int, str, bytes]]:
    """What a browser fetches on a first visit to /: the page, then everything it references, transitively."""
    fetched: dict[str, tuple[int, str, bytes]] = {}
    queue = ["/"]
    while queue:
        path = queue.pop()
        if path in fetched:
            continue
        response = await client.get(path)
        body = await response.get_data()
        fetched[path] = (response.status_code, response.headers.get("Content-Type", ""), body)
        base = path.rsplit("/", 1)[0]
        for ref in references(body.decode()):
            if ref.startswith("#") or ref == "/docs":
                continue
            assert ref.startswith(("/", "./")), f"{path} references {ref}: not from this server"
            queue.append(base + ref[1:] if ref.startswith("./") else ref)
    return fetched


async def test_the_page_sets_a_strict_content_security_policy(client):
    response = await client.get("/")

    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["require-trusted-types-for"] == "'script'"  # innerHTML and friends throw
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "no-cache" in response.headers["Cache-Control"]


async def test_every_file_of_a_first_visit_comes_from_here_within_budget(client):
    fetched = await first_visit(client)

    assert len(fetched) > 5  # the page, its stylesheet, icon and the modules app.js imports
    for path, (status, content_type, _) in fetched.items():
        assert status == 200, path
        assert content_type.split(";")[0] in ("text/html", "text/javascript", "text/css", "image/svg+xml"), path
    total = sum(len(body) for _, _, body in fetched.values())
    assert total < FIRST_VISIT_BUDGET, f"first visit transfers {total} bytes"
    served = {path.rsplit("/", 1)[1] for path in fetched if path != "/"}
    assert served == set(assets().files), "a file in static/ui that no page loads, or one that is missing"


async def test_assets_are_cached_for_good_under_their_content_hash(client):
    version = assets().version

    current = await client.get(f"/ui/{version}/app.js")
    stale = await client.get("/ui/0123456789ab/app.js")  # a page from another build, e.g. mid-reload

    assert "immutable" in current.headers["Cache-Control"] and "max-age=31536000" in current.headers["Cache-Control"]
    assert stale.status_code == 200 and "no-cache" in stale.headers["Cache-Control"]
    assert (await client.get(f"/ui/{version}/missing.js")).status_code == 404
    assert (await client.get(f"/ui/{version}/..%2Fui.py")).status_code == 404


def test_no_file_names_another_host_or_parses_html():
    for path in sorted(UI_DIR.iterdir()):
        text = path.read_text().replace(SVG_NAMESPACE, "")
        assert HOST_URL.search(text) is None, f"{path.name} names another host"
        if path.suffix == ".js":
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
                assert sink not in text, f"{path.name} uses {sink}"


def test_the_page_has_no_inline_script_or_style():
    page = (UI_DIR / "index.html").read_text()

    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None
    assert "<style" not in page and " style=" not in page
    assert re.search(r"\son[a-z]+=", page) is None


async def test_the_ui_does_not_shadow_short_links(client, store, config):
    await create_link(store, LinkDraft(url="https://example.com/x", slug="x"), LinkRules.for_config(config))

    assert "ui" in RESERVED_SLUGS  # so /ui/... can never be a short link
    assert (await client.get("/x")).status_code == 302
    assert (await client.get("/x/qr")).status_code == 200


def test_the_files_get_into_the_wheel_and_the_pyz():
    ui_files = {p for p in UI_DIR.iterdir() if p.is_file()}
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    in_wheel = {p for pattern in package_data["boltlink.web"] for p in (ROOT / "boltlink" / "web").glob(pattern)}
    spec = importlib.util.spec_from_file_location("boltlink_build", ROOT / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    in_pyz = {p for pattern in build.PACKAGE_DATA for p in (ROOT / "boltlink").glob(pattern)}

    assert ui_files <= in_wheel
    assert ui_files <= in_pyz
