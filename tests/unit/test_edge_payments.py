"""The edge's payment routes, without a broker: their OpenAPI surface, the commands they build
from the request and the principal, and the HTTP status of the payment worker's refusals.

The edge's own app runs in process (no lifespan): its authenticator answers a principal per
`X-API-Key` from the roles' permissions, and its gateway's correlator stands in for the bus by
recording each command and answering `ok` (the wiring is what these tests are about).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiormq.exceptions import ChannelInvalidStateError

from api_edge.app import app
from api_edge.auth import AuthError, Principal
from api_edge.errors import status_for
from api_edge.gateway import Gateway
from api_edge.limits import RateLimiter
from api_edge.payments import payment_purpose
from bus.correlator import BrokerUnavailable, Correlator
from contracts import payment as c
from contracts.common import Command, Reply
from contracts.identity import ROLE_PERMISSIONS, IdentityError, IssueOtp, Permission, Role, VerifyOtp

ROUTES = {
    ("post", "/v1/payments"): "201",
    ("get", "/v1/payments/{payment_id}"): "200",
    ("get", "/v1/accounts/{account_id}/payments"): "200",
    ("post", "/v1/payments/{payment_id}/approve"): "200",
    ("post", "/v1/payments/{payment_id}/reject"): "200",
    ("post", "/v1/payments/{payment_id}/cancel"): "200",
    ("post", "/v1/payments/{payment_id}/refund"): "201",
    ("post", "/v1/payments/{payment_id}/reverse"): "201",
    ("post", "/v1/customers/{customer_id}/payees"): "201",
    ("get", "/v1/customers/{customer_id}/payees"): "200",
    ("post", "/v1/standing-orders"): "201",
    ("get", "/v1/standing-orders/{standing_order_id}"): "200",
    ("get", "/v1/accounts/{account_id}/standing-orders"): "200",
    ("post", "/v1/standing-orders/{standing_order_id}/cancel"): "200",
}
TRUSTED_FIELDS = {"actor", "permissions", "verified"}  # the edge sets these, never the client


def _schema_of(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A request body's schema, `$ref`s and `anyOf: [model, null]` resolved."""
    if "$ref" in schema:
        return _schema_of(document, document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return _schema_of(document, option)
    return schema


def test_every_payment_route_exists_with_its_method_and_success_status() -> None:
    paths = app.openapi()["paths"]
    for (method, path), status in ROUTES.items():
        assert method in paths.get(path, {}), (method, path)
        assert status in paths[path][method]["responses"], (method, path)
        assert "payments" in paths[path][method]["tags"]


def test_no_request_body_lets_the_client_say_who_acts_or_what_they_may() -> None:
    document = app.openapi()
    bodies = 0
    for (method, path), _ in ROUTES.items():
        operation = document["paths"][path][method]
        if method == "post":
            assert any(p["name"] == "idempotency-key" for p in operation["parameters"]), path
        if "requestBody" not in operation:
            continue
        bodies += 1
        schema = _schema_of(document, operation["requestBody"]["content"]["application/json"]["schema"])
        assert not TRUSTED_FIELDS & set(schema.get("properties", {})), (path, schema.get("properties"))
        assert schema.get("additionalProperties") is False, path  # an `actor` sent anyway is refused
    assert bodies == 9


@pytest.mark.parametrize(
    ("code", "status"),
    [
        *[(code, 404) for code in ("payment_not_found", "account_not_found", "payee_not_found", "standing_order_not_found")],
        *[(code, 409) for code in ("payment_exists", "payee_exists", "standing_order_exists", "partner_reference_conflict")],
        *[(code, 403) for code in ("forbidden", "permission_denied", "maker_cannot_approve", "not_owner")],
        ("verification_required", 428),
        *[(code, 422) for code in ("insufficient_funds", "limit_exceeded", "approval_expired", "invalid_transition",
                                   "fraud_suspected", "ledger_refused", "invalid_ifsc", "payee_cooling_off")],
    ],
)  # fmt: skip
def test_refusal_codes_of_the_payment_worker_map_to_statuses(code: str, status: int) -> None:
    assert code in set(c.PaymentError)
    assert status_for(code) == status


def test_every_payment_refusal_code_is_a_client_error() -> None:
    assert all(status_for(code) in (403, 404, 409, 422, 428) for code in c.PaymentError)


def test_one_time_password_refusals_are_403_and_the_step_up_is_428() -> None:
    # 428: the same request is accepted once repeated with a verified OTP (RFC 6585 §3).
    assert status_for("verification_required") == 428
    otp_codes = [code for code in IdentityError if code.startswith("otp_")]
    assert {code: status_for(code) for code in otp_codes} == {
        "otp_not_found": 404, "otp_invalid": 403, "otp_locked": 403, "otp_expired": 403, "otp_mismatch": 403,
        "otp_used": 403,
    }  # fmt: skip


def test_new_permissions_go_to_the_staff_who_need_them() -> None:
    holders = {role for role, granted in ROLE_PERMISSIONS.items() if Permission.cash_handle in granted}
    assert holders == {Role.teller, Role.officer, Role.admin}
    holders = {role for role, granted in ROLE_PERMISSIONS.items() if Permission.payments_reverse in granted}
    assert holders == {Role.officer, Role.admin}


# --- the routes in process -------------------------------------------------------------------


class _Correlator:
    """Stands in for the bus: records each command and answers `ok` with an empty result."""

    def __init__(self) -> None:
        self.sent: list[Command] = []

    async def send(self, command: Command, **_: object) -> Reply:
        self.sent.append(command)
        return Reply.success({})


class _Authenticator:
    """`X-API-Key: <role>` is a principal `<role>-1` with that role's permissions."""

    async def principal_from(self, authorization: str | None, api_key: str | None) -> Principal:
        if api_key not in ROLE_PERMISSIONS:
            raise AuthError(401, "unauthenticated", "no such test role")
        return Principal(subject=f"{api_key}-1", roles=(api_key,), permissions=ROLE_PERMISSIONS[api_key], via="api_key")


@pytest.fixture
async def edge() -> AsyncIterator[tuple[httpx.AsyncClient, _Correlator, RateLimiter]]:
    correlator, limiter = _Correlator(), RateLimiter()
    app.state.gateway = Gateway(correlator, 1.0)  # type: ignore[arg-type]
    app.state.authenticator = _Authenticator()
    app.state.limiter = limiter
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as client:
            yield client, correlator, limiter
    finally:
        for name in ("gateway", "authenticator", "limiter"):
            delattr(app.state, name)


async def _post(client: httpx.AsyncClient, path: str, role: str, body: Any = None) -> httpx.Response:
    return await client.post(path, headers={"X-API-Key": role, "Idempotency-Key": uuid.uuid4().hex}, json=body)


async def _status(client: httpx.AsyncClient, path: str, role: str, body: Any = None) -> int:
    return (await _post(client, path, role, body)).status_code


def _payment(kind: str, **fields: Any) -> dict[str, Any]:
    body = {"payment_id": str(uuid.uuid4()), "kind": kind, "channel": "branch", "amount": 100_00, "currency": "INR"}
    if kind != "cash_deposit":
        body["payer_account_id"] = str(uuid.uuid4())
    if kind != "cash_withdrawal":
        body["payee"] = {"account_id": str(uuid.uuid4())}
    return {**body, **fields}


async def test_a_payment_is_placed_as_the_caller_never_as_the_body_says(edge: Any) -> None:
    client, correlator, limiter = edge
    answer = await _post(client, "/v1/payments", "customer", _payment("internal"))
    assert answer.status_code == 201, answer.json()
    (command,) = correlator.sent
    assert isinstance(command, c.InitiatePayment)
    assert command.actor == "customer-1" and command.verified is False
    assert list(limiter._buckets) == [("customer-1", "payments")]  # the route class is `payments`

    for trusted in ({"actor": "someone-else"}, {"verified": True}):
        answer = await _post(client, "/v1/payments", "customer", _payment("internal", **trusted))
        assert answer.status_code == 400 and answer.json()["code"] == "invalid_message"
    assert len(correlator.sent) == 1


async def test_cash_needs_cash_handle_and_reversals_and_incoming_are_not_placed_here(edge: Any) -> None:
    client, correlator, _ = edge
    for kind in ("cash_deposit", "cash_withdrawal"):
        refused = await _post(client, "/v1/payments", "customer", _payment(kind))
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert await _status(client, "/v1/payments", "teller", _payment(kind)) == 201
    for kind in ("reversal", "incoming"):
        refused = await _post(client, "/v1/payments", "admin", _payment(kind))
        assert refused.status_code == 400 and refused.json()["code"] == "invalid_message"
        assert kind in refused.json()["detail"]
    assert [command.kind for command in correlator.sent] == ["cash_deposit", "cash_withdrawal"]


async def test_the_checker_acts_with_the_permissions_the_edge_verified(edge: Any) -> None:
    client, correlator, _ = edge
    approve, reject = f"/v1/payments/{uuid.uuid4()}/approve", f"/v1/payments/{uuid.uuid4()}/reject"
    assert await _status(client, approve, "officer") == 200  # no body at all
    assert await _status(client, approve, "officer", {}) == 200
    assert await _status(client, approve, "officer", {"permissions": ["payments:approve"]}) == 400
    assert await _status(client, reject, "officer", {"reason": "no"}) == 200
    assert await _status(client, approve, "teller") == 403
    assert await _status(client, reject, "teller", {"reason": "no"}) == 403
    assert [type(command) for command in correlator.sent] == [c.ApprovePayment, c.ApprovePayment, c.RejectPayment]
    for command in correlator.sent:
        assert command.actor == "officer-1"
        assert command.permissions == sorted(ROLE_PERMISSIONS["officer"])


async def test_changes_carry_the_path_ids_and_the_caller(edge: Any) -> None:
    client, correlator, _ = edge
    payment, customer, order = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    refund = {"refund_id": str(uuid.uuid4()), "reason": "goods returned"}
    assert await _status(client, f"/v1/payments/{payment}/refund", "customer", refund) == 201
    reversal = {"reversal_id": str(uuid.uuid4()), "reason": "keyed twice"}
    assert await _status(client, f"/v1/payments/{payment}/reverse", "teller", reversal) == 403
    assert await _status(client, f"/v1/payments/{payment}/reverse", "officer", reversal) == 201
    assert await _status(client, f"/v1/payments/{payment}/cancel", "customer", {"reason": "changed my mind"}) == 200
    payee = {"payee_id": str(uuid.uuid4()), "payee": {"vpa": "asha@bank"}}
    assert await _status(client, f"/v1/customers/{customer}/payees", "customer", payee) == 201
    standing = {"standing_order_id": str(order), "payer_account_id": str(uuid.uuid4()), "payee": {"vpa": "asha@bank"},
                "kind": "upi", "amount": 500_00, "currency": "INR", "frequency": "monthly",
                "start_date": "2030-01-01"}  # fmt: skip
    assert await _status(client, "/v1/standing-orders", "customer", standing) == 201
    assert await _status(client, f"/v1/standing-orders/{order}/cancel", "customer", {"reason": "paid off"}) == 200
    assert [type(command) for command in correlator.sent] == [
        c.RefundPayment, c.ReversePayment, c.CancelPayment, c.AddPayee, c.CreateStandingOrder, c.CancelStandingOrder,
    ]  # fmt: skip
    refunded, reversed_, cancelled, added, created, stopped = correlator.sent
    assert refunded.payment_id == reversed_.payment_id == cancelled.payment_id == payment
    assert refunded.amount is None and created.kind == "upi"
    assert added.customer_id == customer and stopped.standing_order_id == order
    assert [command.actor for command in correlator.sent] == [
        "customer-1", "officer-1", "customer-1", "customer-1", "customer-1", "customer-1",
    ]  # fmt: skip


async def test_a_change_without_an_idempotency_key_is_refused(edge: Any) -> None:
    client, correlator, _ = edge
    answer = await client.post("/v1/payments", headers={"X-API-Key": "customer"}, json=_payment("internal"))
    assert answer.status_code == 400 and answer.json()["code"] == "idempotency_key_required"
    assert correlator.sent == []


async def test_reads_are_queries_of_the_payment_worker(edge: Any) -> None:
    client, correlator, limiter = edge
    ids = [uuid.uuid4() for _ in range(5)]
    paths = [f"/v1/payments/{ids[0]}", f"/v1/accounts/{ids[1]}/payments?limit=10&cursor=abc",
             f"/v1/customers/{ids[2]}/payees", f"/v1/standing-orders/{ids[3]}",
             f"/v1/accounts/{ids[4]}/standing-orders"]  # fmt: skip
    assert [(await client.get(path, headers={"X-API-Key": "auditor"})).status_code for path in paths] == [200] * 5
    assert [type(command) for command in correlator.sent] == [
        c.GetPayment, c.ListAccountPayments, c.ListPayees, c.GetStandingOrder, c.ListStandingOrders,
    ]  # fmt: skip
    listed = correlator.sent[1]
    assert (listed.account_id, listed.limit, listed.cursor) == (ids[1], 10, "abc")
    assert list(limiter._buckets) == [("auditor-1", "payments")]  # reads are of class `payments` too
    assert await _status(client, f"/v1/payments/{ids[0]}/approve", "auditor") == 403


async def test_with_otp_headers_the_edge_verifies_first_then_places_the_order_verified(edge: Any) -> None:
    client, correlator, _ = edge
    order = _payment("internal", channel="mobile", amount=15_000_00)
    otp_id = str(uuid.uuid4())
    asked = await _post(client, "/v1/otp", "customer", {"otp_id": otp_id, "payment": order})
    assert asked.status_code == 201, asked.text
    headers = {"X-API-Key": "customer", "Idempotency-Key": uuid.uuid4().hex, "X-OTP-Id": otp_id, "X-OTP-Code": "123456"}
    placed = await client.post("/v1/payments", headers=headers, json=order)
    assert placed.status_code == 201, placed.text
    issue, verify, initiate = correlator.sent
    assert isinstance(issue, IssueOtp) and isinstance(verify, VerifyOtp) and isinstance(initiate, c.InitiatePayment)
    assert verify.purpose == issue.purpose and verify.consumed_by == order["payment_id"]
    assert verify.code.get_secret_value() == "123456" and initiate.verified is True
    assert "123456" not in repr(verify)  # a Secret: masked wherever it is printed

    # The OTP is bound to the order: another amount, payer or payee is another purpose.
    for changed in ({"amount": 15_000_01}, {"payer_account_id": str(uuid.uuid4())}, {"payee": {"account_id": str(uuid.uuid4())}}):
        assert payment_purpose({**order, **changed}) != issue.purpose
    half = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    del half["X-OTP-Code"]
    refused = await client.post("/v1/payments", headers=half, json=order)
    assert refused.status_code == 400 and len(correlator.sent) == 3


class _Unconfirming(_Correlator):
    """A bus whose broker never confirms the command (its node died under the publish)."""

    async def send(self, command: Command, **_: object) -> Reply:
        self.sent.append(command)
        raise BrokerUnavailable("the broker did not confirm payment.initiate_payment: TimeoutError()")


async def test_a_command_the_broker_did_not_confirm_is_a_503_to_retry_never_a_202(edge: Any) -> None:
    client, _, _ = edge
    app.state.gateway = Gateway(_Unconfirming(), 1.0)  # type: ignore[arg-type]
    answer = await _post(client, "/v1/payments", "customer", _payment("internal"))
    assert answer.status_code == 503 and answer.json()["code"] == "unavailable", answer.json()
    assert answer.headers["Retry-After"] == "1"


class _Exchange:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def publish(self, *_: object, **__: object) -> None:
        raise self.error


@pytest.mark.parametrize("error", [TimeoutError(), ConnectionResetError(), ChannelInvalidStateError("closed")])
async def test_a_publish_without_a_confirm_is_broker_unavailable_not_a_reply_timeout(error: BaseException) -> None:
    correlator = Correlator("amqp://unused/", user_id="cbs.edge")
    correlator._commands = _Exchange(error)  # type: ignore[assignment]  # noqa: SLF001
    with pytest.raises(BrokerUnavailable):
        await correlator.send(c.GetPayment(payment_id=uuid.uuid4()), message_id="m-1", timeout_s=1)
    assert correlator.in_flight == 0
