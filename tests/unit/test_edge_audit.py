"""The edge's audit routes, without a broker: reports as JSON or CSV, their permission, bad input
as problem+json, and the investigation routes (commands built as the caller, statuses of refusals)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api_edge.app import app
from api_edge.auth import AuthError, Principal
from api_edge.errors import status_for
from api_edge.gateway import Gateway
from api_edge.limits import RateLimiter
from contracts import audit as c
from contracts.common import Command, Reply
from contracts.identity import ROLE_PERMISSIONS, Permission, Role

ROWS = [{"record_seq": 7, "payment_id": "p-1", "amount": 2_500_000, "customer_id": "=HYPERLINK(\"x\")",
         "payment_ids": ["a", "b"]}]  # fmt: skip
COLUMNS = ["record_seq", "payment_id", "amount", "customer_id", "payment_ids"]


class _Correlator:
    def __init__(self) -> None:
        self.sent: list[Command] = []
        self.answer: Reply | None = None

    async def send(self, command: Command, **_: object) -> Reply:
        self.sent.append(command)
        if self.answer is not None:
            return self.answer
        if isinstance(command, c.GetReport):
            return Reply.success(c.Report(kind=command.kind, parameters={}, columns=COLUMNS, rows=ROWS, next_cursor="n1"))
        return Reply.success({})


class _Authenticator:
    async def principal_from(self, authorization: str | None, api_key: str | None) -> Principal:
        if api_key not in ROLE_PERMISSIONS:
            raise AuthError(401, "unauthenticated", "no such test role")
        return Principal(subject=f"{api_key}-1", roles=(api_key,), permissions=ROLE_PERMISSIONS[api_key], via="api_key")


@pytest.fixture
async def edge() -> AsyncIterator[tuple[httpx.AsyncClient, _Correlator]]:
    correlator = _Correlator()
    app.state.gateway = Gateway(correlator, 1.0)  # type: ignore[arg-type]
    app.state.authenticator = _Authenticator()
    app.state.limiter = RateLimiter()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as client:
            yield client, correlator
    finally:
        for name in ("gateway", "authenticator", "limiter"):
            delattr(app.state, name)


async def test_a_report_as_json_then_as_csv_by_query_or_accept(edge: Any) -> None:
    client, correlator = edge
    answer = await client.get("/v1/audit/reports/large-value", params={"business_date": "2026-12-07"},
                              headers={"X-API-Key": "auditor"})  # fmt: skip
    assert answer.status_code == 200 and answer.json()["rows"] == ROWS and answer.json()["next_cursor"] == "n1"
    [command] = correlator.sent
    assert isinstance(command, c.GetReport) and command.kind == "large-value" and str(command.business_date) == "2026-12-07"
    for extra in ({"params": {"business_date": "2026-12-07", "format": "csv"}},
                  {"params": {"business_date": "2026-12-07"}, "headers": {"Accept": "text/csv"}}):  # fmt: skip
        headers = {"X-API-Key": "auditor", **extra.get("headers", {})}
        answer = await client.get("/v1/audit/reports/structuring", params=extra["params"], headers=headers)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["x-next-cursor"] == "n1"
        rows = list(csv.reader(io.StringIO(answer.text)))
        assert rows == [COLUMNS, ["7", "p-1", "2500000", "'=HYPERLINK(\"x\")", "a b"]]  # a formula is never run


async def test_reports_need_audit_read_and_bad_input_is_problem_json(edge: Any) -> None:
    client, correlator = edge
    teller = await client.get("/v1/audit/reports/large-value", params={"business_date": "2026-12-07"},
                              headers={"X-API-Key": "teller"})  # fmt: skip
    assert teller.status_code == 403 and teller.headers["content-type"] == "application/problem+json"
    for path, params in (("/v1/audit/reports/everything", {}), ("/v1/audit/reports/large-value", {"business_date": "x"}),
                         ("/v1/audit/reports/actor-activity", {"since": "2026-12-07T00:00:00Z",
                                                               "until": "2026-12-01T00:00:00Z", "actor": "a"}),
                         ("/v1/audit/reports/large-value", {"limit": "0"})):  # fmt: skip
        bad = await client.get(path, params=params, headers={"X-API-Key": "auditor"})
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json", (path, bad.text)
    assert correlator.sent == []
    correlator.answer = Reply.refusal(c.AuditError.report_needs, "the large-value report needs business_date")
    refused = await client.get("/v1/audit/reports/large-value", headers={"X-API-Key": "auditor"})
    assert refused.status_code == 422 and refused.json()["code"] == "report_needs"


async def test_investigations_are_worked_by_who_may_and_as_the_caller(edge: Any) -> None:
    client, correlator = edge

    async def post(path: str, role: str, body: Any) -> httpx.Response:
        return await client.post(path, json=body, headers={"X-API-Key": role, "Idempotency-Key": uuid.uuid4().hex})

    assert (await post("/v1/audit/investigations/security/12/assign", "auditor", {"assignee": "inv-1"})).status_code == 200
    assert (await post("/v1/audit/investigations/security/12/notes", "auditor", {"text": "called"})).status_code == 200
    assert (await post("/v1/audit/investigations/compliance/12/close", "admin", {"resolution": "ok"})).status_code == 200
    assert [type(x) for x in correlator.sent] == [c.AssignInvestigation, c.NoteInvestigation, c.CloseInvestigation]
    assert [(x.record_seq, x.kind) for x in correlator.sent] == [(12, "security"), (12, "security"), (12, "compliance")]
    assert (await post("/v1/audit/investigations/security/12/assign", "officer", {"assignee": "x"})).status_code == 403
    assert (await post("/v1/audit/investigations/security/12/assign", "auditor", {"assignee": "x", "actor": "y"})).status_code == 400
    assert (await post("/v1/audit/investigations/other/12/assign", "auditor", {"assignee": "x"})).status_code == 400
    assert (await post("/v1/audit/investigations/security/0/assign", "auditor", {"assignee": "x"})).status_code == 400
    huge = "/v1/audit/investigations/security/1166353419620540490193043456/assign"  # past a bigint: the fuzzer's find
    assert (await post(huge, "auditor", {"assignee": "x"})).status_code == 400
    listed = await client.get("/v1/audit/investigations", params={"status": "open"}, headers={"X-API-Key": "auditor"})
    assert listed.status_code == 200 and isinstance(correlator.sent[-1], c.ListInvestigations)


def test_investigation_refusals_and_who_holds_the_permission() -> None:
    assert status_for(c.AuditError.investigation_closed) == 409
    assert status_for(c.AuditError.investigation_not_found) == 404
    holders = {role for role, granted in ROLE_PERMISSIONS.items() if Permission.audit_investigate in granted}
    assert holders == {Role.auditor, Role.admin}
