"""Request ids the API makes up: the format they always had, and none repeated across processes."""

from __future__ import annotations

import multiprocessing
import re
from multiprocessing.connection import Connection

import pytest

from boltlink.web import request_log
from boltlink.web.request_log import new_request_id

SECRETS_TOKEN_HEX_8 = re.compile(r"[0-9a-f]{16}")  # what ids looked like before, secrets.token_hex(8)
ENOUGH_TO_RENEW_THE_PREFIX = 70_000


def _send_ids(count: int, conn: Connection) -> None:
    conn.send([new_request_id() for _ in range(count)])
    conn.close()


def ids_of_other_processes(method: str, processes: int, count: int) -> list[list[str]]:
    context = multiprocessing.get_context(method)
    pipes = [context.Pipe(duplex=False) for _ in range(processes)]
    children = [context.Process(target=_send_ids, args=(count, sender)) for _, sender in pipes]
    for child in children:
        child.start()
    try:
        return [receiver.recv() for receiver, _ in pipes]
    finally:
        for child in children:
            child.join(10)
            if child.is_alive():
                child.kill()


def test_new_ids_have_the_format_of_before() -> None:
    ids = [new_request_id() for _ in range(ENOUGH_TO_RENEW_THE_PREFIX)]
    assert all(SECRETS_TOKEN_HEX_8.fullmatch(request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("method", ["spawn", "fork"])  # fork: workers that inherit this module's state
def test_ids_from_two_worker_processes_never_collide(method: str) -> None:
    mine = [new_request_id() for _ in range(10)]
    first, second = ids_of_other_processes(method, 2, ENOUGH_TO_RENEW_THE_PREFIX)
    assert len(set(first)) == len(first) and len(set(second)) == len(second)
    assert not set(first) & set(second)
    assert not set(mine) & (set(first) | set(second))
    assert all(SECRETS_TOKEN_HEX_8.fullmatch(request_id) for request_id in first + second)


def test_a_generated_id_is_used_only_when_the_incoming_one_is_not_sane() -> None:
    assert request_log.request_id_from([(b"x-request-id", b"edge-1")]) == "edge-1"
    assert SECRETS_TOKEN_HEX_8.fullmatch(request_log.request_id_from([(b"x-request-id", b"bad id")]))
