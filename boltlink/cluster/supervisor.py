"""The master's one loop: keep every slot's worker alive, and carry out commands.

Signals and control-socket commands go through the same dispatch()
(SIGTERM/SIGINT = stop, SIGHUP = reload, SIGTTIN/SIGTTOU = scale api +1/-1);
signal handlers only schedule the command, as gunicorn's arbiter does.
Reload, restart and scale take one lock so they never interleave; stop does
not wait for it, so it can interrupt them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from boltlink import __version__, build_id
from boltlink.cluster.process import WorkerProcess, boltlink_command, describe_exit
from boltlink.cluster.roles import ROLES, Role, role_named
from boltlink.cluster.telemetry import ClusterTelemetry
from boltlink.config import Config
from boltlink.errors import BoltlinkError, ClusterError, InvalidInput
from boltlink.workers.balance import SlotAllocator
from boltlink.workers.channel import BOOT_FAILURE_EXIT

log = logging.getLogger("boltlink.master")

BACKOFF_START, BACKOFF_FACTOR, BACKOFF_MAX = 0.1, 1.5, 15.0
BACKOFF_RESET_UPTIME = 30.0  # a worker that lived this long starts its backoff afresh
SAMPLE_SECONDS = 1.0  # cpu, memory (max_memory_restart) and heartbeat checks
MAX_API_INSTANCES = 256


@dataclass
class Slot:
    """A place for one worker (api-0, api-1, ...): survives the processes that fill it."""

    id: int
    name: str
    role: Role
    process: WorkerProcess | None = None
    restarts: int = 0
    quick_deaths: int = 0
    backoff_step: int = 0
    errored: str | None = None
    replacing: bool = False


class Supervisor:
    def __init__(self, config: Config, listen_sock: socket.socket, api_instances: int,
                 on_line: Callable[[str, str], None], balance: SlotAllocator) -> None:
        self.config = config
        self.listen_sock = listen_sock
        self.on_line = on_line
        self.command = boltlink_command()
        self.hello = {"type": "hello", "config": config.model_dump(mode="json", exclude_unset=True)}
        self.balance = balance  # slots on the connection board the API workers balance by
        self.slots: dict[str, Slot] = {}
        self.live: set[WorkerProcess] = set()  # every worker process not yet reaped
        self.operation = asyncio.Lock()
        self.phase = "starting"  # starting, running, stopping
        self.done = asyncio.Event()
        self.started_wall = time.time()
        self.telemetry = ClusterTelemetry()
        self._next_id = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        for role in ROLES:
            if role.name not in config.roles:  # e.g. Kubernetes runs the aggregator as its own Deployment
                continue
            for _ in range(role.instances(api_instances)):
                self._add_slot(role)

    # -- lifecycle -----------------------------------------------------------------

    async def run(self) -> None:
        """Start every worker, then supervise until stopped. Raises ClusterError if the start fails."""
        loop = asyncio.get_running_loop()
        for signum, command, args in (
            (signal.SIGTERM, "stop", {}), (signal.SIGINT, "stop", {}), (signal.SIGHUP, "reload", {}),
            (signal.SIGTTIN, "scale", {"role": "api", "count": "+1"}),
            (signal.SIGTTOU, "scale", {"role": "api", "count": "-1"}),
        ):
            loop.add_signal_handler(signum, lambda s=signum, c=command, a=args: self._background(
                self._signalled(s, c, a)))
        failure = await self._start_all()
        if self.phase == "stopping":  # told to stop while starting (a pod deleted at once): not a failure
            await self.done.wait()
            return
        if failure:
            await self.stop()
            raise ClusterError(failure)
        self.phase = "running"
        log.info("cluster ready: %d processes on %s", len(self.slots), self._address())
        while not self.done.is_set():
            self._check_health()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.done.wait(), SAMPLE_SECONDS)

    async def _start_all(self) -> str | None:
        """Spawn every slot and wait for all to be ready; the reason when one could not start."""
        processes = await asyncio.gather(*(self._spawn(slot) for slot in self.slots.values()))
        waiting = {asyncio.ensure_future(p.wait_ready(self.config.listen_timeout)): p for p in processes}
        pending = set(waiting)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                # The first that could not start fails the start at once: a background role waiting
                # for an unreachable database (workers/runtime.py) would otherwise hold it listen_timeout.
                for task in done:
                    if not task.result():
                        return self._start_failure(waiting[task])
        finally:
            for task in pending:
                task.cancel()
        return None

    def _start_failure(self, process: WorkerProcess) -> str:
        if process.exited.done():
            why = describe_exit(process.exited.result())
        else:
            why = f"not ready within {self.config.listen_timeout:g} s (listen_timeout)"
        lines = "\n".join(f"    {line}" for line in process.last_lines())
        return f"{process.name} could not start: {why}" + (f"\n  its last output:\n{lines}" if lines else "")

    async def stop(self) -> dict[str, Any]:
        """Drain and stop every worker (SIGKILL after kill_timeout), then end run()."""
        if self.phase == "stopping":
            await self.done.wait()
            return {"stopped": True}
        self.phase = "stopping"
        processes = list(self.live)
        log.info("stopping %d processes", len(processes))
        for process in processes:
            process.stop("cluster stopping")
        await asyncio.gather(*(p.wait_stopped(self._stop_timeout()) for p in processes))
        self.done.set()
        return {"stopped": True}

    def _stop_timeout(self) -> float:
        return self.config.drain_delay + self.config.kill_timeout + 1.0

    # -- spawning and reaping --------------------------------------------------------

    def _add_slot(self, role: Role) -> Slot:
        taken = {s.name for s in self.slots.values()}
        index = 0
        name = role.name if role.fixed_instances == 1 else f"{role.name}-0"
        while name in taken:
            index += 1
            name = f"{role.name}-{index}"
        slot = Slot(id=self._next_id, name=name, role=role)
        self._next_id += 1
        self.slots[name] = slot
        return slot

    async def _spawn(self, slot: Slot, *, current: bool = True) -> WorkerProcess:
        process = WorkerProcess(slot.name, slot.role.name)
        self.live.add(process)
        if current:
            slot.process = process
        hello = self.hello
        if slot.role.serves_http:
            process.balance_slot = self.balance.take()
            hello = {**hello, "balance": {"path": str(self.balance.board.path), "slot": process.balance_slot}}
        try:
            await process.spawn(
                self.command, hello, self.listen_sock if slot.role.serves_http else None,
                self.on_line, self._on_message, self._on_exit,
            )
        except OSError as exc:  # could not even exec: treat as an immediate crash
            self._on_spawn_failed(process, exc)
            raise ClusterError(f"cannot start {slot.name}: {exc}") from None
        log.info("started %s (pid %d)", slot.name, process.pid)
        return process

    def _on_message(self, process: WorkerProcess, message: dict[str, Any]) -> None:
        if message["type"] == "ask":
            self._background(self._answer(process, message))
        elif message["type"] == "recycle" and self.phase == "running":
            slot = self.slots.get(process.name)
            if slot is not None and slot.process is process:
                self._background(self._replace_logged(slot, str(message.get("reason", "recycle"))))

    async def _answer(self, process: WorkerProcess, message: dict[str, Any]) -> None:
        question = message.get("question")
        if question == "metrics":  # a scrape of /metrics on one API worker
            process.answer(message.get("id"), await self.metrics())
        elif question == "status":  # the web UI's cluster view, through the API
            process.answer(message.get("id"), await self.status())
        else:
            process.answer(message.get("id"), error=f"unknown question {message.get('question')!r}")

    def _on_spawn_failed(self, process: WorkerProcess, exc: OSError) -> None:
        self.live.discard(process)
        if process.balance_slot is not None:
            self.balance.release(process.balance_slot)
        slot = self.slots.get(process.name)
        if slot is not None and slot.process is process:  # e.g. the pyz was deleted: retrying won't help
            slot.process, slot.errored = None, f"cannot start: {exc}"
            log.error("%s is errored: cannot start: %s", slot.name, exc)

    def _on_exit(self, process: WorkerProcess, code: int) -> None:
        self.live.discard(process)
        self.telemetry.retire(process.counters)  # cluster-wide counters must not go backwards
        if process.balance_slot is not None:
            self.balance.release(process.balance_slot)
        slot = self.slots.get(process.name)
        if process.stop_reason is not None:
            log.info("%s (pid %d) stopped: %s", process.name, process.pid, process.stop_reason)
            return
        if slot is None or slot.process is not process or self.phase != "running":
            return
        slot.process = None
        why = process.failure or describe_exit(code)
        if code == BOOT_FAILURE_EXIT and process.last_lines(1):  # its own words say what to fix
            why += f": {process.last_lines(1)[0]}"
        uptime = process.uptime()
        log.warning("%s (pid %d) exited after %.1f s: %s", slot.name, process.pid, uptime, why)
        if uptime >= BACKOFF_RESET_UPTIME or (process.went_online and uptime >= self.config.min_uptime):
            # The backoff is for workers that cannot start. One that was serving (killed by the OOM
            # killer or kill -9) comes back at once: with the backoff growing over a kill every 2 s
            # (scripts/chaos.py api-kills), both API workers were down together for over 5 s.
            slot.backoff_step = 0
        slot.quick_deaths = slot.quick_deaths + 1 if uptime < self.config.min_uptime else 0
        if slot.quick_deaths >= self.config.max_restarts:
            slot.errored = (f"crashed {slot.quick_deaths} times in a row within {self.config.min_uptime:g} s "
                            f"of starting; last: {why}")
            log.error("%s is errored and left stopped: %s", slot.name, slot.errored)
            for line in process.last_lines():
                log.error("%s | %s", slot.name, line)
            return
        delay = min(BACKOFF_MAX, BACKOFF_START * BACKOFF_FACTOR ** slot.backoff_step)
        slot.backoff_step += 1
        asyncio.get_running_loop().call_later(delay, self._respawn, slot)

    def _respawn(self, slot: Slot) -> None:
        if self.phase == "running" and self.slots.get(slot.name) is slot and slot.process is None \
                and not slot.errored:
            slot.restarts += 1
            self._background(self._spawn(slot))

    def _check_health(self) -> None:
        """Sample cpu and memory; replace workers that stopped answering or grew too big."""
        now = time.monotonic()
        for slot in list(self.slots.values()):
            process = slot.process
            if process is None or not process.alive:
                continue
            process.sample()
            if process.status == "online" and now - process.last_heartbeat > self.config.worker_timeout:
                process.failure = f"no heartbeat for {self.config.worker_timeout:g} s (worker_timeout)"
                log.error("%s (pid %d) is not answering: killing it", slot.name, process.pid)
                process.signal(signal.SIGKILL)
            elif process.rss > self.config.max_memory_restart and not slot.replacing:
                reason = (f"memory {process.rss / 1e6:.0f} MB over max_memory_restart "
                          f"{self.config.max_memory_restart / 1e6:.0f} MB")
                log.warning("%s (pid %d): %s: replacing it", slot.name, process.pid, reason)
                self._background(self._replace_logged(slot, reason))
        for process in self._unslotted():
            process.sample()
        self.telemetry.tick(p.rates for p in self.live if p.role == "api")

    # -- graceful replacement ------------------------------------------------------------

    async def replace(self, slot: Slot, reason: str) -> WorkerProcess:
        """A fresh worker in this slot. HTTP workers: the new one is ready before the old one drains."""
        if slot.replacing:
            raise ClusterError(f"{slot.name} is already being replaced")
        slot.replacing = True
        try:
            old = slot.process
            if old is not None and not slot.role.serves_http:
                await self._retire(slot, old, reason)
            new = await self._spawn(slot, current=False)
            if not await new.wait_ready(self.config.listen_timeout):
                new.stop("did not become ready")
                await new.wait_stopped(self._stop_timeout())
                raise ClusterError(self._start_failure(new))
            slot.process, slot.errored, slot.quick_deaths = new, None, 0
            slot.restarts += 1
            if old is not None and old.alive and slot.role.serves_http:
                await self._retire(slot, old, reason)
            return new
        finally:
            slot.replacing = False

    async def _retire(self, slot: Slot, process: WorkerProcess, reason: str) -> None:
        if slot.process is process:
            slot.process = None
        process.stop(reason)
        await process.wait_stopped(self._stop_timeout())

    async def _replace_logged(self, slot: Slot, reason: str) -> None:
        try:
            await self.replace(slot, reason)
        except ClusterError as exc:
            log.error("could not replace %s (%s): %s", slot.name, reason, exc.detail)

    # -- commands ---------------------------------------------------------------------

    async def dispatch(self, command: str, args: dict[str, Any]) -> Any:
        """Run one control command; a bad one raises InvalidInput and never harms the master."""
        handlers = {"status": self.status, "stop": self.stop, "reload": self.reload,
                    "restart": self.restart, "scale": self.scale, "ping": self.ping, "metrics": self.metrics}
        handler = handlers.get(command)
        if handler is None:
            raise InvalidInput.field("command", f"unknown command '{command}' (known: {', '.join(handlers)})")
        if self.phase == "stopping" and command not in ("status", "ping", "stop", "metrics"):
            raise ClusterError("the cluster is stopping")
        try:
            return await handler(**args)
        except TypeError:
            raise InvalidInput.field("args", f"bad arguments for '{command}': {sorted(args)}") from None

    async def ping(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "phase": self.phase}

    async def reload(self) -> dict[str, Any]:
        """Replace workers a few at a time with fresh ones from the code on disk; stop at the first failure."""
        async with self.operation:
            slots = list(self.slots.values())
            step = self.config.reload_parallelism
            for start in range(0, len(slots), step):
                batch = slots[start:start + step]
                results = await asyncio.gather(*(self.replace(s, "reload") for s in batch), return_exceptions=True)
                failures = [r for r in results if isinstance(r, BaseException)]
                if failures:
                    raise ClusterError("reload stopped; the old workers keep serving: " +
                                       "; ".join(getattr(f, "detail", repr(f)) for f in failures))
                if self.phase != "running":
                    raise ClusterError("reload interrupted: the cluster is stopping")
            return {"reloaded": len(slots)}

    async def restart(self) -> dict[str, Any]:
        """Stop every worker, then start them all again (not zero-downtime: use reload for that)."""
        async with self.operation:
            slots = list(self.slots.values())
            await asyncio.gather(*(self._retire(s, s.process, "restart") for s in slots if s.process))
            for slot in slots:
                slot.errored, slot.quick_deaths, slot.backoff_step = None, 0, 0
                slot.restarts += 1
            failure = await self._start_all()
            if failure:
                raise ClusterError(failure)
            return {"restarted": len(slots)}

    async def scale(self, role: str, count: str | int) -> dict[str, Any]:
        """Set the number of workers of a role: N, +N or -N."""
        target_role = role_named(role)
        if target_role is None or not target_role.serves_http:
            scalable = ", ".join(r.name for r in ROLES if r.serves_http)
            raise InvalidInput.field("role", f"only {scalable} can be scaled")
        async with self.operation:
            slots = [s for s in self.slots.values() if s.role is target_role]
            target = _scale_target(str(count), len(slots))
            if target > len(slots):
                added = [self._add_slot(target_role) for _ in range(target - len(slots))]
                processes = await asyncio.gather(*(self._spawn(s) for s in added))
                ready = await asyncio.gather(*(p.wait_ready(self.config.listen_timeout) for p in processes))
                failed = [self._start_failure(p) for p, ok in zip(processes, ready, strict=True) if not ok]
                if failed:
                    raise ClusterError("; ".join(failed))
            elif target < len(slots):
                doomed = sorted(slots, key=lambda s: s.id)[target:]
                for slot in doomed:
                    del self.slots[slot.name]
                await asyncio.gather(*(self._retire(s, s.process, "scaled down") for s in doomed if s.process))
            log.info("scaled %s from %d to %d", role, len(slots), target)
            return {"role": role, "from": len(slots), "to": target}

    async def status(self) -> dict[str, Any]:
        rows = []
        for slot in sorted(self.slots.values(), key=lambda s: s.id):
            rows.append(self._row(slot, slot.process))
        for process in sorted(self._unslotted(), key=lambda p: p.started_at):
            rows.append(self._row(None, process))  # draining, or a replacement not yet ready
        return {
            "master": {"pid": os.getpid(), "version": __version__, "build": build_id(), "phase": self.phase,
                       "uptime": time.time() - self.started_wall, "address": self._address(),
                       "data_dir": str(self.config.data_path)},
            "processes": rows,
            "cluster": self.telemetry.summary([p.rates for p in self.live if p.role == "api"]),
        }

    async def metrics(self) -> dict[str, Any]:
        """Cluster-wide figures for /metrics (boltlink.metrics.render)."""
        rows = (await self.status())["processes"]
        return self.telemetry.snapshot([(p.role, p.rates) for p in self.live], rows)

    def _row(self, slot: Slot | None, process: WorkerProcess | None) -> dict[str, Any]:
        if slot is not None and slot.errored:
            status = "errored"
        elif process is None:
            status = "starting" if self.phase == "running" else "stopped"  # waiting out its backoff
        else:
            status = process.status
        alive = process is not None and process.alive
        return {
            "name": slot.name if slot else process.name,  # type: ignore[union-attr]
            "id": slot.id if slot else None,
            "role": (slot.role.name if slot else process.role),  # type: ignore[union-attr]
            "pid": process.pid if alive else None,
            "status": status,
            "cpu": process.cpu_percent if alive else 0.0,
            "memory": process.rss if alive else 0,
            "restarts": slot.restarts if slot else 0,
            "uptime": process.uptime() if alive else 0.0,
            "requests_per_second": round(process.requests_per_second, 1) if alive else 0.0,
            "requests": int(process.counters.get("requests", 0)) if process else 0,
            **(process.rates.figures() if alive else {"p99_ms": None, "error_rate": 0.0}),  # type: ignore[union-attr]
            "history": list(process.rates.history) if process else [],
            "figures": _role_figures(process.counters) if process else {},
            "version": process.version if process else None,
            "build": process.build if process else None,
            "reason": slot.errored if slot else None,
        }

    # -- helpers ---------------------------------------------------------------------

    def _unslotted(self) -> list[WorkerProcess]:
        current = {slot.process for slot in self.slots.values()}
        return [p for p in self.live if p not in current]

    def _address(self) -> str:
        host, port = self.listen_sock.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def _background(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _signalled(self, signum: int, command: str, args: dict[str, Any]) -> None:
        log.info("received %s: %s", signal.Signals(signum).name, command)
        try:
            await self.dispatch(command, args)
        except BoltlinkError as exc:
            log.error("%s failed: %s", command, exc.detail)


def _role_figures(counts: dict[str, Any]) -> dict[str, Any]:
    """What a non-HTTP role reports beyond heartbeats (the aggregator: batch size, lag, events/s, backlog)."""
    return {key: counts[key] for key in ("batch_size", "lag", "events_per_second", "backlog", "recorded")
            if key in counts}


def _scale_target(count: str, current: int) -> int:
    text = count.strip()
    try:
        value = int(text)
    except ValueError:
        raise InvalidInput.field("count", f"'{count}' is not N, +N or -N") from None
    target = current + value if text[0] in "+-" else value
    if not 1 <= target <= MAX_API_INSTANCES:
        raise InvalidInput.field("count", f"would make {target} workers; choose 1 to {MAX_API_INSTANCES}")
    return target
