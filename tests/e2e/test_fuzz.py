"""A schemathesis fuzz run of the edge's whole OpenAPI surface, with the admin's token and with no auth.

The schema is the one the running edge serves (`/openapi.json`); every request goes to the real
edge and workers. Bounded: the fuzzing phase only, a few examples per operation, no deadline.

Checks:
- `not_a_server_error`: no 5xx, ever, whatever the input.
- `response_schema_conformance`: a response whose status the operation documents must match the
  documented schema. The edge's routes return `JSONResponse`, so FastAPI documents their success
  bodies as `{}` (anything goes, nothing to break); what is meaningful is the errors, which the
  edge documents as problem+json (see api_edge/app.py): every refusal is checked against that.
- Without auth, every protected route answers 401 `unauthenticated` with a Bearer challenge.
A 429 (the rate limiter) is an answer, not an error.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 6  # per operation and per generation mode; ~35 operations, twice (with and without auth)
PUBLIC_PATHS = {
    "/health/live", "/health/ready", "/metrics", "/asyncapi",
    "/v1/auth/token", "/v1/auth/refresh", "/v1/auth/logout",
}  # fmt: skip
CREDENTIAL_HEADERS = ("authorization", "x-api-key")


@pytest.fixture(scope="module")
def edge_schema(cluster: Cluster) -> Any:
    config = schemathesis.Config.from_dict({
        "seed": 20240604,  # reproducible: a failure found once is found again
        "phases": {"examples": {"enabled": False}, "coverage": {"enabled": False}, "stateful": {"enabled": False},
                   "fuzzing": {"enabled": True}},
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
        "request-timeout": 15,
    })  # fmt: skip
    return schemathesis.openapi.from_url(f"{cluster.base_url}/openapi.json", config=config, timeout=10)


@pytest.fixture(scope="module")
def admin_token(cluster: Cluster) -> str:
    return cluster.token()


schema = schemathesis.pytest.from_fixture("edge_schema")


def _headers(case: Any, credentials: dict[str, str]) -> dict[str, str]:
    """A fresh Idempotency-Key on a POST (unless the case fuzzes its own), plus the credentials given."""
    headers = dict(credentials)
    if case.method.upper() == "POST" and not any(k.lower() == "idempotency-key" for k in (case.headers or {})):
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return headers


def _drop_generated_credentials(case: Any) -> None:
    """The `Authorization` and `X-API-Key` header parameters are fuzzed too; the admin run sends only its own."""
    for name in [k for k in (case.headers or {}) if k.lower() in CREDENTIAL_HEADERS]:
        del case.headers[name]


@schema.parametrize()
def test_fuzz_as_admin(case: Any, admin_token: str) -> None:
    _drop_generated_credentials(case)
    response = case.call(headers=_headers(case, {"Authorization": f"Bearer {admin_token}"}))
    if response.status_code == 429:
        return  # the limiter's answer: allowed
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


@schema.parametrize()
def test_fuzz_without_auth(case: Any) -> None:
    response = case.call(headers=_headers(case, {}))
    if response.status_code == 429:
        return
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    if case.path not in PUBLIC_PATHS:
        assert response.status_code == 401, (case.method, case.path, response.status_code, response.text[:300])
        assert response.json()["code"] == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")
