"""sqlite_record.py's own shortcuts, against what they stand in for."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from boltlink.store import sqlite_db as db
from boltlink.store.sqlite_record import _text


def test_visit_times_are_stored_as_the_rest_of_the_store_writes_times() -> None:
    rng = random.Random(7)
    times = [datetime.fromtimestamp(rng.uniform(0, 4e9), UTC) for _ in range(5000)]
    times += [t.replace(microsecond=0) for t in times[:50]] + [t.replace(microsecond=999999) for t in times[:50]]
    times += [datetime(2025, 1, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=2)))]  # not UTC
    for at in times + times:  # the second round reads the cached seconds
        assert _text(at) == db.ts(at)
