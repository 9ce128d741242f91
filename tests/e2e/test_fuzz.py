"""A schemathesis fuzz run of the edge's whole OpenAPI surface, with the admin's token and with no auth.

The schema is the one the running edge serves (`/openapi.json`); every request goes to the real
edge and workers. Bounded: per operation, `MAX_EXAMPLES` positive and as many negative cases
(schemathesis' fuzzing phase), no shrinking, no deadline, no example database.

Schemathesis 4.x's Python API is used directly (`schemathesis.openapi.from_url`, then
`APIOperation.as_strategy` under Hypothesis' `@given`, `case.call`, `case.validate_response`):
its pytest loader for a schema that comes from a fixture (`schemathesis.pytest.from_fixture`,
needed here because the edge's port is only known once the `cluster` fixture runs) does not work
with pytest 9.2 (it writes `Node._nodeid`, which pytest 9.2 no longer has).

Checks, on every response:
- `not_a_server_error`: no 5xx, whatever the input.
- `response_schema_conformance`: a response whose status the operation documents matches the
  documented schema. The routes return `JSONResponse`, so FastAPI documents their success bodies
  as `{}` (any JSON: nothing to break there); the meaningful part is the refusals, which the edge
  documents as problem+json (api_edge/app.py), so every documented refusal is checked against that.
- Without auth: every route but the public ones answers 401 `unauthenticated` with a Bearer challenge.
A 429 (the rate limiter) is an answer, not an error.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 8  # per operation and generation mode; ~35 operations × 2 modes × 2 runs
PUBLIC_PATHS = {
    "/health/live", "/health/ready", "/metrics", "/asyncapi",
    "/v1/auth/token", "/v1/auth/refresh", "/v1/auth/logout",
}  # fmt: skip
CREDENTIAL_HEADERS = {"authorization", "x-api-key"}
CHECKS = [not_a_server_error, response_schema_conformance]
SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,  # the same cases every run: a failure found once is found again
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: bounded time
    suppress_health_check=list(hypothesis.HealthCheck),
    print_blob=False,
)


@pytest.fixture(scope="module")
def edge_schema(cluster: Cluster) -> Any:
    config = schemathesis.Config.from_dict({"request-timeout": 15})
    return schemathesis.openapi.from_url(f"{cluster.base_url}/openapi.json", config=config, timeout=10)


def _operations(schema: Any) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]  # .ok() raises on a broken definition
    assert len(operations) > 20, [op.label for op in operations]
    return operations


def _headers(case: Any, credentials: dict[str, str]) -> dict[str, str]:
    """A fresh Idempotency-Key on a POST (unless the case fuzzes its own), plus the credentials given."""
    headers = dict(credentials)
    if case.method.upper() == "POST" and "idempotency-key" not in {k.lower() for k in case.headers or {}}:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return headers


def _fuzz(schema: Any, subtests: Any, exchange: Callable[[Any], None]) -> int:
    """Runs `exchange` on the cases of every operation, each operation a subtest; the number of calls."""
    calls = 0

    def counted(case: Any) -> None:
        nonlocal calls
        calls += 1
        exchange(case)

    for operation in _operations(schema):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            with subtests.test(msg=f"{operation.label} ({mode.value})"):

                @SETTINGS
                @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
                def run(case: Any) -> None:
                    counted(case)

                run()
    return calls


def test_fuzz_as_admin(cluster: Cluster, edge_schema: Any, subtests: Any) -> None:
    authorization = {"Authorization": f"Bearer {cluster.token()}"}

    def exchange(case: Any) -> None:
        for name in [k for k in case.headers or {} if k.lower() in CREDENTIAL_HEADERS]:
            del case.headers[name]  # the credential headers are fuzzed too; this run sends only the admin's
        response = case.call(headers=_headers(case, authorization))
        if response.status_code != 429:
            case.validate_response(response, checks=CHECKS)

    started = time.monotonic()
    calls = _fuzz(edge_schema, subtests, exchange)
    print(f"fuzz as admin: {calls} requests in {time.monotonic() - started:.1f} s")


def test_fuzz_without_auth(edge_schema: Any, subtests: Any) -> None:
    def exchange(case: Any) -> None:
        # Whatever the fuzzed `Authorization` / `X-API-Key` header holds, it is not a credential.
        response = case.call(headers=_headers(case, {}))
        if response.status_code == 429:
            return
        case.validate_response(response, checks=CHECKS)
        if case.path not in PUBLIC_PATHS:
            assert response.status_code == 401, (case.method, case.path, response.status_code, response.text[:300])
            assert response.json()["code"] == "unauthenticated"
            assert response.headers["www-authenticate"].startswith("Bearer")

    started = time.monotonic()
    calls = _fuzz(edge_schema, subtests, exchange)
    print(f"fuzz without auth: {calls} requests in {time.monotonic() - started:.1f} s")
