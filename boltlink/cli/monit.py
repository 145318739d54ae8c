"""`boltlink monit`: the cluster live in the terminal, like `pm2 monit`, with requests/s and latency.

The screen is drawn by boltlink.cli.monit_view from the master's `status`
reply; this module owns the terminal. stdin goes into cbreak mode (keys
arrive one by one, unechoed, and Ctrl-C still raises KeyboardInterrupt)
and rich's Live draws on the alternate screen. One loop does everything: it
asks the master for status every REFRESH_SECONDS and, in between, waits in
select() on stdin and on a wakeup pipe that SIGWINCH writes to, so a key
or a resize redraws at once and never delays the next refresh. However the
loop ends (q, Ctrl-C, SIGTERM, the cluster stopping, a bug), the context
managers unwind in order: Live leaves the alternate screen and shows the
cursor, then the saved termios settings come back.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import termios
import time
import tty
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, TextIO

import click

from boltlink.cli.cluster import _request
from boltlink.cli.context import CliContext, pass_cli
from boltlink.cli.output import out
from boltlink.cluster.logs import tail
from boltlink.errors import CommandFailed, NotRunning

if TYPE_CHECKING:
    from rich.layout import Layout

# rich and the view (which draws with it) are imported when monit draws, not when the CLI loads: every
# other command, start-cluster included, starts ~0.1 s sooner without them.

REFRESH_SECONDS = 0.5  # the master's figures change once a second; half that keeps the screen within a second
STATUS_TIMEOUT = 5.0  # a master this slow is shown as not answering, and asked again

ESC = 0x1B
_SINGLE_KEYS = {b"k": "up", b"j": "down", b"q": "quit", b"Q": "quit", b"l": "log", b"L": "log"}
_ARROWS = {ord("A"): "up", ord("B"): "down"}


@click.command()
@click.option("--once", is_flag=True, help="Print one frame and exit (what happens anyway without a terminal).")
@pass_cli
def monit(cli: CliContext, once: bool) -> None:
    """A live dashboard: every process's cpu, memory, requests/s, p99 and errors, and its log.

    Keys: up/down (or k/j) select a process, l shows or hides its log, q quits.
    """
    status = _request(cli, "status", timeout=STATUS_TIMEOUT)  # no cluster: NotRunning, one line, exit 3
    log_dir = cli.config().log_path
    if once or not (_is_terminal(sys.stdin) and _is_terminal(sys.stdout)):
        print_frame(status, log_dir)
        return
    try:
        Dashboard(cli, log_dir, status).run()
    except KeyboardInterrupt:  # Ctrl-C is a way to leave monit, not an error
        return


def print_frame(status: dict[str, Any], log_dir: Path) -> None:
    """One frame as plain lines (colour only on a terminal), as tall as it needs up to the terminal's height."""
    from rich.console import Console

    from boltlink.cli.monit_view import Frame, natural_height, render

    width, height = shutil.get_terminal_size((80, 24))
    log_lines = _log_tail(log_dir, status, 0, height)
    height = min(height, natural_height(status, log_lines))
    console = Console(width=width, height=height)
    with console.capture() as capture:
        console.print(render(Frame(status, width, height, log_lines=log_lines, interactive=False)))
    out("\n".join(line.rstrip() for line in capture.get().rstrip("\n").split("\n")))


