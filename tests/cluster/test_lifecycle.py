"""A real cluster's life as an operator sees it: start, serve, survive its workers' deaths, stop.

Each test starts its own master (see cluster_harness.py: everything it started is
killed when it ends) and polls with a timeout instead of sleeping.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cluster_harness import Cluster, PortWatcher, holds, pid_alive, port_is_free, wait_for

from boltlink.cluster.cpus import usable_cpus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

MakeCluster = Callable[..., Cluster]


def nothing_left(cluster: Cluster, pids: set[int]) -> bool:
    return not any(pid_alive(pid) for pid in pids) and cluster.run_files.running_pid() is None


# -- start, status, stop ---------------------------------------------------------------


def test_start_cluster_returns_once_every_worker_is_online_and_serves_the_port(cluster: Cluster) -> None:
    result = cluster.start("-i", "2")

    table = result.stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "ID", "PID", "STATUS"]
    assert [line.split()[0] for line in table[1:] if line.startswith("api-")] == ["api-0", "api-1"]
    assert all(line.split()[3] == "online" for line in table[1:] if line.startswith("api-"))
    assert "cluster ready in" in result.stderr

    status = cluster.run("status", "--json")
    assert status.returncode == 0, status.stderr
    rows = [row for row in json.loads(status.stdout)["processes"] if row["role"] == "api"]
    assert [(row["name"], row["status"]) for row in rows] == [("api-0", "online"), ("api-1", "online")]
    assert all(pid_alive(row["pid"]) for row in rows)

    response = cluster.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_stop_ends_every_process_and_removes_the_run_files(cluster: Cluster) -> None:
    cluster.start("-i", "2")
    master = cluster.note_master()
    workers = cluster.api_pids()
    assert master and len(workers) == 2

    result = cluster.run("stop")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stopped"
    assert not pid_alive(master)
    assert not any(pid_alive(pid) for pid in workers)
    assert not cluster.run_files.pidfile.exists()
    assert not cluster.run_files.socket.exists()
    assert port_is_free(cluster.port)


def test_stop_when_nothing_runs_says_so_and_succeeds(cluster: Cluster) -> None:
    cluster.start("-i", "1")
    assert cluster.run("stop").returncode == 0

    again = cluster.run("stop")

    assert again.returncode == 0
    assert "not running" in again.stderr and "nothing to stop" in again.stderr


def test_foreground_logs_prefixed_lines_and_stops_on_sigterm(cluster: Cluster, tmp_path: Path) -> None:
    output = tmp_path / "foreground.out"
    master = cluster.start_foreground("-i", "1", output=output)
    wait_for(lambda: cluster.get("/health").status_code == 200, 30, what="/health on the foreground cluster")
    wait_for(lambda: cluster.all_online(1), 30, what="api-0 online")
    workers = cluster.api_pids()
    assert master.poll() is None, "--foreground must stay attached"
    wait_for(lambda: "api-0 | " in output.read_text(), 10, what="an 'api-0 | ' line on stdout")

    master.send_signal(signal.SIGTERM)

    assert master.wait(timeout=20) == 0, output.read_text()
    text = output.read_text()
    assert re.search(r"^api-0 \| .*listening on", text, re.MULTILINE), text
    assert re.search(r"^master \| .*master stopped", text, re.MULTILINE), text
    assert not any(pid_alive(pid) for pid in workers)
    assert not cluster.run_files.pidfile.exists()


def test_sigterm_while_the_foreground_cluster_starts_is_a_clean_stop(cluster: Cluster, tmp_path: Path) -> None:
    output = tmp_path / "foreground.out"
    master = cluster.start_foreground("-i", "2", output=output)
    # As soon as a worker has been spawned, before the cluster is ready (a pod deleted while it starts).
    wait_for(lambda: re.search(r"started api-\d \(pid", output.read_text()), 30, what="a worker spawned")
    assert "cluster ready" not in output.read_text()
    master.send_signal(signal.SIGTERM)
    assert master.wait(timeout=30) == 0, output.read_text()
    assert "could not start" not in output.read_text()
    assert not cluster.run_files.pidfile.exists()


# -- starting fails, or is refused -----------------------------------------------------------


def test_a_boot_failure_makes_start_cluster_fail_with_the_reason_and_leaves_nothing(cluster: Cluster) -> None:
    started = time.monotonic()
    result = cluster.start("-i", "2", check=False, env={"BOLTLINK_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"})
    took = time.monotonic() - started

    assert result.returncode != 0
    assert took < 10, f"start-cluster took {took:.1f} s to give up"
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("boltlink: ")
    assert "could not start" in result.stderr
    # The failing worker's own words, not only "exit 3": the user must see what to fix.
    assert "Cannot connect to PostgreSQL" in result.stderr, result.stderr
    assert cluster.run_files.running_pid() is None
    assert not cluster.run_files.pidfile.exists()
    assert not cluster.tagged_processes(), "a master or worker is still running"
    assert port_is_free(cluster.port)


def test_a_second_start_cluster_for_the_same_data_dir_is_refused(make_cluster: MakeCluster) -> None:
    first = make_cluster()
    first.start("-i", "1")
    master = first.note_master()
    workers = first.api_pids()
    second = make_cluster(data_dir=first.data_dir)  # same data dir, another port

    result = second.start("-i", "1", check=False)

    assert result.returncode != 0
    assert "already running" in result.stderr and str(master) in result.stderr
    assert first.note_master() == master
    assert first.api_pids() == workers
    assert first.get("/health").status_code == 200
    assert port_is_free(second.port)


def test_concurrent_start_clusters_leave_exactly_one_running(make_cluster: MakeCluster) -> None:
    """Both pass the CLI's own check at once: the run lock picks one, and the other says why."""
    first = make_cluster()
    second = make_cluster(data_dir=first.data_dir)
    results: dict[str, object] = {}

    def start(name: str, cluster: Cluster) -> None:
        results[name] = cluster.start("-i", "1", check=False)

    threads = [threading.Thread(target=start, args=(n, c)) for n, c in (("first", first), ("second", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    codes = sorted((r.returncode, n) for n, r in results.items())  # type: ignore[attr-defined]
    assert [code == 0 for code, _ in codes] == [True, False], results
    winner, loser = (first, second) if codes[0][1] == "first" else (second, first)
    refused = results[codes[1][1]]
    assert "already running" in refused.stderr, refused.stderr  # type: ignore[attr-defined]
    assert winner.get("/health").status_code == 200
    assert len(winner.api_workers()) == 1
    assert port_is_free(loser.port)


def test_a_stale_pidfile_and_socket_do_not_block_a_start(cluster: Cluster) -> None:
    run_dir = cluster.data_dir / "run"
    run_dir.mkdir(parents=True, mode=0o700)
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (run_dir / "boltlink.pid").write_text(f"{dead}\n")  # a crashed master's: no lock held on it
    with socket.socket(socket.AF_UNIX) as leftover:
        leftover.bind(str(run_dir / "boltlink.sock"))  # the file stays behind when the socket closes

    stale_status = cluster.run("status")
    assert stale_status.returncode != 0 and "not running" in stale_status.stderr

    cluster.start("-i", "1")

    assert cluster.note_master() not in (None, dead)
    assert cluster.all_online(1)
    assert cluster.get("/health").status_code == 200


def test_instances_max_follows_the_affinity_mask(make_cluster: MakeCluster) -> None:
    masked = make_cluster()
    masked.start("-i", "max", preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
    assert [row["name"] for row in masked.api_workers()] == ["api-0"]

    unmasked = make_cluster()
    unmasked.start("-i", "max")
    assert len(unmasked.api_workers()) == usable_cpus()  # len(os.sched_getaffinity(0)) without a cgroup quota


# -- keeping it alive ------------------------------------------------------------------------


def test_a_worker_killed_with_sigkill_is_respawned_while_the_port_keeps_serving(cluster: Cluster) -> None:
    cluster.start("-i", "2")
    victim = cluster.api_workers()[0]
    assert victim["restarts"] == 0

    with PortWatcher(cluster.url) as port:
        with port.quiet():  # no request of ours in flight on the victim
            os.kill(victim["pid"], signal.SIGKILL)
            killed_at = time.monotonic()

        def respawned() -> dict | None:
            row = next(r for r in cluster.api_workers() if r["name"] == victim["name"])
            return row if row["status"] == "online" and row["pid"] not in (None, victim["pid"]) else None

        row = wait_for(respawned, 15, what=f"{victim['name']} respawned")
        respawn_seconds = time.monotonic() - killed_at
        wait_for(lambda: port.successes > 20, 10)

    assert row["restarts"] == 1
    assert pid_alive(row["pid"])
    assert port.failures == [], f"{len(port.failures)} failed requests: {port.failures[:3]}"
    assert respawn_seconds < 10


def test_a_worker_that_keeps_dying_at_boot_is_marked_errored_and_the_others_serve(make_cluster: MakeCluster) -> None:
    """The database file becomes unusable after the start (here: a directory in its place), so
    api-0, once killed, can never boot again; api-1 keeps its open database and keeps serving."""
    cluster = make_cluster(min_uptime=5, max_restarts=3)
    cluster.start("-i", "2")
    database = cluster.data_dir / "boltlink.sqlite3"
    database.rename(database.with_name("moved-away.sqlite3"))
    database.mkdir()
    victim = cluster.api_workers()[0]

    os.kill(victim["pid"], signal.SIGKILL)

    def errored() -> dict | None:
        row = next(r for r in cluster.api_workers() if r["name"] == victim["name"])
        return row if row["status"] == "errored" else None

    row = wait_for(errored, 30, what=f"{victim['name']} errored")
    assert row["pid"] is None
    assert "crashed 3 times in a row" in row["reason"]
    assert "unable to open database file" in row["reason"], "status must say why it could not boot"
    # errored means left stopped: no more respawns (the last backoff was well under a second)
    holds(lambda: next(r for r in cluster.api_workers() if r["name"] == victim["name"])["pid"] is None, 1.5,
          what=f"{victim['name']} left stopped")
    shown = cluster.run("status")
    assert re.search(rf"^{victim['name']} .* errored ", shown.stdout, re.MULTILINE), shown.stdout
    assert "crashed 3 times" in shown.stderr
    others = [r for r in cluster.api_workers() if r["name"] != victim["name"]]
    assert [r["status"] for r in others] == ["online"]
    assert all(cluster.get("/health").status_code == 200 for _ in range(10))


def test_a_worker_over_max_memory_restart_is_replaced_while_the_port_keeps_serving(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(test_hooks=True, max_memory_restart="150MB")
    cluster.start("-i", "1")
    (before,) = cluster.api_workers()

    with PortWatcher(cluster.url) as port:
        assert cluster.post("/__test__/allocate?mb=200", timeout=30).status_code == 200

        def replaced() -> dict | None:
            rows = cluster.api_workers()
            row = next(r for r in rows if r["name"] == "api-0")
            done = row["status"] == "online" and row["pid"] != before["pid"] and not pid_alive(before["pid"])
            return row if done else None

        row = wait_for(replaced, 20, what="api-0 replaced after growing over max_memory_restart")
        wait_for(lambda: port.successes > 20, 10)

    assert row["restarts"] == 1
    assert row["memory"] < 150_000_000
    assert port.failures == [], f"{len(port.failures)} failed requests: {port.failures[:3]}"


def test_a_worker_whose_loop_hangs_is_killed_and_replaced(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(test_hooks=True, worker_timeout=2)
    cluster.start("-i", "1")
    (before,) = cluster.api_workers()

    with pytest.raises(httpx.ReadTimeout):
        cluster.post("/__test__/hang", timeout=0.5)  # it never answers: its event loop is blocked
    hung_at = time.monotonic()

    def replaced() -> dict | None:
        row = cluster.api_workers()[0]
        return row if row["status"] == "online" and row["pid"] != before["pid"] else None

    row = wait_for(replaced, 2 + 8, what="the hung worker replaced")
    assert time.monotonic() - hung_at < 2 + 8
    assert not pid_alive(before["pid"])
    assert row["restarts"] == 1
    assert cluster.get("/health").status_code == 200
    assert "no heartbeat for 2 s" in (cluster.data_dir / "logs" / "master.log").read_text()


def test_stop_lets_a_slow_request_in_flight_finish(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(test_hooks=True)
    cluster.start("-i", "1")
    sent = threading.Event()
    outcome: dict[str, object] = {}

    def trace(event: str, info: dict) -> None:
        if event == "http11.receive_response_headers.started":  # the request is all on the wire
            sent.set()

    def slow_request() -> None:
        try:
            with httpx.Client(timeout=20) as client:
                outcome["response"] = client.get(cluster.url + "/__test__/sleep?seconds=2", extensions={"trace": trace})
        except httpx.HTTPError as exc:
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    requester = threading.Thread(target=slow_request)
    requester.start()
    assert sent.wait(10)

    result = cluster.run("stop")
    stopped_at = time.monotonic()
    requester.join(timeout=20)

    assert result.returncode == 0, result.stderr
    assert "error" not in outcome, outcome
    response = outcome["response"]
    assert response.status_code == 200 and response.json() == {"slept": 2.0}  # type: ignore[attr-defined]
    assert outcome["at"] <= stopped_at  # type: ignore[operator]
    assert cluster.run_files.running_pid() is None


def test_killing_the_master_with_sigkill_ends_every_worker_and_frees_the_port(cluster: Cluster) -> None:
    cluster.start("-i", "2")
    master = cluster.note_master()
    workers = cluster.api_pids()
    assert master and len(workers) == 2

    os.kill(master, signal.SIGKILL)
    killed_at = time.monotonic()

    wait_for(lambda: not any(pid_alive(pid) for pid in workers), 5, interval=0.02, what="every worker to exit")
    gone_after = time.monotonic() - killed_at
    assert gone_after < 3.0, f"the last worker outlived its master by {gone_after:.1f} s"
    assert port_is_free(cluster.port)


def test_max_requests_recycles_workers_without_failing_a_request(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(max_requests=50)
    cluster.start("-i", "1")
    sent, failures = 0, []

    def recycled_twice() -> bool:
        nonlocal sent
        for _ in range(25):
            try:
                response = cluster.get("/health")
                if response.status_code != 200:
                    failures.append(f"HTTP {response.status_code}")
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            sent += 1
        return cluster.api_workers()[0]["restarts"] >= 2

    wait_for(recycled_twice, 30, interval=0, what="api-0 recycled twice")

    assert failures == [], f"{len(failures)} of {sent} requests failed: {failures[:3]}"
    assert sent >= 100  # each of the two workers served its 50 first
    wait_for(lambda: cluster.all_online(1), 15, what="the last recycled worker gone, its successor online")


# -- logs ---------------------------------------------------------------------------------------


def test_logs_shows_prefixed_lines_of_the_master_and_each_worker(cluster: Cluster) -> None:
    cluster.start("-i", "1")
    log_dir = cluster.data_dir / "logs"
    assert (log_dir / "master.log").is_file()
    assert (log_dir / "api-0.log").is_file()

    result = cluster.run("logs", "--lines", "5")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    master_lines = [line for line in lines if re.match(r"master\s+\| ", line)]
    worker_lines = [line for line in lines if re.match(r"api-0\s+\| ", line)]
    assert 1 <= len(master_lines) <= 5 and 1 <= len(worker_lines) <= 5, result.stdout
    assert any("started api-0" in line or "cluster ready" in line for line in master_lines), master_lines
    assert any("listening on" in line or "Running on" in line for line in worker_lines), worker_lines
