"""schemathesis against /openapi.json: no operation answers 5xx or breaks what the document says.

Every operation gets schemathesis' coverage cases (boundaries, missing and
unknown fields) and up to MAX_EXAMPLES fuzzed ones, valid and invalid, with
an API key that has every scope, derandomized so CI sees the same requests
every run. Four checks: no server error, the body matches the documented
schema, the status and the Content-Type are documented.

In process (ASGI), not over a socket: the app is the same, it answers in
microseconds instead of a loopback round trip, so the whole run fits in
well under a minute; what only a real hypercorn can show (limits, timeouts,
malformed HTTP) is tests/fuzz/test_malformed_http.py's job. SQLite only:
the API's answers do not depend on the backend (tests/store/ holds both to
one contract), and PostgreSQL would add nothing here but time.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from boltlink.apikeys import new_api_key
from boltlink.config import Config
from boltlink.shortener import LinkDraft, LinkRules, create_link
from boltlink.store import create_store
from boltlink.web import create_app

# Fuzzed examples per operation: 25 keeps CI under half a minute; BOLTLINK_FUZZ_EXAMPLES=500 digs deeper.
MAX_EXAMPLES = int(os.environ.get("BOLTLINK_FUZZ_EXAMPLES", "25"))
KNOWN_SLUG = "fuzzed"  # a link that exists, so slug operations reach their success answers too
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


async def _document() -> dict[str, Any]:
    # The document depends only on the code: an app that never opens its store serves it.
    # (Loaded at import, not from a fixture: schemathesis' fixture loader breaks on pytest 9's nodes.)
    app = create_app(Config(data_dir="unused"))
    return await (await app.test_client().get("/openapi.json")).get_json()


schema = schemathesis.openapi.from_dict(asyncio.run(_document()))
answers: dict[str, list[int]] = defaultdict(list)  # "METHOD /path" -> every status it answered


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    if not path_parameters or "slug" not in path_parameters:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {**path_parameters, "slug": KNOWN_SLUG}])


async def _prepare(config: Config) -> str:
    store = create_store(config)
    await store.open()
    try:
        key, record = new_api_key("fuzz", ("admin",))
        await store.create_api_key(record)
        await create_link(store, LinkDraft(url="https://example.com/fuzz", slug=KNOWN_SLUG),
                          LinkRules.for_config(config))
    finally:
        await store.close()
    return key


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, str]]:
    """The app (which opens its own store when schemathesis starts it) and headers with an admin key."""
    # One client sends about a thousand requests here: write limits would answer most of them 429.
    config = Config(data_dir=str(Path(tmp_path_factory.mktemp("fuzz"))), rate_limit_writes=0)
    key = asyncio.run(_prepare(config))
    return create_app(config), {"X-API-Key": key}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api_keeps_to_its_openapi_document(case: Any, served: tuple[Any, dict[str, str]]) -> None:
    app, headers = served
    response = case.call_and_validate(app=app, headers=headers, checks=CHECKS)
    answers[f"{case.method.upper()} {case.operation.path}"].append(response.status_code)
    if case.method.upper() == "DELETE" and response.status_code == 204:
        # Bring the known link back, so the operations fuzzed after this one still find it.
        schema["/api/v1/links"]["POST"].Case(body={"url": "https://example.com/fuzz", "slug": KNOWN_SLUG}).call(
            app=app, headers=headers)


def test_the_fuzzing_reached_every_operation_and_its_success_answers() -> None:
    """A run where every request got 401 or 404 would pass the checks and prove nothing."""
    if not answers:
        pytest.skip("runs after test_api_keeps_to_its_openapi_document, in the same session")
    operations = sorted(f"{op.method.upper()} {op.path}" for op in (r.ok() for r in schema.get_all_operations()))
    print(f"\nschemathesis: {sum(map(len, answers.values()))} requests; per documented operation:")
    for operation in operations:
        statuses = answers[operation]
        counts = ", ".join(f"{s}x{statuses.count(s)}" for s in sorted(set(statuses)))
        print(f"  {operation}: {len(statuses)} ({counts})")
    others = [s for op, statuses in answers.items() if op not in operations for s in statuses]
    print(f"  other methods on the same paths: {len(others)} ({', '.join(sorted({str(s) for s in others}))})")
    assert all(answers[op] for op in operations)
    # /api/v1/cluster answers 404 outside a cluster: it has no success answer to reach here.
    unsuccessful = [op for op in operations
                    if op != "GET /api/v1/cluster" and not any(200 <= s < 400 for s in answers[op])]
    assert not unsuccessful
