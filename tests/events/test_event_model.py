"""ClickEvent's one-line form, and event ids that never repeat (the key storage dedups on)."""

from __future__ import annotations

import json
import os

import pytest

from boltlink.events.model import ClickEvent, new_event_id


def make_event(**fields: object) -> ClickEvent:
    values: dict[str, object] = dict(
        id=new_event_id(), link_id=42, at=1_700_000_000.25, referrer="https://news.example/a?b=c",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", bot=False, ip="203.0.113.0", country="DE",
    )
    values.update(fields)
    return ClickEvent(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("fields", [
    {},
    {"referrer": None, "user_agent": None, "ip": None, "country": None, "bot": True},
    {"referrer": "https://example.com/ünïcödé\n\"quoted\"", "user_agent": "x\u2028y"},
])
def test_encode_decode_round_trip(fields: dict[str, object]) -> None:
    event = make_event(**fields)
    line = event.encode()
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one event, one line, whatever its text holds
    assert ClickEvent.decode(line) == event
    assert ClickEvent.decode(line.decode()) == event


@pytest.mark.parametrize("line", [
    b"", b"\n", b"not json", b"{\"i\":\"x\",\"l\":1", b"[1, 2, 3]", b"\"text\"", b"17", b"null",
    b"{}", b"{\"i\":\"x\",\"l\":1,\"t\":1}",  # fields missing
    b"\xff\xfe garbage",  # not UTF-8
    b"{\"i\":\"x\",\"l\":\"one\",\"t\":1,\"r\":null,\"u\":null,\"b\":false,\"a\":null,\"c\":null}",
    b"{\"i\":\"x\",\"l\":1,\"t\":null,\"r\":null,\"u\":null,\"b\":false,\"a\":null,\"c\":null}",
    # json accepts Infinity; int() of it raises OverflowError, which must not escape as a crash
    b"{\"i\":\"x\",\"l\":Infinity,\"t\":1,\"r\":null,\"u\":null,\"b\":false,\"a\":null,\"c\":null}",
    # wrongly typed text fields would crash the aggregator's enrichment later (poison pill)
    b"{\"i\":\"x\",\"l\":1,\"t\":1,\"r\":5,\"u\":null,\"b\":false,\"a\":null,\"c\":null}",
    b"{\"i\":\"x\",\"l\":1,\"t\":1,\"r\":null,\"u\":[\"a\"],\"b\":false,\"a\":null,\"c\":null}",
    b"[" * 100_000,  # nested too deep for the parser
])
def test_decode_refuses_garbage_with_value_error(line: bytes) -> None:
    with pytest.raises(ValueError):
        ClickEvent.decode(line)


def test_decoded_fields_have_their_types() -> None:
    line = json.dumps({"i": 7, "l": "12", "t": 3, "r": None, "u": None, "b": 1, "a": None, "c": None})
    event = ClickEvent.decode(line)
    assert (event.id, event.link_id, event.at, event.bot) == ("7", 12, 3.0, True)


def test_event_ids_are_unique_across_100k_calls() -> None:
    ids = [new_event_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    before = [new_event_id() for _ in range(1000)]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its ids and leave without running any pytest teardown
        try:
            os.close(read_end)
            os.write(write_end, "\n".join(new_event_id() for _ in range(1000)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read().decode().split("\n")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    after = [new_event_id() for _ in range(1000)]
    assert len(child) == 1000 and len(set(child)) == 1000
    assert not set(child) & (set(before) | set(after))


def test_a_batch_decodes_at_once_and_a_bad_line_costs_only_itself():
    from boltlink.events.model import decode_many

    good = ClickEvent(id="e1", link_id=7, at=1.5, referrer=None, user_agent="ua", bot=False, ip=None, country=None)
    assert decode_many([good.encode()] * 3) == [good] * 3
    lines = [good.encode(), b"garbage\n", b"1,2\n", b'{"i": 1}\n', b"[" * 100_000 + b"\n", b"\n",
             b'{"i":"x","l":1,"t":1,"r":5,"u":null,"b":false,"a":null,"c":null}\n', good.encode()]
    assert decode_many(lines) == [good, None, None, None, None, None, None, good]
    assert decode_many([]) == []
