"""The web UI in headless Chromium against a real `boltlink serve`: what a user does, end to end.

Fixtures (tests/browser/conftest.py): server (with an API key), page (fails the test on any console
error, CSP violation or dialog), sign_in, screenshot_dir.
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
AGGREGATION_TIMEOUT = 30.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create(server: Any, **link: Any) -> dict[str, Any]:
    with server.api() as api:
        response = api.post("/api/v1/links", json=link)
    assert response.status_code == 201, response.text
    return response.json()


def click(short_url: str, **headers: str) -> None:
    """Follow a short link as a visitor would (the target host itself need not exist)."""
    response = httpx.get(short_url, headers={"User-Agent": CHROME_UA, **headers}, follow_redirects=False)
    assert response.status_code == 302


def open_route(page: Any, route: str) -> None:
    """Go to #route and wait until that page is drawn, not the one before it (routing is asynchronous)."""
    page.goto(f"/#{route}")
    page.wait_for_function("route => document.getElementById('main').dataset.route === route", arg=f"#{route}")


def wait_for_total(page: Any, slug: str, total: int) -> None:
    """Reload the link page until the aggregator has counted the clicks (it runs inside `serve`)."""
    deadline = time.monotonic() + AGGREGATION_TIMEOUT
    open_route(page, f"/links/{slug}")
    while True:
        page.reload()  # a goto to the same #hash would not draw the page again
        shown = page.get_by_test_id("total").text_content()
        if shown == str(total):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the link page still shows {shown} clicks, not {total}")
        time.sleep(0.5)


def field_error(page: Any, label: str) -> str:
    """The error shown beside the field with this label, checked to be tied to it for screen readers."""
    from playwright.sync_api import expect

    control = page.get_by_label(label)
    expect(control).to_have_attribute("aria-invalid", "true")  # set when the API's answer arrives
    error_id = control.get_attribute("aria-describedby").split()[-1]
    error = page.locator(f"#{error_id}")
    # Beside the field: inside the same wrapper as its label and control.
    assert error.locator("xpath=..").get_attribute("data-field") == control.get_attribute("name")
    return error.text_content()


def focused(page: Any) -> dict[str, Any]:
    return page.evaluate("() => ({tag: document.activeElement.tagName, name: document.activeElement.name || '',"
                         " text: document.activeElement.textContent.trim()})")


# --- signing in ---------------------------------------------------------------------------------


def test_sign_in_with_the_keyboard_alone(page: Any, server: Any) -> None:
    page.goto("/")
    page.get_by_role("heading", name="Sign in").wait_for()

    page.keyboard.press("Tab")  # focus starts on the page's heading; the key field comes next
    assert focused(page)["name"] == "key"
    page.keyboard.type("bl_wrongkey_" + "x" * 20)
    page.keyboard.press("Enter")
    assert field_error(page, "API key") == "This API key is not valid"

    page.keyboard.press("Control+A")
    page.keyboard.type(server.key)
    page.keyboard.press("Enter")
    page.get_by_role("heading", level=1, name="Links").wait_for()
    assert page.get_by_role("navigation", name="Main").is_visible()

    page.reload()  # the key is kept in the browser...
    page.get_by_role("heading", level=1, name="Links").wait_for()
    page.get_by_role("button", name="Sign out").click()  # ...until sign-out
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.evaluate("() => localStorage.length") == 0


# --- shortening ---------------------------------------------------------------------------------


def test_shorten_with_the_keyboard_alone_then_copy_and_qr(page: Any, sign_in: Any, server: Any) -> None:
    sign_in()
    open_route(page, "/new")
    page.get_by_role("heading", level=1, name="Shorten a link").wait_for()
    slug = unique("kb")

    for name, text in [("url", "https://example.com/keyboard"), ("slug", slug), ("title", "Typed"),
                       ("tags", "kb demo")]:
        page.keyboard.press("Tab")
        assert focused(page)["name"] == name
        page.keyboard.type(text)
    page.keyboard.press("Enter")  # submits the form from any text field

    result = page.get_by_role("region", name="Your short link")
    result.wait_for()
    short_url = f"{server.url}/{slug}"
    assert page.get_by_test_id("short-url").text_content() == short_url
    assert focused(page)["text"] == "Your short link"  # focus moved to the result, for screen readers too

    page.keyboard.press("Tab")  # the short link itself, then its copy button
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Copy"
    page.keyboard.press("Enter")
    assert page.evaluate("() => navigator.clipboard.readText()") == short_url

    qr = result.get_by_role("img", name=f"QR code for {short_url}")
    qr.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr.element_handle())
    with server.api() as api:
        assert api.get(f"/api/v1/links/{slug}").json()["tags"] == ["kb", "demo"]


