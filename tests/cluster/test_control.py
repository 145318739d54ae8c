"""Driving a running cluster: the control socket, scale, reload and restart, by command and by signal."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cluster_harness import Cluster, pid_alive, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

MakeCluster = Callable[..., Cluster]
NOBODY = 65534


def send_raw(cluster: Cluster, payload: bytes) -> dict | None:
    """One request on the control socket, written as is; the reply, or None when the master hung up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(cluster.run_files.socket_address())
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered (and closed) before reading it all: the reply is still there to read
        try:
            line = sock.makefile("rb").readline()
        except ConnectionResetError:
            return None
    return json.loads(line) if line else None


# -- the control socket -------------------------------------------------------------------


def test_the_control_socket_is_private_to_its_owner(cluster: Cluster) -> None:
    cluster.start("-i", "1")

    assert stat.S_IMODE(cluster.run_files.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(cluster.run_files.dir.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(cluster.run_files.socket.stat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_a_peer_with_another_uid_is_refused_even_when_it_can_reach_the_socket(
        public_tmp_dir: Path, make_cluster: MakeCluster) -> None:
    """The file modes already keep other users out; to test the SO_PEERCRED check behind them,
    the test opens the path to everyone (data dir outside pytest's 0700 tmp dir, run dir and
    socket chmod-ed open) and sends `stop` as nobody."""
    cluster = make_cluster(data_dir=public_tmp_dir / "data")
    cluster.start("-i", "1")
    master, workers = cluster.note_master(), cluster.api_pids()
    cluster.data_dir.chmod(0o755)
    cluster.run_files.dir.chmod(0o711)
    cluster.run_files.socket.chmod(0o666)

    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(str(cluster.run_files.socket))
                with contextlib.suppress(BrokenPipeError):  # refused unread: the reply still waits
                    sock.sendall(b'{"command": "stop"}\n')
                os.write(write_end, sock.makefile("rb").readline())
        except BaseException as exc:
            os.write(write_end, f"the child failed: {exc!r}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(child, 0)

    reply = json.loads(answer) if answer.startswith("{") else answer
    assert isinstance(reply, dict), reply
    assert reply["ok"] is False
    assert f"uid {NOBODY}" in reply["error"] and "refused" in reply["error"]
    assert cluster.note_master() == master
    assert cluster.api_pids() == workers
    assert cluster.get("/health").status_code == 200
    assert f"refused a control connection from uid {NOBODY}" in (cluster.data_dir / "logs" / "master.log").read_text()


def test_bad_requests_get_an_error_reply_and_never_hurt_the_master(cluster: Cluster) -> None:
    cluster.start("-i", "1")
    master, workers = cluster.note_master(), cluster.api_pids()
    # A client that connects and says nothing must not hold the others up.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(cluster.run_files.socket_address())

        cases = [
            (b"{not json\n", "malformed request"),
            (b'["status"]\n', "malformed request"),
            (b'{"args": {}}\n', "malformed request"),
            (b'{"command": 42}\n', "malformed request"),
            (b"\n", "malformed request"),
            (b'{"command": "explode"}\n', "unknown command 'explode'"),
            (b'{"command": "status", "args": {"verbose": true}}\n', "bad arguments for 'status'"),
            (b'{"command": "scale", "args": {"role": "api"}}\n', "bad arguments for 'scale'"),
            (b'{"command": "scale", "args": {"role": "api", "count": "lots"}}\n', "'lots' is not N, +N or -N"),
            (b'{"command": "scale", "args": {"role": "master", "count": "2"}}\n', "only api can be scaled"),
            (b'{"command": "scale", "args": {"role": "api", "count": "0"}}\n', "choose 1 to"),
        ]
        for payload, expected in cases:
            reply = send_raw(cluster, payload)
            assert reply is not None and reply["ok"] is False, (payload, reply)
            assert expected in reply["error"], (payload, reply)

        too_long = send_raw(cluster, b"x" * 200_000)
        assert too_long is None or (too_long["ok"] is False and "too long" in too_long["error"])

        ok = send_raw(cluster, b'{"command": "status"}\n')
        assert ok is not None and ok["ok"] is True

    assert cluster.note_master() == master
    assert cluster.api_pids() == workers
    assert cluster.run("status").returncode == 0
    assert cluster.get("/health").status_code == 200


def test_cli_commands_against_a_running_cluster_fail_readably(cluster: Cluster) -> None:
    cluster.start("-i", "1")

    result = cluster.run("scale", "api", "lots")

    assert result.returncode != 0
    assert result.stderr.startswith("boltlink: ") and "'lots' is not N, +N or -N" in result.stderr
    assert "Traceback" not in result.stderr
    assert [row["status"] for row in cluster.api_workers()] == ["online"]


# -- scale, reload, restart --------------------------------------------------------------------


def test_scale_sets_the_number_of_api_workers_at_runtime(cluster: Cluster) -> None:
    cluster.start("-i", "1")

    up = cluster.run("scale", "api", "+1")
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == "api: 1 -> 2 workers"
    assert [row["name"] for row in cluster.all_online(2) or []] == ["api-0", "api-1"]

    to_three = cluster.run("scale", "api", "3")
    assert to_three.returncode == 0, to_three.stderr
    rows = cluster.all_online(3)
    assert rows and [row["name"] for row in rows] == ["api-0", "api-1", "api-2"]
    removed = {row["pid"] for row in rows[1:]}

    down = cluster.run("scale", "api", "-2")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "api: 3 -> 1 workers"
    assert [row["name"] for row in cluster.all_online(1) or []] == ["api-0"]
    assert not any(pid_alive(pid) for pid in removed)
    assert cluster.get("/health").status_code == 200


def test_sigttin_and_sigttou_scale_api_by_one(cluster: Cluster) -> None:
    cluster.start("-i", "1")
    master = cluster.note_master()
    assert master

    os.kill(master, signal.SIGTTIN)
    rows = wait_for(lambda: cluster.all_online(2), 20, what="a second API worker after SIGTTIN")
    added = rows[1]["pid"]

    os.kill(master, signal.SIGTTOU)
    wait_for(lambda: cluster.all_online(1) and not pid_alive(added), 20, what="back to one worker after SIGTTOU")
    assert cluster.note_master() == master


def test_sighup_reloads_every_worker(cluster: Cluster) -> None:
    cluster.start("-i", "2")
    master = cluster.note_master()
    before = cluster.api_pids()
    assert master and len(before) == 2

    os.kill(master, signal.SIGHUP)

    def reloaded() -> list[dict] | None:
        rows = cluster.all_online(2)
        return rows if rows and not {row["pid"] for row in rows} & before else None

    rows = wait_for(reloaded, 30, what="both API workers replaced after SIGHUP")
    assert [row["restarts"] for row in rows] == [1, 1]
    wait_for(lambda: not any(pid_alive(pid) for pid in before), 15, what="the old workers to exit")
    assert cluster.note_master() == master


def test_restart_starts_every_worker_afresh(cluster: Cluster) -> None:
    cluster.start("-i", "2")
    before = cluster.api_pids()

    result = cluster.run("restart")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("restarted ")
    rows = cluster.all_online(2)
    assert rows, cluster.api_workers()
    assert not {row["pid"] for row in rows} & before
    assert not any(pid_alive(pid) for pid in before)
    assert cluster.get("/health").status_code == 200
