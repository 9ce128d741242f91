"""The ledger worker through its messages, against the real RabbitMQ and PostgreSQL.

Every test makes its own accounts (fresh uuid4 ids), so tests never see each other's money.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from bus.settings import load
from contracts import ledger as L
from contracts.common import MAX_AMOUNT, Reply
from bus.paging import encode_cursor
from contracts.ledger import (
    BANK_ACCOUNT_CODES,
    MAX_BALANCE,
    MAX_TIMEOUT_S,
    AccountFlags,
    NewAccount,
    NewTransfer,
    TransferFlags,
    bank_account_id,
)
from contracts.ledger import TransferResultCode as R
from ops.ask import ask_once
from ops.cli import main as cbs
from tests.integration.conftest import BusClient, eventually
from tests.ledger_oracle import BALANCE_FIELDS

BALANCES = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
ZERO = UUID(int=0)


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class A:
    """An account to create: `dr` = debits_must_not_exceed_credits, `cr` = credits_must_not_exceed_debits.

    `fund` moves that much in from a fresh funding account without flags (for a `cr` account,
    an asset, the account is debited instead so its debit-normal balance grows).
    """

    currency: str = "INR"
    dr: bool = False
    cr: bool = False
    limit: int = 0
    fund: int = 0
    history: bool = False
    code: str = "customer_deposit"


def F(**flags: bool) -> TransferFlags:
    return TransferFlags(**flags)


def nt(
    debit: UUID | None = None,
    credit: UUID | None = None,
    amount: int = 100,
    *,
    currency: str = "INR",
    code: str = "internal_transfer",
    id: UUID | None = None,
    **fields: Any,
) -> NewTransfer:
    return NewTransfer(id=id or uuid4(), debit_account_id=debit, credit_account_id=credit, amount=amount,
                       currency=currency, code=code, **fields)  # fmt: skip


async def create(bus: BusClient, *transfers: NewTransfer, message_id: str | None = None) -> list[dict[str, Any]]:
    result = await bus.ok(L.CreateTransfers(transfers=list(transfers)), message_id=message_id)
    assert [r["index"] for r in result["results"]] == list(range(len(transfers)))
    return result["results"]


def codes(results: list[dict[str, Any]]) -> list[str]:
    return [r["result"] for r in results]


async def transfer(bus: BusClient, *args: Any, **fields: Any) -> str:
    """One transfer; its result code."""
    [result] = await create(bus, nt(*args, **fields))
    return result["result"]


async def accounts(bus: BusClient, *specs: A) -> list[UUID]:
    ids = [uuid4() for _ in specs]
    funders = {s.currency: uuid4() for s in specs if s.fund}
    new = [
        NewAccount(id=i, currency=s.currency, code=s.code, overdraft_limit=s.limit,
                   flags=AccountFlags(debits_must_not_exceed_credits=s.dr, credits_must_not_exceed_debits=s.cr,
                                      history=s.history))  # fmt: skip
        for i, s in zip(ids, specs, strict=True)
    ] + [NewAccount(id=f, currency=currency, code="suspense") for currency, f in funders.items()]
    result = await bus.ok(L.CreateAccounts(accounts=new))
    assert codes(result["results"]) == ["ok"] * len(new)
    funding = [
        nt(i, funders[s.currency], s.fund, currency=s.currency, code="deposit") if s.cr
        else nt(funders[s.currency], i, s.fund, currency=s.currency, code="deposit")
        for i, s in zip(ids, specs, strict=True)
        if s.fund
    ]  # fmt: skip
    if funding:
        assert codes(await create(bus, *funding)) == ["ok"] * len(funding)
    return ids


async def lookup(bus: BusClient, *ids: UUID) -> dict[UUID, dict[str, Any]]:
    found = (await bus.ok(L.LookupAccounts(ids=list(ids))))["accounts"]
    return {UUID(a["id"]): a for a in found}


async def balances(bus: BusClient, *ids: UUID) -> dict[UUID, tuple[int, ...]]:
    found = await lookup(bus, *ids)
    assert set(found) == set(ids), "every watched account exists"
    return {i: tuple(a[k] for k in BALANCES) for i, a in found.items()}


async def transfers_of(bus: BusClient, *ids: UUID) -> dict[UUID, dict[str, Any]]:
    found = (await bus.ok(L.LookupTransfers(ids=list(ids))))["transfers"]
    return {UUID(t["id"]): t for t in found}


async def set_flags(bus: BusClient, account_id: UUID, action: str) -> Reply:
    return await bus.send(L.SetAccountFlags(account_id=account_id, action=action, actor="officer-7", reason="test"))


def ts(result: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(result["timestamp"])


# --- every TransferResultCode ----------------------------------------------------------------


@dataclass
class Probe:
    """The CreateTransfers under test, the accounts it must leave alone on failure."""

    transfers: list[NewTransfer]  # the first result must carry the code under test
    watch: list[UUID]
    expect: list[str] | None = None  # every result, when the others matter too
    raw: dict[str, Any] | None = None  # a body the contract refuses, sent as is


Case = Callable[[BusClient, R], Awaitable[Probe]]
CASES: dict[R, Case] = {}


def case(*result_codes: R) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        for code in result_codes:
            assert code not in CASES, f"two cases for {code}"
            CASES[code] = fn
        return fn

    return register


@case(R.ok)
async def _ok(bus: BusClient, code: R) -> Probe:
    d, c = await accounts(bus, A(dr=True, fund=1_000), A(currency="INR", limit=300))
    return Probe([nt(d, c, 400)], [d, c])


@case(R.linked_event_failed)
async def _linked_failed(bus: BusClient, code: R) -> Probe:
    d, c = await accounts(bus, A(dr=True, fund=1_000), A())
    # The first applies in memory, the second then exceeds what is left: both undone.
    chain = [nt(d, c, 400, flags=F(linked=True)), nt(d, c, 700)]
    return Probe(chain, [d, c], expect=[R.linked_event_failed, R.exceeds_credits])


@case(R.linked_event_chain_open)
async def _chain_open(bus: BusClient, code: R) -> Probe:
    d, c = await accounts(bus, A(fund=1_000), A())
    # The batch ends inside a chain: none of it is tried.
    chain = [nt(d, c, 100, flags=F(linked=True)), nt(d, c, 100, flags=F(linked=True))]
    return Probe(chain, [d, c], expect=[R.linked_event_chain_open] * 2)


@case(R.id_must_not_be_zero)
async def _zero_id(bus: BusClient, code: R) -> Probe:
    d, c = await accounts(bus, A(fund=1_000), A())
    return Probe([nt(d, c, 100, id=ZERO)], [d, c])


@case(R.exists, *(c for c in R if c.startswith("exists_with_different_")))
async def _exists(bus: BusClient, code: R) -> Probe:
    d, c, d2, c2 = await accounts(bus, A(fund=10_000), A(), A(fund=10_000, currency="INR"), A())
    setup: list[NewTransfer] = []
    original = nt(d, c, 100, reference="r-1", user_data={"k": "v"})
    name = code.removeprefix("exists_with_different_")
    if name == "pending_id":  # a post of one hold, retried as the post of another
        h1, h2 = nt(d, c, 300, flags=F(pending=True)), nt(d, c, 300, flags=F(pending=True))
        setup = [h1, h2]
        original = nt(None, None, 0, flags=F(post_pending=True), pending_id=h1.id)
    elif name == "timeout":
        original = nt(d, c, 300, flags=F(pending=True), timeout_s=3_600)
    assert codes(await create(bus, *setup, original)) == ["ok"] * (len(setup) + 1)
    changes: dict[str, Any] = {
        "exists": {},
        "flags": {"flags": F(balancing_debit=True)},
        "pending_id": {"pending_id": setup[1].id if setup else None},
        "timeout": {"timeout_s": 7_200},
        "debit_account_id": {"debit_account_id": d2},
        "credit_account_id": {"credit_account_id": c2},
        "amount": {"amount": 101},
        "currency": {"currency": "USD"},
        "code": {"code": "fee"},
        "reference": {"reference": "r-2"},
        "user_data": {"user_data": {"k": "w"}},
    }[name]
    return Probe([original.model_copy(update=changes)], [d, c, d2, c2])


@case(R.id_already_failed)
async def _already_failed(bus: BusClient, code: R) -> Probe:
    d, c = await accounts(bus, A(dr=True, fund=100), A())
    failing = nt(d, c, 1_000)
    assert codes(await create(bus, failing)) == [R.exceeds_credits]
    return Probe([failing.model_copy(update={"amount": 50})], [d, c])  # would succeed under a new id


@case(
    R.flags_are_mutually_exclusive, R.debit_account_id_required, R.credit_account_id_required,
    R.accounts_must_be_different, R.pending_id_must_be_zero, R.pending_id_required,
    R.timeout_reserved_for_pending_transfer, R.amount_must_not_be_zero, R.debit_account_not_found,
    R.credit_account_not_found, R.currency_mismatch,
)  # fmt: skip
async def _request(bus: BusClient, code: R) -> Probe:
    d, c, u = await accounts(bus, A(fund=1_000), A(), A(currency="USD"))
    probe = {
        R.flags_are_mutually_exclusive: lambda: nt(d, c, 100, flags=F(pending=True, post_pending=True)),
        R.debit_account_id_required: lambda: nt(None, c, 100),
        R.credit_account_id_required: lambda: nt(d, None, 100),
        R.accounts_must_be_different: lambda: nt(d, d, 100),
        R.pending_id_must_be_zero: lambda: nt(d, c, 100, pending_id=uuid4()),
        R.pending_id_required: lambda: nt(None, None, 0, flags=F(post_pending=True)),
        R.timeout_reserved_for_pending_transfer: lambda: nt(d, c, 100, timeout_s=60),
        R.amount_must_not_be_zero: lambda: nt(d, c, 0),
        R.debit_account_not_found: lambda: nt(uuid4(), c, 100),
        R.credit_account_not_found: lambda: nt(d, uuid4(), 100),
        R.currency_mismatch: lambda: nt(d, u, 100),  # INR account, USD account, INR transfer
    }[code]()
    return Probe([probe], [d, c, u])


@case(
    R.pending_transfer_not_found, R.pending_transfer_not_pending, R.pending_transfer_has_different_debit_account_id,
    R.pending_transfer_has_different_credit_account_id, R.exceeds_pending_transfer_amount,
    R.pending_transfer_has_different_amount, R.pending_transfer_already_posted, R.pending_transfer_already_voided,
    R.pending_transfer_expired,
)  # fmt: skip
async def _two_phase(bus: BusClient, code: R) -> Probe:
    d, c, d2, c2 = await accounts(bus, A(dr=True, fund=1_000), A(), A(dr=True, fund=1_000), A())
    hold = nt(d, c, 300, flags=F(pending=True), timeout_s=1 if code == R.pending_transfer_expired else 0)
    plain = nt(d, c, 50)
    assert codes(await create(bus, hold, plain)) == [R.ok, R.ok]
    post, void = F(post_pending=True), F(void_pending=True)
    if code == R.pending_transfer_already_posted:
        assert await transfer(bus, flags=post, pending_id=hold.id, amount=0) == R.ok
    elif code == R.pending_transfer_already_voided:
        assert await transfer(bus, flags=void, pending_id=hold.id, amount=0) == R.ok
    elif code == R.pending_transfer_expired:
        await asyncio.sleep(2)

        async def expired() -> bool:  # settle the release first, so the probe alone is measured
            return (await transfers_of(bus, hold.id))[hold.id]["status"] == "pending_expired"

        await eventually(expired, timeout_s=10)
    probe = {
        R.pending_transfer_not_found: lambda: nt(None, None, 0, flags=post, pending_id=uuid4()),
        R.pending_transfer_not_pending: lambda: nt(None, None, 0, flags=post, pending_id=plain.id),
        R.pending_transfer_has_different_debit_account_id: lambda: nt(d2, None, 0, flags=post, pending_id=hold.id),
        R.pending_transfer_has_different_credit_account_id: lambda: nt(None, c2, 0, flags=post, pending_id=hold.id),
        R.exceeds_pending_transfer_amount: lambda: nt(None, None, 301, flags=post, pending_id=hold.id),
        R.pending_transfer_has_different_amount: lambda: nt(None, None, 100, flags=void, pending_id=hold.id),
        R.pending_transfer_already_posted: lambda: nt(None, None, 0, flags=void, pending_id=hold.id),
        R.pending_transfer_already_voided: lambda: nt(None, None, 0, flags=post, pending_id=hold.id),
        R.pending_transfer_expired: lambda: nt(d, c, 0, flags=post, pending_id=hold.id),
    }[code]()
    return Probe([probe], [d, c, d2, c2])


@case(R.debit_account_frozen, R.credit_account_frozen, R.debit_account_already_closed, R.credit_account_already_closed)
async def _account_state(bus: BusClient, code: R) -> Probe:
    d, c, empty = await accounts(bus, A(fund=1_000, currency="USD"), A(currency="USD"), A(currency="USD"))
    target, action, probe = {
        R.debit_account_frozen: (d, "freeze", nt(d, c, 100, currency="USD")),
        R.credit_account_frozen: (c, "freeze", nt(d, c, 100, currency="USD")),
        R.debit_account_already_closed: (empty, "close", nt(empty, c, 100, currency="USD")),
        R.credit_account_already_closed: (empty, "close", nt(d, empty, 100, currency="USD")),
    }[code]
    assert (await set_flags(bus, target, action)).ok
    return Probe([probe], [d, c, empty])


# amount ≤ MAX_AMOUNT (10**17), balances ≤ MAX_BALANCE (2**63-1): 92 full transfers leave less
# than one more, so the 93rd overflows. Funding accounts without flags can be debited that far.
FILL = MAX_BALANCE // MAX_AMOUNT
assert FILL * MAX_AMOUNT <= MAX_BALANCE < (FILL + 1) * MAX_AMOUNT


async def fill(bus: BusClient, debit: UUID, credit: UUID, n: int, *, pending: bool) -> None:
    batch = [nt(debit, credit, MAX_AMOUNT, currency="USD", code="deposit", flags=F(pending=pending)) for _ in range(n)]
    assert codes(await create(bus, *batch)) == ["ok"] * n


@case(
    R.overflows_debits_pending, R.overflows_credits_pending, R.overflows_debits_posted, R.overflows_credits_posted,
    R.overflows_debits, R.overflows_credits,
)  # fmt: skip
async def _overflow(bus: BusClient, code: R) -> Probe:
    d, c, d2, c2 = await accounts(bus, *(A(currency="USD", code="suspense") for _ in range(4)))
    name = code.removeprefix("overflows_")
    if name in ("debits", "credits"):  # neither side alone overflows, pending + posted does
        await fill(bus, d, c, FILL // 2, pending=True)
        await fill(bus, d, c, FILL - FILL // 2, pending=False)
    else:
        await fill(bus, d, c, FILL, pending=name.endswith("pending"))
    pending = name.endswith("pending")
    # The filled side is the probe's debit (d, fresh credit c2) or its credit (fresh debit d2, c).
    debit, credit = (d, c2) if name.startswith("debits") else (d2, c)
    probe = nt(debit, credit, MAX_AMOUNT, currency="USD", flags=F(pending=pending))
    return Probe([probe], [d, c, d2, c2])


@case(R.overflows_timeout)
async def _overflow_timeout(bus: BusClient, code: R) -> Probe:
    # Unreachable through the contract: timeout_s ≤ MAX_TIMEOUT_S (one year) and now + one year
    # never overflows a datetime. The engine's check stays as a guard; through the bus the
    # contract refuses the shape (invalid_message) before the ledger sees it.
    d, c = await accounts(bus, A(fund=1_000), A())
    body = nt(d, c, 100, flags=F(pending=True)).model_dump(mode="json")
    return Probe([], [d, c], raw={"transfers": [{**body, "timeout_s": MAX_TIMEOUT_S + 1}]})


@case(R.exceeds_credits, R.exceeds_debits)
async def _limits(bus: BusClient, code: R) -> Probe:
    # A liability with an overdraft limit of 500 and 1,000 in it; an asset with 200 of headroom.
    liability, asset, other = await accounts(
        bus, A(dr=True, limit=500, fund=1_000), A(cr=True, limit=200, fund=1_000, code="loan_principal"), A()
    )
    probe = nt(liability, other, 1_501) if code == R.exceeds_credits else nt(other, asset, 1_201)
    return Probe([probe], [liability, asset, other])


async def raw_request(bus: BusClient, command: type[L.Command], payload: dict[str, Any]) -> Reply:
    return await bus.correlator.request(command.routing_key, payload, command.message_type,
                                        message_id=uuid4().hex, timeout_s=10)  # fmt: skip


def test_the_cases_cover_every_transfer_result_code() -> None:
    assert set(CASES) == set(R)


@pytest.mark.parametrize("code", list(R), ids=str)
async def test_transfer_result_code(bus: BusClient, code: R) -> None:
    probe = await CASES[code](bus, code)
    before = await balances(bus, *probe.watch)
    if probe.raw is not None:
        reply = await raw_request(bus, L.CreateTransfers, probe.raw)
        assert reply.error is not None and reply.error.code == "invalid_message", reply
    else:
        got = codes(await create(bus, *probe.transfers))
        assert got[0] == code, got
        if probe.expect is not None:
            assert got == probe.expect
    after = await balances(bus, *probe.watch)
    if code == R.ok:
        [d, c] = probe.watch
        assert (after[d][1] - before[d][1], after[c][3] - before[c][3]) == (400, 400)
    else:  # `exists` included: the transfer is there already, the retry moves nothing
        assert after == before, "a refused transfer must not change balances"


async def test_amount_above_max_amount_is_refused_by_the_contract(bus: BusClient) -> None:
    d, c = await accounts(bus, A(fund=1_000), A())
    body = nt(d, c, 100).model_dump(mode="json")
    reply = await raw_request(bus, L.CreateTransfers, {"transfers": [{**body, "amount": MAX_AMOUNT + 1}]})
    assert reply.error is not None and reply.error.code == "invalid_message"
    assert (await transfers_of(bus, UUID(body["id"]))) == {}


# --- accounts ---------------------------------------------------------------------------------


async def test_create_accounts_results(bus: BusClient, admin_db) -> None:
    owner = uuid4()
    base = NewAccount(id=uuid4(), currency="INR", code="customer_deposit", owner_id=owner, overdraft_limit=500,
                      flags=AccountFlags(debits_must_not_exceed_credits=True))  # fmt: skip
    both = AccountFlags(debits_must_not_exceed_credits=True, credits_must_not_exceed_debits=True)
    assert codes((await bus.ok(L.CreateAccounts(accounts=[base])))["results"]) == ["ok"]
    clash = NewAccount(id=uuid4(), currency="USD", code="customer_deposit", flags=both)
    batch = [
        base,
        base.model_copy(update={"user_data": {"note": "annotation, not identity"}}),
        base.model_copy(update={"currency": "USD"}),
        base.model_copy(update={"code": "loan_principal"}),
        base.model_copy(update={"flags": AccountFlags()}),
        base.model_copy(update={"overdraft_limit": 0}),
        base.model_copy(update={"owner_id": uuid4()}),
        clash,
        NewAccount(id=ZERO, currency="INR", code="customer_deposit"),
    ]
    results = (await bus.ok(L.CreateAccounts(accounts=batch)))["results"]
    assert codes(results) == [
        "exists", "exists", "exists_with_different_currency", "exists_with_different_code",
        "exists_with_different_flags", "exists_with_different_overdraft_limit", "exists_with_different_owner_id",
        "flags_are_mutually_exclusive", "id_must_not_be_zero",
    ]  # fmt: skip
    found = await lookup(bus, base.id, clash.id, ZERO)
    assert list(found) == [base.id]
    view = found[base.id]
    shape = (view["currency"], view["code"], view["overdraft_limit"], view["owner_id"])
    assert shape == ("INR", "customer_deposit", 500, str(owner))
    assert view["flags"]["debits_must_not_exceed_credits"] and (view["balance"], view["available"]) == (0, 500)  # its overdraft
    created = await admin_db.fetchval(
        "SELECT count(*) FROM ledger.outbox WHERE routing_key = 'ledger.account_created' AND payload->>'id' = $1",
        str(base.id),
    )
    assert created == 1


async def test_set_account_flags_freeze_unfreeze_and_close(bus: BusClient, admin_db) -> None:
    d, c = await accounts(bus, A(dr=True, fund=1_000), A())
    hold = nt(d, c, 200, flags=F(pending=True))
    assert codes(await create(bus, hold)) == [R.ok]

    frozen = await bus.ok(L.SetAccountFlags(account_id=d, action="freeze", actor="officer-7", reason="court order"))
    assert frozen["frozen"] is True and frozen["closed"] is False
    assert await transfer(bus, d, c, 100) == R.debit_account_frozen
    assert await transfer(bus, c, d, 100) == R.credit_account_frozen
    assert await transfer(bus, flags=F(post_pending=True), pending_id=hold.id, amount=0) == R.debit_account_frozen
    # A freeze never traps money held before it: the void still releases.
    assert await transfer(bus, flags=F(void_pending=True), pending_id=hold.id, amount=0) == R.ok
    assert (await set_flags(bus, d, "freeze")).ok, "freezing a frozen account is a harmless repeat"

    unfrozen = await bus.ok(L.SetAccountFlags(account_id=d, action="unfreeze", actor="officer-7", reason="lifted"))
    assert unfrozen["frozen"] is False
    assert await transfer(bus, d, c, 100) == R.ok

    refused = await set_flags(bus, d, "close")
    assert refused.error is not None and refused.error.code == "close_refused_nonzero_balance"
    assert await transfer(bus, d, c, 900) == R.ok  # now empty
    incoming = nt(c, d, 50, flags=F(pending=True))
    assert codes(await create(bus, incoming)) == [R.ok]
    refused = await set_flags(bus, d, "close")
    assert refused.error is not None and refused.error.code == "close_refused_pending_transfers"
    assert await transfer(bus, flags=F(void_pending=True), pending_id=incoming.id, amount=0) == R.ok

    closed = await bus.ok(L.SetAccountFlags(account_id=d, action="close", actor="officer-7", reason="request"))
    assert closed["closed"] is True and closed["balance"] == 0
    for action in ("close", "freeze", "unfreeze"):
        again = await set_flags(bus, d, action)
        assert again.error is not None and again.error.code == "account_already_closed"
    assert await transfer(bus, c, d, 100) == R.credit_account_already_closed

    unknown = await set_flags(bus, uuid4(), "freeze")
    assert unknown.error is not None and unknown.error.code == "account_not_found"

    changes = await admin_db.fetch(
        "SELECT payload FROM ledger.outbox WHERE routing_key = 'ledger.account_flags_changed' "
        "AND payload->>'account_id' = $1 ORDER BY id",
        str(d),
    )
    states = [(p["frozen"], p["closed"]) for p in (json.loads(r["payload"]) for r in changes)]
    assert states == [(True, False), (True, False), (False, False), (False, True)]


# --- reads -----------------------------------------------------------------------------------


async def test_lookup_transfers_follows_a_hold_to_its_post(bus: BusClient) -> None:
    d, c = await accounts(bus, A(dr=True, fund=1_000), A())
    hold = nt(d, c, 300, flags=F(pending=True), reference="pay-1", user_data={"rail": "neft"})
    [held] = await create(bus, hold)
    assert (held["result"], held["amount"]) == ("ok", 300)
    view = (await transfers_of(bus, hold.id))[hold.id]
    shape = (view["status"], view["amount"], view["reference"], view["user_data"])
    assert shape == ("pending", 300, "pay-1", {"rail": "neft"})
    assert (await lookup(bus, d))[d]["available"] == 700

    post = nt(None, None, 200, flags=F(post_pending=True), pending_id=hold.id)
    [posted] = await create(bus, post)
    assert (posted["result"], posted["amount"]) == ("ok", 200)
    views = await transfers_of(bus, hold.id, post.id, uuid4())
    assert set(views) == {hold.id, post.id}, "unknown ids are absent"
    assert views[hold.id]["status"] == "pending_posted"
    p = views[post.id]
    assert (p["status"], p["pending_id"], p["debit_account_id"], p["credit_account_id"]) == (
        "posted", str(hold.id), str(d), str(c)
    )
    # The partial post moved 200 and released the other 100.
    assert (await balances(bus, d, c)) == {d: (0, 200, 0, 1_000), c: (0, 0, 0, 200)}


async def test_account_history_and_balance_at(bus: BusClient) -> None:
    x, other = await accounts(bus, A(history=True, fund=5_000), A(fund=10_000))
    batch = [
        nt(x, other, 100, code="fee"),
        nt(other, x, 250),
        nt(x, other, 75, code="fee"),
        nt(x, other, 40, code="hold", flags=F(pending=True)),
        nt(x, other, 10, code="fee"),
    ]
    results = await create(bus, *batch)
    assert codes(results) == ["ok"] * 5
    stamps = [ts(r) for r in results]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5, "timestamps strictly increase within a batch"

    # (code, amount, side, pending, balances after) for x, oldest first: the funding deposit, then the batch.
    expected = [
        ("deposit", 5_000, "credit", False, (0, 0, 0, 5_000)),
        ("fee", 100, "debit", False, (0, 100, 0, 5_000)),
        ("internal_transfer", 250, "credit", False, (0, 100, 0, 5_250)),
        ("fee", 75, "debit", False, (0, 175, 0, 5_250)),
        ("hold", 40, "debit", True, (40, 175, 0, 5_250)),
        ("fee", 10, "debit", False, (40, 185, 0, 5_250)),
    ]
    entries, cursor, pages = [], None, 0
    while True:
        page = await bus.ok(L.GetAccountHistory(account_id=x, limit=2, cursor=cursor))
        assert len(page["items"]) <= 2
        entries += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    got = [(e["code"], e["amount"], e["side"], e["pending"], tuple(e[k] for k in BALANCES)) for e in entries]
    assert got == expected
    assert [e["transfer_id"] for e in entries[1:]] == [str(t.id) for t in batch]
    assert [datetime.fromisoformat(e["timestamp"]) for e in entries[1:]] == stamps

    fees = await bus.ok(L.GetAccountHistory(account_id=x, code="fee"))
    assert [e["amount"] for e in fees["items"]] == [100, 75, 10] and fees["next_cursor"] is None
    window = await bus.ok(L.GetAccountHistory(account_id=x, since=stamps[1], until=stamps[3]))
    assert [e["transfer_id"] for e in window["items"]] == [str(batch[1].id), str(batch[2].id)]
    forged = await bus.send(L.GetAccountHistory(account_id=x, cursor=encode_cursor("not-a-seq")))
    assert forged.error is not None and forged.error.code == "invalid_message"
    unknown = await bus.send(L.GetAccountHistory(account_id=uuid4()))
    assert unknown.error is not None and unknown.error.code == "account_not_found"

    async def at(when: datetime) -> tuple[int, ...]:
        b = await bus.ok(L.GetBalanceAt(account_id=x, at=when))
        assert b["balance"] == b["credits_posted"] - b["debits_posted"]
        return tuple(b[k] for k in BALANCES)

    first = datetime.fromisoformat(entries[0]["timestamp"])
    assert await at(first - timedelta(microseconds=1)) == (0, 0, 0, 0)
    assert await at(first) == (0, 0, 0, 5_000)
    assert await at(stamps[0]) == (0, 100, 0, 5_000)
    assert await at(stamps[1] - timedelta(microseconds=1)) == (0, 100, 0, 5_000)
    assert await at(stamps[2]) == (0, 175, 0, 5_250)
    assert await at(datetime.now(UTC) + timedelta(seconds=1)) == (40, 185, 0, 5_250)


async def test_verify_finds_debits_equal_credits(bus: BusClient) -> None:
    d, c, u, v = await accounts(bus, A(fund=1_000), A(), A(currency="USD", fund=500), A(currency="USD"))
    assert codes(await create(bus, nt(d, c, 300), nt(u, v, 20, currency="USD", flags=F(pending=True)))) == ["ok", "ok"]
    result = await bus.ok(L.Verify())
    assert result["ok"] is True and result["mismatches"] == []
    assert result["accounts_checked"] >= 4 and result["transfers_checked"] >= 4
    totals = {t["currency"]: t for t in result["totals"]}
    assert {"INR", "USD"} <= set(totals)
    for t in totals.values():
        assert t["debits_posted"] == t["credits_posted"] and t["debits_pending"] == t["credits_pending"]
    assert totals["USD"]["debits_pending"] >= 20


async def test_verify_reports_a_balance_that_differs_from_its_transfers(bus: BusClient, admin_db) -> None:
    # Through `ask_once`, as `cbs ledger verify` asks. The account row has the oracle's shape.
    [x] = await accounts(bus, A(fund=700))
    await admin_db.execute("UPDATE ledger.ledger_account SET credits_posted = credits_posted + 1 WHERE id = $1", x)
    try:
        reply = await ask_once(L.Verify(), load().process_amqp_url("ops"), timeout_s=60)
    finally:
        await admin_db.execute("UPDATE ledger.ledger_account SET credits_posted = credits_posted - 1 WHERE id = $1", x)
    assert reply.ok and isinstance(reply.result, dict)
    result = reply.result
    assert result["ok"] is False
    [row] = [m for m in result["mismatches"] if m.get("id") == str(x)]
    assert set(row) == {"id", *BALANCE_FIELDS, *(f"expected_{f}" for f in BALANCE_FIELDS)}
    assert (row["credits_posted"], row["expected_credits_posted"], row["debits_posted"]) == (701, 700, 0)
    [inr] = [m for m in result["mismatches"] if m.get("currency") == "INR"]
    assert inr["field"] == "debits_posted" and inr["expected"] - inr["stored"] == 1
    assert (await bus.ok(L.Verify()))["ok"] is True  # restored


async def test_cbs_ledger_verify_asks_the_running_ledger(capsys: pytest.CaptureFixture[str]) -> None:
    # `cbs` runs its own event loop: in a thread, while this loop keeps the workers answering.
    assert await asyncio.to_thread(cbs, ["ledger", "verify", "--timeout", "60"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["ok"] is True and reply["result"]["ok"] is True and reply["result"]["mismatches"] == []


# --- expiry, events, idempotency --------------------------------------------------------------


async def test_the_sweep_releases_an_expired_hold_on_its_own(bus: BusClient, admin_db) -> None:
    d, c = await accounts(bus, A(dr=True, fund=1_000), A())
    hold = nt(d, c, 300, flags=F(pending=True), timeout_s=1, code="hold")
    assert codes(await create(bus, hold)) == [R.ok]
    assert (await lookup(bus, d))[d]["debits_pending"] == 300

    async def expired() -> bool:
        return (await transfers_of(bus, hold.id))[hold.id]["status"] == "pending_expired"

    await eventually(expired, timeout_s=8, interval_s=0.2)
    assert await balances(bus, d, c) == {d: (0, 0, 0, 1_000), c: (0, 0, 0, 0)}
    facts = await committed_facts(admin_db, "pending_id", hold.id)
    voided = [f for f in facts if f["kind"] == "voided"]
    assert len(voided) == 1
    event = voided[0]
    assert (event["reason"], event["id"], event["amount"]) == ("expired", str(hold.id), 300)
    assert event["debit_account"]["debits_pending"] == 0 and event["credit_account"]["credits_pending"] == 0
    # Once expired it cannot be posted.
    assert await transfer(bus, flags=F(post_pending=True), pending_id=hold.id, amount=0) == R.pending_transfer_expired


async def committed_facts(admin_db, field: str, value: object) -> list[dict]:
    """The transfers of every `ledger.transfers_committed` in the outbox whose `field` is `value`."""
    rows = await admin_db.fetch(
        "SELECT t FROM ledger.outbox, jsonb_array_elements(payload->'transfers') AS t "
        "WHERE routing_key = 'ledger.transfers_committed' AND t->>$1 = $2", field, str(value),
    )  # fmt: skip
    return [json.loads(r["t"]) if isinstance(r["t"], str) else r["t"] for r in rows]


async def test_a_posted_transfer_emits_its_fact_with_balances(bus: BusClient, admin_db) -> None:
    d, c = await accounts(bus, A(dr=True, fund=1_000), A())
    t = nt(d, c, 250, reference="inv-9")
    assert codes(await create(bus, t)) == [R.ok]
    facts = await committed_facts(admin_db, "id", t.id)
    assert len(facts) == 1 and facts[0]["kind"] == "posted"
    event = facts[0]
    assert (event["amount"], event["currency"], event["reference"]) == (250, "INR", "inv-9")
    now = await balances(bus, d, c)
    for side, account in (("debit_account", d), ("credit_account", c)):
        assert event[side]["account_id"] == str(account)
        assert tuple(event[side][k] for k in BALANCES) == now[account]
    assert now[d] == (0, 250, 0, 1_000) and now[c] == (0, 0, 0, 250)
    assert event["debit_owner_id"] is None and event["credit_owner_id"] is None


async def test_idempotency_by_message_id_and_by_transfer_id(bus: BusClient, admin_db) -> None:
    d, c = await accounts(bus, A(dr=True, fund=1_000), A())
    command = L.CreateTransfers(transfers=[nt(d, c, 100), nt(d, c, 200, code="fee")])
    key = f"transfers-{uuid4()}"
    first = await bus.send(command, message_id=key)
    second = await bus.send(command, message_id=key)
    assert first.ok and first == second
    assert codes(first.result["results"]) == ["ok", "ok"]  # type: ignore[index]
    after = await balances(bus, d, c)
    assert after == {d: (0, 300, 0, 1_000), c: (0, 0, 0, 300)}
    # One event carries the command's two facts, and the repeat published nothing more.
    events = await admin_db.fetch(
        "SELECT payload FROM ledger.outbox WHERE routing_key = 'ledger.transfers_committed' "
        "AND payload->'transfers'->0->>'id' = $1", str(command.transfers[0].id),
    )  # fmt: skip
    assert len(events) == 1
    payload = events[0]["payload"]
    payload = json.loads(payload) if isinstance(payload, str) else payload
    assert [(f["id"], f["kind"]) for f in payload["transfers"]] == [(str(t.id), "posted") for t in command.transfers]

    again = await bus.send(command, message_id=f"transfers-{uuid4()}")
    assert again.ok
    results = again.result["results"]  # type: ignore[index]
    assert codes(results) == ["exists", "exists"]
    originals = first.result["results"]  # type: ignore[index]
    assert [(r["amount"], r["timestamp"]) for r in results] == [(r["amount"], r["timestamp"]) for r in originals]
    assert await balances(bus, d, c) == after

    other = L.CreateTransfers(transfers=[nt(d, c, 1)])
    reused = await bus.send(other, message_id=key)
    assert reused.error is not None and reused.error.code == "idempotency_key_reused"
    assert await balances(bus, d, c) == after

    # The same message delivered several times at once (they may share one group commit).
    racing = L.CreateTransfers(transfers=[nt(d, c, 7)])
    race_key = f"transfers-{uuid4()}"
    replies = await asyncio.gather(*(bus.send(racing, message_id=race_key) for _ in range(4)))
    assert replies[0].ok and all(r == replies[0] for r in replies)
    assert codes(replies[0].result["results"]) == ["ok"]  # type: ignore[index]
    assert (await balances(bus, d))[d] == (0, 307, 0, 1_000)


async def test_the_banks_own_accounts_exist_for_inr(bus: BusClient) -> None:
    vault = bank_account_id("cash_vault", "INR")
    found = await lookup(bus, vault)
    assert found[vault]["currency"] == "INR" and found[vault]["code"] == "cash_vault"
    ids = {bank_account_id(code, "INR"): code for code in BANK_ACCOUNT_CODES}
    everything = await lookup(bus, *ids)
    assert {i: a["code"] for i, a in everything.items()} == ids


async def test_close_with_payout_pays_everything_out_below_the_minimum_and_closes(bus: BusClient, admin_db) -> None:
    """A savings account with a 100.00 minimum: 2,500.00 in, 2,400.00 out; closing pays the last
    100.00 out and closes it, in one transaction. A repeat cannot pay twice."""
    savings, other = await accounts(bus, A(dr=True, limit=-10_000, fund=250_000), A(dr=True))
    assert (await lookup(bus, savings))[savings]["available"] == 240_000
    assert await transfer(bus, savings, other, 240_001) == "exceeds_credits"
    assert await transfer(bus, savings, other, 240_000) == "ok"
    closing = L.SetAccountFlags(account_id=savings, action="close", actor="officer-1", reason="customer leaves",
                                payout_account_id=other)  # fmt: skip
    view = await bus.ok(closing)
    assert view["closed"] and view["balance"] == 0 and view["available"] == 0
    assert (await lookup(bus, other))[other]["balance"] == 250_000
    payout = (await bus.ok(L.LookupTransfers(ids=[L.closure_transfer_id(savings)])))["transfers"][0]
    assert (payout["amount"], payout["code"], payout["credit_account_id"]) == (10_000, "account_closure", str(other))
    facts = await admin_db.fetchval(
        "SELECT count(*) FROM ledger.outbox WHERE routing_key = 'ledger.transfers_committed' "
        "AND payload->'transfers'->0->>'id' = $1", str(L.closure_transfer_id(savings)),
    )  # fmt: skip
    assert facts == 1
    again = await bus.send(closing)
    assert again.error is not None and again.error.code == "account_already_closed"
    assert (await lookup(bus, other))[other]["balance"] == 250_000, "paid once"
    assert (await bus.ok(L.Verify()))["ok"]


async def test_close_with_payout_is_refused_with_a_hold_open_when_overdrawn_or_to_a_closed_account(bus: BusClient) -> None:
    held, other, overdrawn, closed = await accounts(bus, A(dr=True, fund=1_000), A(dr=True), A(dr=True, limit=500), A())
    assert await transfer(bus, held, other, 300, flags=F(pending=True)) == "ok"
    refused = await bus.send(L.SetAccountFlags(account_id=held, action="close", actor="o", reason="r", payout_account_id=other))
    assert refused.error is not None and refused.error.code == "close_refused_pending_transfers"
    assert await transfer(bus, overdrawn, other, 200) == "ok"
    refused = await bus.send(L.SetAccountFlags(account_id=overdrawn, action="close", actor="o", reason="r",
                                               payout_account_id=other))  # fmt: skip
    assert refused.error is not None and refused.error.code == "close_refused_nonzero_balance"
    await bus.ok(L.SetAccountFlags(account_id=closed, action="close", actor="o", reason="r"))
    funded, = await accounts(bus, A(dr=True, fund=700))
    refused = await bus.send(L.SetAccountFlags(account_id=funded, action="close", actor="o", reason="r",
                                               payout_account_id=closed))  # fmt: skip
    assert refused.error is not None and refused.error.code == "payout_refused"
    assert refused.error.details == {"result": "credit_account_already_closed"}
    view = (await lookup(bus, funded))[funded]
    assert not view["closed"] and view["balance"] == 700, "nothing moved, nothing closed"
    missing = await bus.send(L.SetAccountFlags(account_id=funded, action="close", actor="o", reason="r",
                                               payout_account_id=uuid4()))  # fmt: skip
    assert missing.error is not None and missing.error.code == "payout_account_not_found"