def test_api_validation_errors_show_beside_their_field(page: Any, sign_in: Any, server: Any) -> None:
    taken = create(server, url="https://example.com/taken", slug=unique("taken"))["slug"]
    sign_in()
    open_route(page, "/new")
    page.get_by_label("Long URL").fill("javascript:alert(1)")
    page.get_by_role("button", name="Shorten").click()

    assert field_error(page, "Long URL") == "Must be an http or https URL"
    assert focused(page)["name"] == "url"  # the first field in error gets the focus

    page.get_by_label("Long URL").fill("https://example.com/fine")
    page.get_by_label("Custom slug").fill(taken)
    page.get_by_role("button", name="Shorten").click()

    assert field_error(page, "Custom slug") == "Already taken"
    assert page.get_by_label("Long URL").get_attribute("aria-invalid") is None


# --- the link page ------------------------------------------------------------------------------


def test_a_click_shows_in_the_totals_chart_and_visits(page: Any, sign_in: Any, server: Any) -> None:
    link = create(server, url="https://example.com/clicked", slug=unique("clk"))
    sign_in()
    open_route(page, f"/links/{link['slug']}")
    assert page.get_by_test_id("total").text_content() == "0"

    click(link["short_url"], Referer="https://news.example/item")
    wait_for_total(page, link["slug"], 1)

    assert page.get_by_test_id("humans").text_content() == "1"
    chart = page.locator("figure.chart")
    assert chart.get_attribute("data-total") == "1"
    bars = [float(h) for h in chart.locator("rect.humans").evaluate_all("rs => rs.map(r => r.getAttribute('height'))")]
    assert sum(1 for h in bars if h > 0) == 1  # one bar stands up: the hour of the click
    assert "1 click" in chart.get_by_role("img").get_attribute("aria-label")
    visits = page.get_by_role("region", name="Recent visits")
    assert visits.get_by_role("cell", name="news.example").is_visible()
    assert visits.get_by_role("cell", name="Human").is_visible()
    assert page.get_by_role("region", name="Clicks").get_by_text("Chrome").first.is_visible()

    page.get_by_label("Step").select_option("day")  # another granularity: still one click
    page.wait_for_function("() => document.querySelector('figure.chart')?.dataset.total === '1' "
                           "&& location.hash.includes('granularity=day')")

    with page.expect_download() as download:
        page.get_by_role("button", name="Export all visits (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["referrer_host"], r["bot"]) for r in rows] == [("news.example", "False")]


def test_edit_then_delete_with_confirmation(page: Any, sign_in: Any, server: Any) -> None:
    link = create(server, url="https://example.com/before", slug=unique("edit"), title="Before")
    sign_in()
    open_route(page, f"/links/{link['slug']}")
    page.get_by_role("heading", level=1, name="Before").wait_for()

    page.get_by_label("Title").fill("After")
    page.get_by_label("Long URL").fill("https://example.com/after")
    page.get_by_label("Maximum clicks").fill("0")
    page.get_by_role("button", name="Save changes").click()
    assert field_error(page, "Maximum clicks").startswith("Input should be greater than or equal to 1")

    page.get_by_label("Maximum clicks").fill("")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_role("heading", level=1, name="After").wait_for()
    with server.api() as api:
        stored = api.get(f"/api/v1/links/{link['slug']}").json()
    assert (stored["title"], stored["url"], stored["max_clicks"]) == ("After", "https://example.com/after", None)

    page.get_by_role("button", name="Delete this link…").click()
    dialog = page.get_by_role("dialog")
    assert link["short_url"] in dialog.text_content()
    page.keyboard.press("Escape")  # Escape says no
    assert dialog.count() == 0
    with server.api() as api:
        assert api.get(f"/api/v1/links/{link['slug']}").status_code == 200

    page.get_by_role("button", name="Delete this link…").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_role("heading", level=1, name="Links").wait_for()
    with server.api() as api:
        assert api.get(f"/api/v1/links/{link['slug']}").status_code == 404
    assert httpx.get(link["short_url"]).status_code == 404


# --- the list and bulk upload -------------------------------------------------------------------


def test_list_searches_filters_by_tag_and_pages(page: Any, sign_in: Any, server: Any) -> None:
    tag = unique("batch")
    for n in range(23):
        create(server, url=f"https://example.com/{n}", slug=f"{tag}-{n:02d}", tags=[tag])
    sign_in()

    open_route(page, f"/links?tag={tag}")
    assert page.get_by_role("table").locator("caption").text_content().startswith(f"23 links, tagged {tag}")
    assert page.get_by_text("Page 1 of 2").is_visible()
    page.get_by_role("link", name="Next").click()
    page.get_by_text("Page 2 of 2").wait_for()
    assert page.locator("tbody tr").count() == 3

    open_route(page, "/links")
    page.get_by_label("Search").fill(f"{tag}-07")
    page.get_by_label("Search").press("Enter")
    page.wait_for_function("() => location.hash.startsWith('#/links?q=')")
    page.locator("tbody tr").first.wait_for()
    assert page.locator("tbody tr").count() == 1
    page.locator("tbody tr").first.get_by_role("link", name=tag, exact=True).click()  # a tag filters the list
    page.get_by_text("Page 1 of 2").wait_for()


def test_bulk_upload_answers_every_row(page: Any, sign_in: Any, server: Any) -> None:
    taken = create(server, url="https://example.com/t", slug=unique("bulk-taken"))["slug"]
    good = unique("bulk")
    sign_in()
    open_route(page, "/bulk")
    upload = (f"url,slug,tags\nhttps://example.com/1,{good},a b\nftp://example.com/2,,\n"
              f"https://example.com/3,{taken},\n")

    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "links.csv", "mimeType": "text/csv", "buffer": upload.encode()}])
    page.get_by_role("button", name="Upload").click()

    page.get_by_role("heading", name="1 link created, 2 failed").wait_for()
    rows = page.locator("tbody tr")
    assert rows.nth(0).text_content().startswith("1Created")
    assert f"/{good}" in rows.nth(0).text_content()
    assert "url: must be an http or https URL" in rows.nth(1).text_content()
    assert "slug: already taken" in rows.nth(2).text_content()


