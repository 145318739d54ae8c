"""All CLI printing goes through here: results to stdout, messages and errors to stderr."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click


def out(message: str = "") -> None:
    click.echo(message)


def err(message: str) -> None:
    click.echo(message, err=True)


def out_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def out_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Plain aligned columns: readable in a terminal, easy to cut or grep."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
