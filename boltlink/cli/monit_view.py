"""What `boltlink monit` draws: a pure function from one status reply to one screen.

    render(Frame(status, width=80, height=24, selected=0, log_lines=[...]))  -> a rich Layout

Top to bottom: a header line, the process table (a '>' marks the selected row,
so it shows without colour too) with the cluster totals, two requests/s
sparklines (cluster, selected process), the aggregator's line, the selected
process's log tail, and a footer. Every line is cropped to the width and the
heights add up to the height, so the frame fits any terminal from 80×24 up;
when the rows do not fit, the table shows a window around the selection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.layout import Layout
from rich.table import Table
from rich.text import Text

from boltlink.cli.cluster import _bytes, _duration, _http_figures, _p99

BLOCKS = "▁▂▃▄▅▆▇█"
KEYS_HELP = "↑/↓ select  l log  q quit"
RSS_NOTE = "memory is RSS: pages shared between workers are counted in each"
LOG_MIN_LINES = 3  # below this a log pane says nothing useful; the rows get the room instead
LABEL_WIDTH = 12
FIXED_LINES = 1 + 1 + 2 + 1 + 2  # header, footer, sparklines, aggregator, table header and totals
STATUS_STYLES = {"online": "green", "starting": "yellow", "stopping": "yellow", "errored": "bold red",
                 "stopped": "dim"}

# "2026-11-29T07:31:07+0000 INFO …" -> "07:31:07 INFO …": the date and zone cost a third of 80 columns.
_LOG_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ](\d{2}:\d{2}:\d{2})(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})? ")
# A worker's colour codes and stray control bytes must not drive our screen.
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class Frame:
    """Everything one screen shows; `selected` is an index into status["processes"]."""

    status: dict[str, Any]
    width: int
    height: int
    selected: int = 0
    log_lines: list[str] = field(default_factory=list)
    show_log: bool = True
    interactive: bool = True
    notice: str | None = None  # e.g. the master did not answer this time: shown in the footer


def render(frame: Frame) -> Layout:
    processes = frame.status.get("processes") or []
    selected = min(max(frame.selected, 0), len(processes) - 1) if processes else -1
    room = max(frame.height - FIXED_LINES, 1)
    wanted = max(len(processes), 1)
    if frame.show_log and room - wanted < LOG_MIN_LINES + 1:
        rows = min(wanted, max(room - LOG_MIN_LINES - 1, 1))
    else:
        rows = min(wanted, room)
    first = _window_start(len(processes), rows, selected)

    parts = [
        Layout(_header(frame.status, frame.width), name="header", size=1),
        Layout(_table(frame.status, processes[first:first + rows], selected - first), name="table", size=rows + 2),
        Layout(_sparklines(frame.status, processes[selected] if selected >= 0 else None, frame.width),
               name="sparklines", size=2),
        Layout(_aggregator(processes, frame.width), name="aggregator", size=1),
    ]
    log_room = room - rows
    if frame.show_log and log_room >= 2:
        name = processes[selected]["name"] if selected >= 0 else "-"
        parts.append(Layout(_log_pane(name, frame.log_lines, log_room - 1, frame.width), name="log", size=log_room))
    elif log_room > 0:  # an empty Group, as an empty Text is falsy and Layout would draw its placeholder
        parts.append(Layout(Group(), name="blank", size=log_room))
    parts.append(Layout(_footer(frame, first, rows, len(processes)), name="footer", size=1))
    layout = Layout(name="monit")
    layout.split_column(*parts)
    return layout


def natural_height(status: dict[str, Any], log_lines: list[str]) -> int:
    """The height at which every row and every one of log_lines shows with nothing left blank."""
    rows = max(len(status.get("processes") or []), 1)
    return FIXED_LINES + rows + 1 + max(len(log_lines), LOG_MIN_LINES)


def sparkline(values: list[float], width: int) -> str:
    """The last `width` values as block characters, scaled to their maximum, newest on the right."""
    if width <= 0:
        return ""
    recent = [max(float(v), 0.0) for v in values[-width:]]
    top = max(recent, default=0.0)
    if top <= 0:
        blocks = BLOCKS[0] * len(recent)
    else:
        blocks = "".join(BLOCKS[round(v / top * (len(BLOCKS) - 1))] for v in recent)
    return blocks.rjust(width)


def short_log_line(line: str) -> str:
    line = _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", line)).expandtabs(4)
    match = _LOG_TIMESTAMP.match(line)
    return f"{match.group(1)} {line[match.end():]}" if match else line


# -- the parts ------------------------------------------------------------------------


def _window_start(count: int, rows: int, selected: int) -> int:
    """The first row shown: the selection stays in view, as near the middle as the ends allow."""
    if count <= rows or selected < 0:
        return 0
    return min(max(selected - rows // 2, 0), count - rows)


def _line(text: Text, width: int) -> Text:
    text.no_wrap = True
    text.overflow = "ellipsis"
    text.truncate(width, overflow="ellipsis")
    return text


def _header(status: dict[str, Any], width: int) -> Text:
    master = status.get("master") or {}
    text = Text(f"boltlink {master.get('version', '?')} ({master.get('build', '?')})", style="bold")
    for piece in (f"master {master.get('pid', '-')} {master.get('phase', '?')}", master.get("address", ""),
                  f"up {_duration(master.get('uptime') or 0)}"):
        text.append(" · ", style="dim")
        text.append(str(piece))
    return _line(text, width)


def _table(status: dict[str, Any], rows: list[dict[str, Any]], selected: int) -> Table:
    # No box and one space between columns: twelve columns must fit in 80.
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, header_style="bold")
    for header, justify in (("", "left"), ("NAME", "left"), ("ID", "right"), ("PID", "right"),
                            ("STATUS", "left"), ("CPU", "right"), ("MEM", "right"), ("↺", "right"),
                            ("UPTIME", "right"), ("REQ/S", "right"), ("P99", "right"), ("ERR", "right")):
        table.add_column(header, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    for index, process in enumerate(rows):
        chosen = index == selected
        alive = bool(process.get("pid"))
        table.add_row(
            ">" if chosen else " ", process["name"],
            "-" if process.get("id") is None else str(process["id"]),
            str(process["pid"]) if alive else "-",
            Text(process["status"], style=STATUS_STYLES.get(process["status"], "")),
            f"{process.get('cpu', 0.0):.0f}%" if alive else "-",
            _bytes(process.get("memory") or 0), str(process.get("restarts", 0)),
            _duration(process.get("uptime") or 0) if alive else "-",
            *_http_figures(process),
            style="reverse" if chosen else None,
        )
    table.add_row(*_totals(status), style="bold")
    return table


def _totals(status: dict[str, Any]) -> list[str]:
    processes = status.get("processes") or []
    master = status.get("master") or {}
    cluster = status.get("cluster") or {}
    online = sum(1 for p in processes if p.get("status") == "online")
    return [
        " ", "cluster", "", str(master.get("pid", "-")), f"{online}/{len(processes)} up",
        f"{sum(p.get('cpu') or 0.0 for p in processes):.0f}%",
        _bytes(sum(p.get("memory") or 0 for p in processes)),
        str(sum(p.get("restarts") or 0 for p in processes)),
        _duration(master.get("uptime") or 0),
        f"{cluster.get('requests_per_second', 0.0):.1f}", _p99(cluster.get("p99_ms")),
        f"{100 * (cluster.get('error_rate') or 0.0):.1f}%",
    ]


def _sparklines(status: dict[str, Any], process: dict[str, Any] | None, width: int) -> Group:
    cluster = status.get("cluster") or {}
    lines = [("cluster", cluster.get("history") or [], cluster.get("requests_per_second", 0.0))]
    if process is not None and process.get("role") == "api":
        lines.append((process["name"], process.get("history") or [], process.get("requests_per_second", 0.0)))
    figures = [f"  {now:.1f} req/s, max {max(history, default=0.0):.1f}" for _, history, now in lines]
    spark_width = max(min(60, width - LABEL_WIDTH - max(len(f) for f in figures)), 8)
    texts = []
    for (label, history, _), figure in zip(lines, figures, strict=True):
        text = Text(label.ljust(LABEL_WIDTH)[:LABEL_WIDTH], style="bold")
        text.append(sparkline(history, spark_width), style="cyan")
        text.append(figure)
        texts.append(_line(text, width))
    if process is not None and process.get("role") != "api":
        texts.append(_line(Text(process["name"].ljust(LABEL_WIDTH)[:LABEL_WIDTH], style="bold")
                           + Text("serves no HTTP: no requests/s", style="dim"), width))
    return Group(*texts)


def _aggregator(processes: list[dict[str, Any]], width: int) -> Text:
    row = next((p for p in processes if p.get("role") == "aggregator"), None)
    text = Text("aggregator".ljust(LABEL_WIDTH), style="bold")
    if row is None:
        return _line(text + Text("not running", style="dim"), width)
    figures = row.get("figures") or {}
    lag = figures.get("lag")
    events = figures.get("events_per_second")
    text.append("lag ")
    text.append("-" if lag is None else f"{lag:.2f} s", style="bold yellow" if (lag or 0) > 5 else "bold")
    text.append(f"   {'-' if events is None else f'{events:.1f}'} events/s")
    for key, label in (("backlog", "backlog"), ("batch_size", "batch"), ("recorded", "recorded")):
        if figures.get(key) is not None:
            text.append(f"   {label} {figures[key]}")
    return _line(text, width)


def _log_pane(name: str, lines: list[str], room: int, width: int) -> Group:
    title = Text(f"── log: {name} ", style="bold")
    title.append("─" * max(width - title.cell_len, 0), style="dim")
    shown = [_line(Text(short_log_line(line)), width) for line in lines[-room:]] if room > 0 else []
    if not shown:
        shown = [Text("(no log lines yet)", style="dim")]
    return Group(_line(title, width), *shown)


def _footer(frame: Frame, first: int, rows: int, count: int) -> Text:
    text = Text(KEYS_HELP if frame.interactive else RSS_NOTE, style="dim")
    if rows < count:
        text.append(f"   rows {first + 1}-{first + rows} of {count}", style="dim")
    if frame.notice:
        text.append(f"   {frame.notice}", style="bold red")
    return _line(text, frame.width)
