"""`boltlink monit`: the frame it draws, `--once` against a real cluster, and the live screen in a real terminal.

The real clusters are those of tests/cluster/cluster_harness.py (tagged
processes, every one killed when the test ends), loaded by path as
tests/pipeline/pipeline_support.py does: `from conftest import` would pick
whichever conftest pytest imported last. The live screen runs in a tmux pane
on a private tmux server, which the test kills too.
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from harness_import import cluster_harness
from rich.cells import cell_len
from rich.console import Console

from boltlink.cli.monit import decode_keys
from boltlink.cli.monit_view import BLOCKS, Frame, render, short_log_line, sparkline

ROOT = Path(__file__).resolve().parents[2]


harness = cluster_harness()
make_cluster = harness.make_cluster  # pytest finds fixtures by name in the test module
wait_for = harness.wait_for
Run = Callable[..., Result]
ROW = re.compile(r"^(?P<mark>[> ]) (?P<name>\S+)\s+(?P<id>\d+)\s+(?P<pid>\d+|-)\s+(?P<status>\w+)\s")
HTTP = re.compile(r"\s(?P<rps>\d+\.\d|-)\s+(?P<p99>\d+\.\d ms|-)\s+(?P<errors>\d+\.\d%|-)$")


# -- the frame, from a status reply -------------------------------------------------------------


def api_row(index: int, rps: float, p99: float | None, errors: float) -> dict[str, Any]:
    return {
        "name": f"api-{index}", "id": index, "role": "api", "pid": 4100 + index, "status": "online",
        "cpu": 12.5, "memory": 61_200_000, "restarts": index, "uptime": 3725.0,
        "requests_per_second": rps, "requests": 90_000, "p99_ms": p99, "error_rate": errors,
        "history": [float(i % 17) for i in range(60)], "figures": {}, "version": "0.1.0", "build": "dev",
        "reason": None,
    }


def other_row(name: str, index: int, figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name, "id": index, "role": name, "pid": 4200 + index, "status": "online", "cpu": 1.0,
        "memory": 44_000_000, "restarts": 0, "uptime": 3725.0, "requests_per_second": 0.0, "requests": 0,
        "p99_ms": None, "error_rate": 0.0, "history": [0.0] * 60, "figures": figures, "version": "0.1.0",
        "build": "dev", "reason": None,
    }


def make_status(api_workers: int = 2) -> dict[str, Any]:
    rows = [api_row(i, 250.0 + i, 12.34 + i, 0.015) for i in range(api_workers)]
    rows.append(other_row("aggregator", api_workers,
                          {"batch_size": 500, "lag": 0.42, "events_per_second": 123.4, "backlog": 7, "recorded": 9}))
    rows.append(other_row("analytics", api_workers + 1, {}))
    return {
        "master": {"pid": 4000, "version": "0.1.0", "build": "dev", "phase": "running", "uptime": 3730.0,
                   "address": "http://127.0.0.1:5000", "data_dir": "/srv/boltlink"},
        "processes": rows,
        "cluster": {"requests_per_second": 501.0, "in_flight": 3, "p99_ms": 13.2, "error_rate": 0.015,
                    "history": [float(i) for i in range(60)]},
    }


LOG = [f"2026-11-29T07:31:{s:02d}+0000 INFO api-0[4100] boltlink.api: line {s}" for s in range(30)]


def screen(frame: Frame) -> list[str]:
    """The frame as the terminal would show it, one string per line, trailing blanks dropped."""
    console = Console(width=frame.width, height=frame.height, file=io.StringIO(), record=True)
    console.print(render(frame))
    return [line.rstrip() for line in console.export_text().rstrip("\n").split("\n")]


def rows_of(lines: list[str]) -> dict[str, str]:
    return {m["name"]: line for line in lines if (m := ROW.match(line))}


def http_columns(row: str) -> tuple[str, str, str]:
    """REQ/S, P99 and ERR of a process row."""
    match = HTTP.search(row)
    assert match, row
    return match["rps"], match["p99"], match["errors"]


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40)])
def test_the_frame_fits_the_terminal_and_shows_every_process(width: int, height: int) -> None:
    status = make_status()

    lines = screen(Frame(status, width, height, log_lines=LOG))

    assert len(lines) <= height
    assert all(cell_len(line) <= width for line in lines), [line for line in lines if cell_len(line) > width]
    rows = rows_of(lines)
    assert list(rows) == ["api-0", "api-1", "aggregator", "analytics"]
    assert rows["api-0"].startswith("> api-0 ")  # the first row is selected
    assert "4100" in rows["api-0"] and "online" in rows["api-0"] and "1h 2m" in rows["api-0"]
    assert "250.0" in rows["api-0"] and "12.3 ms" in rows["api-0"] and "1.5%" in rows["api-0"]
    totals = next(line for line in lines if line.lstrip().startswith("cluster") and "4/4 up" in line)
    assert "501.0" in totals and "13.2 ms" in totals
    assert re.search(rf"^cluster\s+[{BLOCKS} ]*[{BLOCKS}]{{8,}}", "\n".join(lines), re.M), "no cluster sparkline"
    assert any(line.startswith("api-0 ") and any(b in line for b in BLOCKS) for line in lines), "no api-0 sparkline"
    assert any("lag 0.42 s" in line and "123.4 events/s" in line for line in lines)
    assert any(line.startswith("── log: api-0") for line in lines)
    assert lines[-1].startswith("↑/↓ select")


@pytest.mark.parametrize("name", ["aggregator", "analytics"])
def test_roles_without_http_show_a_dash_for_requests_latency_and_errors(name: str) -> None:
    lines = screen(Frame(make_status(), 80, 24))

    assert http_columns(rows_of(lines)[name]) == ("-", "-", "-")


def test_a_bigger_terminal_gets_a_longer_history_and_more_log() -> None:
    small = screen(Frame(make_status(), 80, 24, log_lines=LOG))
    big = screen(Frame(make_status(), 120, 40, log_lines=LOG))

    def spark(lines: list[str]) -> int:
        cluster_line = next(line for line in lines if line.startswith("cluster "))
        return sum(cluster_line.count(b) for b in BLOCKS)

    def log_lines(lines: list[str]) -> int:
        return sum(1 for line in lines if " INFO api-0[4100]" in line)

    assert spark(small) < spark(big) == 60  # the whole minute fits at 120 columns
    assert 0 < log_lines(small) < log_lines(big)
    assert any(line.startswith("07:31:29 INFO") for line in small)  # the newest line, its date dropped


def test_the_selection_moves_the_marker_the_sparkline_and_the_log() -> None:
    lines = screen(Frame(make_status(), 80, 24, selected=2, log_lines=["aggregating"]))

    marked = [line for line in lines if line.startswith(">")]
    assert len(marked) == 1 and marked[0].startswith("> aggregator ")
    assert any(line.startswith("aggregator") and "serves no HTTP" in line for line in lines)
    assert any(line.startswith("── log: aggregator") for line in lines)


def test_without_the_log_pane_every_row_still_shows() -> None:
    lines = screen(Frame(make_status(), 80, 24, log_lines=LOG, show_log=False))

    assert not any("log:" in line or "line 29" in line for line in lines)
    assert len(rows_of(lines)) == 4
    assert len(lines) <= 24


def test_more_processes_than_rows_show_a_window_around_the_selection() -> None:
    lines = screen(Frame(make_status(api_workers=20), 80, 24, selected=15, log_lines=LOG))

    rows = rows_of(lines)
    assert len(lines) <= 24 and 0 < len(rows) < 22
    assert rows["api-15"].startswith("> api-15 ")
    assert re.search(r"rows \d+-\d+ of 22", lines[-1])


def test_a_notice_and_the_once_footer() -> None:
    lines = screen(Frame(make_status(), 80, 24, interactive=False, notice="master: busy"))

    assert "memory is RSS" in lines[-1] and "master: busy" in lines[-1]


def test_sparkline_scales_to_its_maximum_newest_on_the_right() -> None:
    assert sparkline([0, 5, 10], 5) == "  ▁▅█"
    assert sparkline([3.0] * 100, 4) == "████"
    assert sparkline([0.0, 0.0], 3) == " ▁▁"  # idle: a flat line, not nothing


def test_log_lines_lose_their_date_and_any_control_characters() -> None:
    assert short_log_line("2026-11-29T07:31:07+0000 INFO api-0[1] x: hi") == "07:31:07 INFO api-0[1] x: hi"
    assert short_log_line("\x1b[31mred\x1b[0m\tend\x07") == "red end"
    assert short_log_line("Traceback (most recent call last):") == "Traceback (most recent call last):"


@pytest.mark.parametrize(("data", "keys", "rest"), [
    (b"\x1b[A\x1b[B", ["up", "down"], b""),
    (b"\x1bOA\x1bOB", ["up", "down"], b""),  # application cursor mode
    (b"kjlq", ["up", "down", "log", "quit"], b""),
    (b"\x1b[1;5B", ["down"], b""),  # Ctrl+Down
    (b"\x1b[5~\x1b[15~x", [], b""),  # page up, F5, an unbound key: nothing
    (b"j\x1b[", ["down"], b"\x1b["),  # the rest of the arrow comes with the next read
    (b"\x1b", [], b"\x1b"),
])
def test_decode_keys(data: bytes, keys: list[str], rest: bytes) -> None:
    assert decode_keys(data) == (keys, rest)


def test_an_escape_sequence_split_across_reads_is_one_key() -> None:
    keys, rest = decode_keys(b"\x1b")
    more, rest = decode_keys(rest + b"[B")

    assert (keys, more, rest) == ([], ["down"], b"")


# -- no cluster -------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["--once"]])
def test_with_no_cluster_it_says_so_in_one_line(run: Run, data_dir: Path, args: list[str]) -> None:
    result = run("monit", *args)

    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == f"boltlink: boltlink is not running for {data_dir}"
    assert "Traceback" not in result.output


# -- a real cluster -----------------------------------------------------------------------------------


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status


@pytest.mark.slow
def test_once_lists_every_process_with_live_numbers(make_cluster: Callable[..., Any]) -> None:
    cluster = make_cluster()
    cluster.start("-i", "2")
    processes = wait_for(lambda: cluster.all_online(2) and cluster.processes(), 20, what="every process online")

    def busy_frame() -> str | None:
        for _ in range(20):
            assert get(cluster.url + "/health") == 200
        result = cluster.run("monit", "--once")
        assert result.returncode == 0, result.stderr
        rows = rows_of(result.stdout.splitlines())
        busy = all(name in rows and http_columns(rows[name])[0] not in ("-", "0.0") for name in ("api-0", "api-1"))
        return result.stdout if busy else None

    output = wait_for(busy_frame, 30, interval=0.2, what="monit --once to show requests/s on every api worker")

    rows = rows_of(output.splitlines())
    assert set(rows) == {p["name"] for p in processes}
    for process in processes:
        row = ROW.match(rows[process["name"]])
        assert row and row["pid"] == str(process["pid"]) and row["status"] == "online"
        rps, p99, errors = http_columns(rows[process["name"]])
        if process["role"] == "api":
            assert float(rps) > 0 and p99.endswith(" ms") and errors == "0.0%"
        else:
            assert (rps, p99, errors) == ("-", "-", "-")
    assert "\x1b" not in output  # not a terminal: no colour, no screen switching
    assert re.search(rf"^cluster\s+[{BLOCKS} ]+\s+\d", output, re.M)


@pytest.mark.slow
def test_without_a_terminal_monit_prints_one_frame(make_cluster: Callable[..., Any]) -> None:
    cluster = make_cluster()
    cluster.start("-i", "1")

    result = cluster.run("monit", timeout=30)  # stdin and stdout are no terminal here

    assert result.returncode == 0, result.stderr
    assert {"api-0", "aggregator", "analytics"} <= set(rows_of(result.stdout.splitlines()))
    assert "\x1b" not in result.stdout


# -- the live screen, in a real terminal -------------------------------------------------------------------


class Pane:
    """A tmux pane of 80×24 on a private tmux server, running one command then saying how it exited."""

    def __init__(self, socket: Path, env: dict[str, str]) -> None:
        self.socket, self.env = socket, env

    def tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-S", str(self.socket), "-f", "/dev/null", *args], capture_output=True,
                                text=True, timeout=10, env=self.env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start(self, command: list[str]) -> None:
        # The shell compares the tty settings from before and after, and stays so the pane can be read.
        # It traps SIGINT (a handler, not an ignore, so the command still gets the default) to outlive a Ctrl-C.
        script = (f"trap : INT; before=$(stty -g); {shlex.join(command)}; code=$?; "
                  '[ "$before" = "$(stty -g)" ] && echo "tty restored"; echo "monit exited $code"; exec sleep 600')
        self.tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "monit", "sh", "-c", script)

    def text(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "monit")

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def flag(self, name: str) -> str:
        return self.tmux("display-message", "-p", "-t", "monit", f"#{{{name}}}").strip()

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "monit", *keys)

    def wait(self, predicate: Callable[[list[str]], object], what: str) -> list[str]:
        """The pane's lines once predicate(lines) holds; on a timeout, the failure shows the pane as it last was."""
        last: list[str] = []

        def check() -> list[str] | None:
            last[:] = self.lines()
            return list(last) if predicate(last) else None

        try:
            return wait_for(check, 20, interval=0.1, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe pane shows:\n" + "\n".join(last)) from None

    def wait_exit(self) -> str:
        return self.wait(lambda lines: any(line.startswith("monit exited") for line in lines), "monit to exit")


@pytest.fixture
def monit_pane(make_cluster: Callable[..., Any]) -> Iterator[tuple[Pane, Any]]:
    """A running cluster with two api workers, and a pane to run `monit` against it; the tmux server dies after."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux): the live screen needs a real terminal")
    cluster = make_cluster()
    cluster.start("-i", "2")
    home = Path(tempfile.mkdtemp(prefix="monit-", dir="/tmp"))  # a socket path must stay short
    pane = Pane(home / "tmux.sock", cluster.env)  # the cluster's tag: the harness kills leftovers too
    try:
        yield pane, cluster
    finally:
        subprocess.run(["tmux", "-S", str(pane.socket), "kill-server"], capture_output=True, timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def marked(lines: list[str]) -> list[str]:
    return [m["name"] for line in lines if (m := ROW.match(line)) and m["mark"] == ">"]


def left_cleanly(pane: Pane, lines: list[str], code: int) -> None:
    text = "\n".join(lines)
    assert f"monit exited {code}" in text
    assert "tty restored" in text
    assert "REQ/S" not in text and "── log:" not in text  # the dashboard went with the alternate screen
    assert pane.flag("alternate_on") == "0"
    assert pane.flag("cursor_flag") == "1"


@pytest.mark.slow
def test_live_screen_keys_select_toggle_the_log_and_quit(monit_pane: tuple[Pane, Any]) -> None:
    pane, cluster = monit_pane
    names = [p["name"] for p in cluster.processes()]

    pane.start(cluster.command("monit"))
    lines = pane.wait(lambda lines: list(rows_of(lines)) == names, "every process row")
    assert pane.flag("alternate_on") == "1" and pane.flag("cursor_flag") == "0"
    assert marked(lines) == ["api-0"] and all(len(line) <= 80 for line in lines) and len(lines) <= 24
    assert any(line.startswith("── log: api-0") for line in lines)

    pane.keys("Down")
    pane.wait(lambda lines: marked(lines) == ["api-1"] and any(line.startswith("── log: api-1") for line in lines),
              "Down to select api-1 and show its log")
    pane.keys("j")
    pane.wait(lambda lines: marked(lines) == ["aggregator"], "j to select the aggregator")
    pane.keys("Up")
    pane.wait(lambda lines: marked(lines) == ["api-1"], "Up to go back to api-1")

    pane.keys("l")
    pane.wait(lambda lines: rows_of(lines) and not any("── log:" in line for line in lines), "l to hide the log")
    pane.keys("l")
    pane.wait(lambda lines: any(line.startswith("── log: api-1") for line in lines), "l to show it again")

    pane.tmux("resize-window", "-t", "monit", "-x", "100", "-y", "30")
    pane.wait(lambda lines: any(line.startswith("── log:") and len(line) == 100 for line in lines),
              "the frame to fill 100 columns after the resize")

    pane.keys("q")
    left_cleanly(pane, pane.wait_exit(), 0)


@pytest.mark.slow
def test_live_screen_leaves_cleanly_on_ctrl_c(monit_pane: tuple[Pane, Any]) -> None:
    pane, cluster = monit_pane
    pane.start(cluster.command("monit"))
    pane.wait(lambda lines: "api-0" in rows_of(lines), "the dashboard")

    pane.keys("C-c")

    left_cleanly(pane, pane.wait_exit(), 0)


@pytest.mark.slow
def test_live_screen_says_when_the_cluster_stops_and_exits_non_zero(monit_pane: tuple[Pane, Any]) -> None:
    pane, cluster = monit_pane
    pane.start(cluster.command("monit"))
    pane.wait(lambda lines: "api-0" in rows_of(lines), "the dashboard")

    assert cluster.run("stop").returncode == 0

    lines = pane.wait_exit()
    left_cleanly(pane, lines, 3)
    assert "boltlink: the cluster stopped while monit was running" in lines


def test_the_cli_loads_without_rich_so_other_commands_start_sooner() -> None:
    code = "import sys, boltlink.cli; sys.exit('rich' in sys.modules or 'boltlink.cli.monit_view' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
