"""Refusal facts: one access_denied contract per worker, and the edge's events carry no secret."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from api_edge.auth import AuthError, Principal
from api_edge.refusals import event_for
from bus.settings import WORKERS
from contracts import security


def test_every_worker_has_its_access_denied_event() -> None:
    assert set(security.ACCESS_DENIED) == set(WORKERS)
    for worker, event in security.ACCESS_DENIED.items():
        assert event.routing_key == f"{worker}.access_denied"


def _request(path: str) -> SimpleNamespace:
    return SimpleNamespace(method="GET", url=SimpleNamespace(path=path), client=SimpleNamespace(host="10.0.0.7"))


def test_a_401_becomes_edge_auth_failed_without_the_credentials() -> None:
    now = datetime.now(UTC)
    event = event_for(_request("/v1/accounts/x"), AuthError(401, "unauthenticated", "invalid API key"), now)  # type: ignore[arg-type]
    assert event is not None and event.routing_key == "edge.auth_failed"
    assert event.model_dump() == {"method": "GET", "path": "/v1/accounts/x", "reason": "invalid API key",
                                  "client": "10.0.0.7", "occurred_at": now}  # fmt: skip


def test_a_403_names_who_and_the_missing_permission_and_429_is_not_a_refusal_of_who() -> None:
    who = Principal(subject="u-1", roles=("teller",), permissions=frozenset({"accounts:read"}))
    refused = AuthError(403, "forbidden", "this needs the `ledger:admin` permission", who=who, permission="ledger:admin")
    event = event_for(_request("/v1/ledger/transfers"), refused, datetime.now(UTC))  # type: ignore[arg-type]
    assert event is not None and event.routing_key == "edge.access_denied"
    assert (event.subject, event.roles, event.permission) == ("u-1", ["teller"], "ledger:admin")
    assert event_for(_request("/v1/x"), AuthError(429, "rate_limited", "slow down"), datetime.now(UTC)) is None  # type: ignore[arg-type]