# --- safety -------------------------------------------------------------------------------------


def test_csp_header_and_a_script_title_stays_text(page: Any, sign_in: Any, server: Any, watch: Any) -> None:
    title = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    link = create(server, url="https://example.com/xss", slug=unique("xss"), title=title, tags=["<b>bold</b>"])

    response = page.goto("/")
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "script-src 'self'" in csp
    sign_in()
    open_route(page, f"/links?q={link['slug']}")
    row = page.locator(f"tr[data-slug='{link['slug']}']")
    assert title in row.text_content()
    open_route(page, f"/links/{link['slug']}")

    assert page.get_by_role("heading", level=1).text_content() == title
    assert page.locator("main script, main img[src='x']").count() == 0
    assert watch.dialogs == []
    # Trusted Types with no policy: even a script of our own could not parse HTML on this page.
    assert page.evaluate("() => { try { document.body.innerHTML = '<b>x</b>'; return 'parsed'; }"
                         " catch (e) { return e.name; } }") == "TypeError"
    watch.errors.clear()  # that refusal is logged as a console error, on purpose


def test_a_first_visit_fetches_from_this_server_only_and_under_300_kb(page: Any, server: Any) -> None:
    fetched: dict[str, int] = {}
    page.on("requestfinished", lambda request: fetched.__setitem__(request.url, len(request.response().body())))

    page.goto("/")
    page.get_by_label("API key").fill(server.key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", level=1, name="Links").wait_for()
    page.wait_for_load_state("networkidle")

    assert [url for url in fetched if not url.startswith(server.url + "/")] == []
    assert any(url.endswith("/app.js") for url in fetched)
    total = sum(fetched.values())
    print(f"first visit: {len(fetched)} requests, {total} bytes")
    assert total < 300_000


# --- overview -----------------------------------------------------------------------------------


def test_overview_shows_totals_top_links_and_the_cluster_state(page: Any, sign_in: Any, server: Any) -> None:
    link = create(server, url="https://example.com/top", slug=unique("top"))
    for _ in range(3):
        click(link["short_url"])
    sign_in()
    open_route(page, f"/links/{link['slug']}")
    wait_for_total(page, link["slug"], 3)

    page.get_by_role("link", name="Overview").click()
    page.get_by_role("heading", level=1, name="Overview").wait_for()
    top = page.get_by_role("region", name="Clicks on all links").get_by_role("link", name=f"/{link['slug']}")
    top.wait_for()
    assert "runs as a single process" in page.get_by_role("region", name="Cluster").text_content()


# --- every page at desktop and phone widths -----------------------------------------------------


def test_screenshots_of_every_page_at_desktop_and_phone_width(page: Any, sign_in: Any, server: Any,
                                                             screenshot_dir: Path) -> None:
    link = create(server, url="https://example.com/docs/getting-started?utm_source=newsletter", slug="launch",
                  title="Launch announcement", tags=["newsletter", "launch"])
    for n in range(8):
        click(link["short_url"], Referer=["https://news.example/", "https://social.example/p/1"][n % 2])
    click(link["short_url"], **{"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"})
    for n in range(4):
        create(server, url=f"https://example.com/post/{n}", slug=f"post-{n}", title=f"Blog post {n}", tags=["blog"])
    sign_in()
    wait_for_total(page, "launch", 9)

    pages = [
        ("signin", None, "Sign in"),
        ("links", "/links", "Links"),
        ("shorten", "/new", "Shorten a link"),
        ("link", "/links/launch", "Launch announcement"),
        ("bulk", "/bulk", "Upload links from a CSV file"),
        ("overview", "/overview", "Overview"),
    ]
    for size_name, viewport in [("desktop", {"width": 1280, "height": 800}), ("phone", {"width": 375, "height": 812})]:
        page.set_viewport_size(viewport)
        for name, path, heading in pages:
            if path is None:
                page.evaluate("() => localStorage.clear()")
                open_route(page, "/signin")
            else:
                open_route(page, path)
            page.get_by_role("heading", level=1, name=heading).wait_for()
            page.wait_for_load_state("networkidle")
            if name == "signin":
                page.get_by_label("API key").fill(server.key)
            if name == "shorten":  # with its result: the short link, copy button and QR code
                page.get_by_label("Long URL").fill("https://example.com/a/rather/long/page?with=query")
                page.get_by_label("Custom slug").fill(f"spring-sale-{size_name}")
                page.get_by_role("button", name="Shorten").click()
                page.get_by_role("region", name="Your short link").get_by_role("img").wait_for()
            if name == "bulk":  # with its per-row results
                rows = f"url,slug,title\nhttps://example.com/1,import-{size_name},Imported\nnot-a-url,,Broken\n"
                page.get_by_label("CSV file").set_input_files(
                    files=[{"name": "links.csv", "mimeType": "text/csv", "buffer": rows.encode()}])
                page.get_by_role("button", name="Upload").click()
                page.get_by_role("heading", name="1 link created, 1 failed").wait_for()
            # Nothing wider than the screen: a phone never scrolls sideways (wide tables scroll in their box).
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"{name} is {width}px wide at {size_name}"
            page.screenshot(path=screenshot_dir / f"{name}-{size_name}.png", full_page=True)
            if name == "signin":
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("heading", level=1, name="Links").wait_for()

    assert len(list(screenshot_dir.glob("*-desktop.png"))) >= len(pages)


# --- under a cluster ----------------------------------------------------------------------------


def test_overview_shows_the_cluster_processes_live(open_page: Any, cluster_server: Any, screenshot_dir: Path) -> None:
    page = open_page(cluster_server)
    page.goto("/")
    page.get_by_label("API key").fill(cluster_server.key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", level=1, name="Links").wait_for()

    open_route(page, "/overview")
    cluster = page.get_by_role("region", name="Cluster")
    for name in ("api-0", "aggregator", "analytics"):
        cluster.locator(f"tr[data-process='{name}']").wait_for()
    assert "online" in cluster.locator("tr[data-process='api-0']").text_content()
    assert cluster.get_by_role("img", name=re.compile("Requests per second")).is_visible()
    pid = cluster.locator("tr[data-process='api-0'] td").nth(2).text_content()
    assert pid.isdigit()
    # It refreshes by itself: the master's uptime keeps moving while the page stays open.
    before = cluster.get_by_text(re.compile(r"^Master pid")).text_content()
    page.wait_for_function("before => !document.body.textContent.includes(before)", arg=before, timeout=10_000)
    page.screenshot(path=screenshot_dir / "overview-cluster-desktop.png", full_page=True)
