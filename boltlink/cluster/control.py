"""The control socket: one JSON request line in, one JSON reply line out.

    -> {"command": "scale", "args": {"role": "api", "count": "+1"}}
    <- {"ok": true, "result": {...}}   or   {"ok": false, "error": "one readable line"}

The socket is mode 0600 in DATA_DIR/run, and the master also checks the
peer's uid (SO_PEERCRED) against its own: root included, nobody else may
drive it. A malformed or unknown command gets an error reply; nothing a
client sends can take the master down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from boltlink.cluster.runfiles import RunFiles
from boltlink.errors import BoltlinkError, CommandFailed, NotRunning

log = logging.getLogger("boltlink.master")

MAX_REQUEST_BYTES = 64 * 1024
Dispatch = Callable[[str, dict[str, Any]], Awaitable[Any]]


class ControlServer:
    def __init__(self, run_files: RunFiles, dispatch: Dispatch) -> None:
        self.run_files = run_files
        self.dispatch = dispatch
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        old_umask = os.umask(0o177)  # born 0600: no window in which others could connect
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=self.run_files.socket_address(), limit=MAX_REQUEST_BYTES
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.run_files.socket, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._answer(reader, writer.get_extra_info("socket"))
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, sock: socket.socket) -> dict[str, Any]:
        uid = peer_uid(sock)
        if uid != os.getuid():
            log.warning("refused a control connection from uid %s", uid)
            return {"ok": False, "error": f"refused: uid {uid} may not control this cluster"}
        try:
            line = await reader.readline()
        except ValueError:
            return {"ok": False, "error": "request too long"}
        try:
            request = json.loads(line)
            command, args = request["command"], request.get("args") or {}
            if not isinstance(command, str) or not isinstance(args, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": 'malformed request: send {"command": NAME, "args": {...}} on one line'}
        try:
            return {"ok": True, "result": await self.dispatch(command, args)}
        except BoltlinkError as exc:
            return {"ok": False, "error": exc.detail}
        except Exception:  # a bug in a handler must not take the master down
            log.exception("control command %r failed", command)
            return {"ok": False, "error": f"internal error running '{command}'; see master.log"}


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def request(run_files: RunFiles, command: str, args: dict[str, Any] | None = None,
            timeout: float | None = 30.0) -> Any:
    """Send one command to the running master and return its result (raises NotRunning, CommandFailed)."""
    if run_files.running_pid() is None:
        raise NotRunning(f"boltlink is not running for {run_files.dir.parent}")
    payload = json.dumps({"command": command, "args": args or {}}).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(run_files.socket_address())
            sock.sendall(payload)
            with sock.makefile("rb") as stream:
                line = stream.readline()
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotRunning(f"boltlink is not running for {run_files.dir.parent} (no control socket)") from None
    except TimeoutError:
        raise CommandFailed(f"the cluster master did not answer '{command}' within {timeout:g} s") from None
    except OSError as exc:
        raise CommandFailed(f"cannot reach the cluster master: {exc.strerror or exc}") from None
    if not line:
        raise CommandFailed(f"the cluster master closed the connection during '{command}'")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise CommandFailed(reply.get("error", "the command failed"))
    return reply.get("result")
