"""GET /<slug>/qr: the short URL as a QR code, public, bounded, cached, and never a click."""

from __future__ import annotations

import struct

import pytest

from boltlink.config import Config
from boltlink.shortener import LinkDraft, LinkRules, create_link
from boltlink.web import create_app
from boltlink.web.qr import render_qr
from boltlink.web.state import app_state


@pytest.fixture
async def link(store, config):
    return await create_link(store, LinkDraft(url="https://example.com/target", slug="qrme"),
                             LinkRules.for_config(config))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # the IHDR chunk: width, height


async def test_svg_encodes_the_short_url_without_a_key(client, link):
    response = await client.get("/qrme/qr")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/svg+xml"
    body = await response.get_data()
    assert body.startswith(b"<svg")
    assert body == render_qr("http://localhost/qrme", "svg", 256)  # the short URL, not the target
    assert "public" in response.headers["Cache-Control"] and "max-age=86400" in response.headers["Cache-Control"]


async def test_png_is_at_most_size_pixels_wide(client, link):
    response = await client.get("/qrme/qr?format=png&size=300")

    assert response.headers["Content-Type"] == "image/png"
    width, height = png_size(await response.get_data())
    assert width == height
    assert 200 < width <= 300  # whole modules: as large as fits


@pytest.mark.parametrize("config", ["sqlite"], indirect=True)
async def test_base_url_is_what_the_code_says(tmp_path, store, link):
    client = create_app(Config(data_dir=str(tmp_path), base_url="https://s.example"), store).test_client()

    body = await (await client.get("/qrme/qr?format=png")).get_data()

    assert body == render_qr("https://s.example/qrme", "png", 256)


@pytest.mark.parametrize(("query", "field"), [("size=10", "size"), ("size=5000", "size"), ("size=big", "size"),
                                              ("format=gif", "format"), ("colour=red", "colour")])
async def test_bad_parameters_are_a_422_naming_the_field(client, link, query, field):
    response = await client.get(f"/qrme/qr?{query}")

    assert response.status_code == 422
    assert [e["field"] for e in (await response.get_json())["errors"]] == [field]


async def test_unknown_slug_is_a_404_problem(client):
    response = await client.get("/nothing/qr")

    assert response.status_code == 404
    assert (await response.get_json())["type"].endswith("link-not-found")


async def test_drawing_the_code_is_not_a_click(client, app, link):
    await client.get("/qrme/qr")
    await client.get("/qrme/qr?format=png")

    async with app.app_context():
        assert app_state().counters.clicks_queued == 0


async def test_a_slug_named_qr_still_redirects(client, store, config):
    await create_link(store, LinkDraft(url="https://example.com/q", slug="qr"), LinkRules.for_config(config))

    response = await client.get("/qr")

    assert response.status_code == 302
    assert response.headers["Location"] == "https://example.com/q"
