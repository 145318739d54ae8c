"""Reading a bulk upload: a JSON array of link objects, or CSV rows turned into the same objects."""

from __future__ import annotations

import csv
import io
from typing import Any

from quart import request

from boltlink.errors import InvalidInput

BULK_LIMIT = 1000
CSV_COLUMNS = ("url", "slug", "title", "tags", "expires_at", "max_clicks", "redirect_status", "forward_query",
               "do_not_track")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


async def read_bulk_rows() -> list[Any]:
    """The uploaded rows, each a dict for LinkIn to validate (or anything, which it will refuse)."""
    if request.mimetype == "multipart/form-data":
        upload = (await request.files).get("file")
        if upload is None:
            raise InvalidInput.field("file", "upload the CSV in a form field named 'file'")
        rows = csv_rows(upload.read().decode("utf-8-sig", errors="replace"))
    elif request.mimetype in ("text/csv", "application/csv"):
        rows = csv_rows((await request.get_data(as_text=False)).decode("utf-8-sig", errors="replace"))
    else:
        body = await request.get_json()
        if not isinstance(body, list):
            raise InvalidInput.field("body", "must be a JSON array of link objects, or CSV")
        rows = body
    if not rows:
        raise InvalidInput.field("body", "contains no rows")
    if len(rows) > BULK_LIMIT:
        raise InvalidInput.field("body", f"at most {BULK_LIMIT} rows per upload, got {len(rows)}")
    return rows


def csv_rows(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip().lower() for name in reader.fieldnames or ()]
    if "url" not in header:
        raise InvalidInput.field("file", "the CSV header must name a 'url' column")
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown:
        raise InvalidInput.field("file", f"unknown CSV column '{unknown[0]}' (known: {', '.join(CSV_COLUMNS)})")
    reader.fieldnames = header
    return [_row_to_link(row) for row in reader]


def _row_to_link(row: dict[str, Any]) -> dict[str, Any]:
    link: dict[str, Any] = {}
    for key, value in row.items():
        if key is None:  # more cells than columns: let validation name it
            link["extra_cells"] = value
            continue
        value = (value or "").strip()
        if value == "" and key != "url":
            continue
        if key == "tags":
            link[key] = [t for t in value.replace(",", " ").split() if t]
        elif key in ("forward_query", "do_not_track"):
            lowered = value.lower()
            link[key] = True if lowered in _TRUE else False if lowered in _FALSE else value
        elif key in ("max_clicks", "redirect_status") and value.isdigit():
            link[key] = int(value)
        else:
            link[key] = value  # pydantic parses dates from strings and names what it can't
    return link