class Dashboard:
    """The live screen's state: the latest status, the selected process (by name), the log pane on or off."""

    def __init__(self, cli: CliContext, log_dir: Path, status: dict[str, Any]) -> None:
        self.cli, self.log_dir, self.status = cli, log_dir, status
        self.selected = 0
        self.selected_name: str | None = None
        self.show_log = True
        self.notice: str | None = None
        self._follow_selection()

    def run(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console()
        with Keyboard() as keyboard, Live(console=console, screen=True, auto_refresh=False) as live:
            next_poll = time.monotonic() + REFRESH_SECONDS  # the status from the command is fresh
            redraw = True
            while True:
                if time.monotonic() >= next_poll:
                    self.poll()
                    # On a fixed grid, so a slow answer does not stretch the interval for good.
                    next_poll = max(next_poll + REFRESH_SECONDS, time.monotonic())
                    redraw = True
                if redraw:
                    live.update(self.frame(console.size.width, console.size.height), refresh=True)
                keys = keyboard.read(timeout=max(next_poll - time.monotonic(), 0.0))
                if "quit" in keys:
                    return
                changed = [self.press(key) for key in keys]  # every key applied, not just up to the first change
                redraw = keyboard.resized() or any(changed)

    def poll(self) -> None:
        try:
            self.status = _request(self.cli, "status", timeout=STATUS_TIMEOUT)
            self.notice = None
        except NotRunning:
            raise NotRunning("the cluster stopped while monit was running") from None
        except CommandFailed as exc:  # busy or mid-stop: keep the last figures, say so, ask again
            self.notice = f"master: {exc.detail}"
        self._follow_selection()

    def press(self, key: str) -> bool:
        """Apply one key; True when the screen changes."""
        count = len(self.status.get("processes") or [])
        if key == "log":
            self.show_log = not self.show_log
            return True
        if key in ("up", "down") and count:
            moved = min(max(self.selected + (1 if key == "down" else -1), 0), count - 1)
            if moved != self.selected:
                self.selected = moved
                self.selected_name = self.status["processes"][moved]["name"]
                return True
        return False

    def frame(self, width: int, height: int) -> Layout:
        from boltlink.cli.monit_view import Frame, render

        log_lines = _log_tail(self.log_dir, self.status, self.selected, height) if self.show_log else []
        return render(Frame(self.status, width, height, selected=self.selected, log_lines=log_lines,
                            show_log=self.show_log, notice=self.notice))

    def _follow_selection(self) -> None:
        """Keep the same process selected when rows come and go (scale, reload), else the nearest row."""
        names = [p["name"] for p in self.status.get("processes") or []]
        if not names:
            self.selected, self.selected_name = 0, None
            return
        if self.selected_name in names:
            self.selected = names.index(self.selected_name)
        self.selected = min(self.selected, len(names) - 1)
        self.selected_name = names[self.selected]


class Keyboard:
    """stdin in cbreak mode and SIGWINCH turned into a readable pipe, for one select(); all undone on exit."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.fd = (stream or sys.stdin).fileno()
        self._pending = b""
        self._resized = False

    def __enter__(self) -> Keyboard:
        self._saved = termios.tcgetattr(self.fd)
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        # Python's C-level handler writes each signal's number to this fd; select() then wakes at once.
        self._old_wakeup = signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        self._old_handlers = {
            signal.SIGWINCH: signal.signal(signal.SIGWINCH, _note_signal),
            signal.SIGTERM: signal.signal(signal.SIGTERM, _exit_on_signal),
        }
        tty.setcbreak(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        finally:
            for signum, handler in self._old_handlers.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(self._old_wakeup)
            os.close(self._wake_read)
            os.close(self._wake_write)

    def read(self, timeout: float) -> list[str]:
        """The keys pressed within timeout seconds (none when it passes, or a signal came first)."""
        try:
            ready, _, _ = select.select([self.fd, self._wake_read], [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries select; kept for odd platforms
            return []
        if self._wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                signals = os.read(self._wake_read, 512)
                self._resized = self._resized or signal.SIGWINCH in signals
        if self.fd not in ready:
            return []
        data = os.read(self.fd, 1024)
        if not data:  # stdin closed (the terminal went away): nobody is watching any more
            return ["quit"]
        keys, self._pending = decode_keys(self._pending + data)
        return keys

    def resized(self) -> bool:
        resized, self._resized = self._resized, False
        return resized


def decode_keys(data: bytes) -> tuple[list[str], bytes]:
    """The keys in a burst of terminal input, and an unfinished escape sequence to prepend to the next burst.

    Arrows come as ESC [ A / ESC [ B, or ESC O A / ESC O B in application
    cursor mode, with modifiers as ESC [ 1 ; 5 A. Other escape sequences
    (function keys, page up) are skipped whole, so their letters are not
    taken for keys.
    """
    keys: list[str] = []
    i = 0
    while i < len(data):
        if data[i] != ESC:
            key = _SINGLE_KEYS.get(data[i:i + 1])
            if key:
                keys.append(key)
            i += 1
            continue
        if i + 1 >= len(data):
            return keys, data[i:]
        if data[i + 1] not in b"[O":  # ESC then a plain key: Alt+key; take the key itself
            i += 1
            continue
        end = i + 2
        while end < len(data) and 0x20 <= data[end] <= 0x3F:  # parameter and intermediate bytes
            end += 1
        if end >= len(data):
            return keys, data[i:]
        if data[end] in _ARROWS:
            keys.append(_ARROWS[data[end]])
        i = end + 1
    return keys, b""


def _log_tail(log_dir: Path, status: dict[str, Any], selected: int, count: int) -> list[str]:
    processes = status.get("processes") or []
    if not processes or count <= 0:
        return []
    name = processes[min(selected, len(processes) - 1)]["name"]
    return [line for _, line in tail(log_dir, [name], count)]


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # a closed stream
        return False


def _note_signal(signum: int, frame: FrameType | None) -> None:
    """Nothing to do here: the wakeup fd already told the loop (a Python handler is what makes it write)."""


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    # Raising unwinds the context managers, which put the terminal back; a plain SIGTERM would leave it raw.
    raise SystemExit(128 + signum)
