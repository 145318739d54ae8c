"""POST /api/v1/links/bulk: every row answered, bad rows never lose good ones."""

from __future__ import annotations

PROBLEM = "application/problem+json"


async def test_json_array_reports_each_row(client, auth):
    rows = [
        {"url": "https://example.com/1", "slug": "b1"},
        {"url": "javascript:alert(1)", "slug": "b2"},
        {"url": "https://example.com/3", "slug": "b1"},
        {"url": "https://example.com/4", "tags": ["x"]},
        "not an object",
    ]
    response = await client.post("/api/v1/links/bulk", json=rows, headers=auth)
    assert response.status_code == 200
    result = await response.get_json()
    assert (result["created"], result["failed"]) == (2, 3)
    statuses = [(r["row"], r["status"]) for r in result["results"]]
    assert statuses == [(1, "created"), (2, "error"), (3, "error"), (4, "created"), (5, "error")]
    assert result["results"][1]["error"]["errors"][0]["field"] == "url"
    assert result["results"][2]["error"]["status"] == 409
    assert (await client.get("/api/v1/links/b1", headers=auth)).status_code == 200


CSV = (
    "url,slug,title,tags,max_clicks,redirect_status,forward_query\n"
    "https://example.com/a,csv-a,First,news promo,5,301,yes\n"
    "ftp://example.com/b,csv-b,,,,,\n"
    "https://example.com/c,,Third,,,,\n"
)


async def test_csv_body_creates_links(client, auth):
    response = await client.post("/api/v1/links/bulk", data=CSV.encode(),
                                 headers={**auth, "Content-Type": "text/csv"})
    assert response.status_code == 200
    result = await response.get_json()
    assert (result["created"], result["failed"]) == (2, 1)
    first = result["results"][0]["link"]
    assert (first["slug"], first["title"], first["tags"], first["max_clicks"], first["redirect_status"],
            first["forward_query"]) == ("csv-a", "First", ["news", "promo"], 5, 301, True)


async def test_csv_file_upload_creates_links(client, auth):
    import io

    from quart.datastructures import FileStorage

    upload = FileStorage(io.BytesIO(CSV.encode()), filename="links.csv", content_type="text/csv")
    response = await client.post("/api/v1/links/bulk", files={"file": upload}, headers=auth)
    assert response.status_code == 200
    assert (await response.get_json())["created"] == 2


async def test_csv_without_url_column_or_with_unknown_column_is_422(client, auth):
    for csv in ("slug\nabc\n", "url,colour\nhttps://example.com,red\n"):
        response = await client.post("/api/v1/links/bulk", data=csv.encode(),
                                     headers={**auth, "Content-Type": "text/csv"})
        assert response.status_code == 422
        assert response.content_type == PROBLEM


async def test_more_than_1000_rows_is_refused_whole(client, auth):
    rows = [{"url": f"https://example.com/{i}"} for i in range(1001)]
    response = await client.post("/api/v1/links/bulk", json=rows, headers=auth)
    assert response.status_code == 422
    listed = await (await client.get("/api/v1/links", headers=auth)).get_json()
    assert listed["pagination"]["total"] == 0


async def test_empty_or_non_array_body_is_422(client, auth):
    for body in ([], {"url": "https://example.com"}):
        response = await client.post("/api/v1/links/bulk", json=body, headers=auth)
        assert response.status_code == 422
