"""The payment worker through its messages, with the real account and ledger workers, on the
real RabbitMQ and PostgreSQL: each kind of order to its end, with balances read from the ledger."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from contracts import account as a
from contracts import day as dy
from contracts import ledger as L
from contracts import payment as p
from contracts.common import Reply
from tests.integration.conftest import BusClient, eventually, publish_as
from tests.integration.test_account_bus import eligible_customer
from workers.payment.domain.transfers import clearing_account_id
from workers.payment.handlers import lifecycle

TELLER, OFFICER, OTHER_OFFICER = "teller-1", "officer-1", "officer-2"
APPROVE = ["payments:approve"]


async def open_account(bus: BusClient, admin_db: Any, product: str = "savings", customer_id: UUID | None = None) -> UUID:
    """An active account the payment worker knows (it learns accounts from account.opened)."""
    customer_id = customer_id or await eligible_customer(bus, admin_db)
    account_id = uuid.uuid4()
    await bus.ok(a.OpenAccount(account_id=account_id, customer_id=customer_id, product_code=product))

    async def known() -> bool:
        return bool(await admin_db.fetchval("SELECT true FROM payment.payment_account WHERE account_id = $1", account_id))

    await eventually(known)
    return account_id


async def pay(bus: BusClient, kind: p.PaymentKind, amount: int, *, payer: UUID | None = None, to: UUID | None = None,
              payee: p.Payee | None = None, actor: str = TELLER, channel: p.Channel = p.Channel.branch,
              payment_id: UUID | None = None, **fields: Any) -> Reply:  # fmt: skip
    payee = payee or (p.Payee(account_id=to) if to else None)
    command = p.InitiatePayment(payment_id=payment_id or uuid.uuid4(), kind=kind, channel=channel,
                                payer_account_id=payer, payee=payee, amount=amount, currency="INR", actor=actor,
                                **fields)  # fmt: skip
    return await bus.send(command)


async def deposit(bus: BusClient, account_id: UUID, amount: int) -> None:
    reply = await pay(bus, p.PaymentKind.cash_deposit, amount, to=account_id)
    assert reply.ok and reply.result["status"] == "completed", reply.error


async def ledger_accounts(bus: BusClient, *ids: UUID) -> dict[UUID, dict[str, Any]]:
    found = (await bus.ok(L.LookupAccounts(ids=list(ids))))["accounts"]
    return {UUID(x["id"]): x for x in found}


async def balance(bus: BusClient, account_id: UUID) -> tuple[int, int]:
    """(posted balance, pending debits) of a customer account in the ledger."""
    acc = (await ledger_accounts(bus, account_id))[account_id]
    return acc["credits_posted"] - acc["debits_posted"], acc["debits_pending"]


async def payment(bus: BusClient, payment_id: UUID) -> dict[str, Any]:
    return await bus.ok(p.GetPayment(payment_id=payment_id))


def code(reply: Reply) -> str | None:
    return reply.error.code if reply.error else None


NEFT_PAYEE = p.Payee(name="Ravi Kumar", account_number="123456789012", ifsc="HDFC0001234")


@pytest.fixture
def fast_config(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Shorter waits for this test only (the worker runs in this process)."""

    def set_config(**changes: Any) -> None:
        monkeypatch.setattr(lifecycle, "CONFIG", replace(lifecycle.CONFIG, **changes))

    return set_config


# --- each kind, to its end ----------------------------------------------------------------------


async def test_cash_deposit_internal_transfer_and_branch_withdrawal_move_exact_amounts(bus: BusClient, admin_db) -> None:
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    await deposit(bus, alice, 5_000_000)
    assert await balance(bus, alice) == (5_000_000, 0)

    reply = await pay(bus, p.PaymentKind.internal, 1_234_567, payer=alice, to=bob, actor="alice", channel=p.Channel.mobile)
    assert reply.ok, reply.error
    assert reply.result["status"] == "completed" and reply.result["fee"] == 0
    assert reply.result["reference"].startswith("INT")
    assert await balance(bus, alice) == (5_000_000 - 1_234_567, 0)
    assert await balance(bus, bob) == (1_234_567, 0)

    # A branch withdrawal of 10,000.00 costs 30.00 (banking-rules §9), posted with it.
    reply = await pay(bus, p.PaymentKind.cash_withdrawal, 1_000_000, payer=alice)
    assert reply.ok and reply.result["fee"] == 3_000, reply
    assert await balance(bus, alice) == (5_000_000 - 1_234_567 - 1_003_000, 0)

    # Every line says what it was, its payment's reference, and who was on the other side: the
    # bank's own accounts by their chart names, a customer's account by its number.
    numbers = dict(await admin_db.fetch("SELECT account_id, number FROM payment.payment_account WHERE account_id = ANY($1)",
                                        [alice, bob]))  # fmt: skip
    lines = (await bus.ok(L.GetAccountHistory(account_id=alice)))["items"]
    assert [(x["narration"], x["counterparty"], x["side"], x["amount"]) for x in lines] == [
        ("Cash deposit", "Cash in vault", "credit", 5_000_000),
        ("Transfer", numbers[bob], "debit", 1_234_567),
        ("Cash withdrawal", "Cash in vault", "debit", 1_000_000),
        ("Fee: Cash withdrawal", "Fee income", "debit", 3_000),
    ]  # fmt: skip
    assert lines[-1]["reference"] == lines[-2]["reference"] == reply.result["reference"]
    [received] = (await bus.ok(L.GetAccountHistory(account_id=bob)))["items"]
    assert (received["narration"], received["counterparty"]) == ("Transfer", numbers[alice])


async def test_insufficient_funds_fails_the_payment_and_gives_its_limit_back(bus: BusClient, admin_db) -> None:
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    await deposit(bus, alice, 100_000)
    payment_id = uuid.uuid4()
    reply = await pay(bus, p.PaymentKind.internal, 500_000, payer=alice, to=bob, payment_id=payment_id)
    assert code(reply) == "insufficient_funds"
    assert (await payment(bus, payment_id))["status"] == "failed"
    used = await admin_db.fetchval("SELECT coalesce(sum(used), 0) FROM payment.limit_usage WHERE account_id = $1", alice)
    assert used == 0
    assert await balance(bus, alice) == (100_000, 0)


async def test_a_retried_order_is_placed_once(bus: BusClient, admin_db) -> None:
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    await deposit(bus, alice, 1_000_000)
    payment_id = uuid.uuid4()
    first = await pay(bus, p.PaymentKind.internal, 10_000, payer=alice, to=bob, payment_id=payment_id)
    again = await pay(bus, p.PaymentKind.internal, 10_000, payer=alice, to=bob, payment_id=payment_id)
    other = await pay(bus, p.PaymentKind.internal, 20_000, payer=alice, to=bob, payment_id=payment_id)
    assert first.ok and again.ok and again.result["reference"] == first.result["reference"]
    assert code(other) == "payment_exists"
    assert await balance(bus, bob) == (10_000, 0)


async def test_formats_and_shapes_are_refused_with_their_own_codes(bus: BusClient, admin_db) -> None:
    alice = await open_account(bus, admin_db)
    bad_ifsc = p.Payee(name="X", account_number="123456789", ifsc="HDFC1234567")
    assert code(await pay(bus, p.PaymentKind.neft, 1_000, payer=alice, payee=bad_ifsc)) == "invalid_ifsc"
    short = p.Payee(name="X", account_number="12345", ifsc="HDFC0001234")
    assert code(await pay(bus, p.PaymentKind.imps, 1_000, payer=alice, payee=short)) == "invalid_account_number"
    assert code(await pay(bus, p.PaymentKind.upi, 1_000, payer=alice, payee=p.Payee(vpa="admin@ybl"))) == "invalid_vpa"
    assert code(await pay(bus, p.PaymentKind.upi, 1_000, payer=alice, payee=NEFT_PAYEE)) == "invalid_payee"
    assert code(await pay(bus, p.PaymentKind.internal, 1_000, payer=alice, to=alice)) == "accounts_must_be_different"
    too_big = await pay(bus, p.PaymentKind.upi, 2_500_001, payer=alice, payee=p.Payee(vpa="ravi@ybl"))
    assert code(too_big) == "rail_amount_above_maximum"
    assert code(await pay(bus, p.PaymentKind.rtgs, 1_000, payer=alice, payee=NEFT_PAYEE)) == "rail_amount_below_minimum"


# --- limits under concurrency ---------------------------------------------------------------------


async def test_concurrent_orders_never_exceed_the_daily_limit(bus: BusClient, admin_db) -> None:
    """Savings: 100,000.00 a day. 30 orders of 9,000.00 at once: exactly 11 fit."""
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    await deposit(bus, alice, 50_000_000)
    replies = await asyncio.gather(*(
        pay(bus, p.PaymentKind.internal, 900_000, payer=alice, to=bob) for _ in range(30)
    ))  # fmt: skip
    accepted = [r for r in replies if r.ok]
    assert {code(r) for r in replies if not r.ok} == {"limit_exceeded"}
    assert len(accepted) == 11
    assert sum(r.result["amount"] for r in accepted) <= 10_000_000
    assert await balance(bus, bob) == (11 * 900_000, 0)


# --- maker-checker ------------------------------------------------------------------------------------


async def test_a_large_order_waits_for_a_checker_who_is_not_the_maker(bus: BusClient, admin_db) -> None:
    alice, bob = await open_account(bus, admin_db, "current"), await open_account(bus, admin_db)
    await deposit(bus, alice, 30_000_000)
    payment_id = uuid.uuid4()
    reply = await pay(bus, p.PaymentKind.internal, 15_000_000, payer=alice, to=bob, actor=OFFICER, payment_id=payment_id)
    assert reply.ok and reply.result["status"] == "pending", reply
    assert await balance(bus, alice) == (30_000_000, 15_000_000)  # held while it waits

    own = await bus.send(p.ApprovePayment(payment_id=payment_id, actor=OFFICER, permissions=APPROVE))
    assert code(own) == "maker_cannot_approve"
    unentitled = await bus.send(p.ApprovePayment(payment_id=payment_id, actor=OTHER_OFFICER, permissions=[]))
    assert code(unentitled) == "permission_denied"

    approved = await bus.send(p.ApprovePayment(payment_id=payment_id, actor=OTHER_OFFICER, permissions=APPROVE))
    assert approved.ok and approved.result["status"] == "completed" and approved.result["approver"] == OTHER_OFFICER
    assert await balance(bus, alice) == (15_000_000, 0)
    assert await balance(bus, bob) == (15_000_000, 0)
    again = await bus.send(p.ApprovePayment(payment_id=payment_id, actor="officer-3", permissions=APPROVE))
    assert code(again) == "invalid_transition"


async def test_a_rejected_or_expired_approval_releases_the_hold(bus: BusClient, admin_db, fast_config) -> None:
    alice, bob = await open_account(bus, admin_db, "current"), await open_account(bus, admin_db)
    await deposit(bus, alice, 30_000_000)
    rejected_id = uuid.uuid4()
    assert (await pay(bus, p.PaymentKind.internal, 10_000_000, payer=alice, to=bob, payment_id=rejected_id)).ok
    reply = await bus.send(p.RejectPayment(payment_id=rejected_id, actor=OFFICER, permissions=APPROVE, reason="no"))
    assert reply.ok and reply.result["status"] == "failed" and reply.result["failure_code"] == "rejected"
    assert await balance(bus, alice) == (30_000_000, 0)

    fast_config(approval_ttl=timedelta(seconds=1))
    expiring = uuid.uuid4()
    assert (await pay(bus, p.PaymentKind.internal, 10_000_000, payer=alice, to=bob, payment_id=expiring)).ok

    async def expired() -> bool:
        return (await payment(bus, expiring))["failure_code"] == "approval_expired"

    await eventually(expired, timeout_s=15)

    async def released() -> bool:
        # The payment fails first, then voids its hold through the ledger (a saga step): not at once.
        return await balance(bus, alice) == (30_000_000, 0)

    await eventually(released)
    assert await balance(bus, bob) == (0, 0)


async def test_cancel_releases_a_waiting_payment(bus: BusClient, admin_db) -> None:
    alice, bob = await open_account(bus, admin_db, "current"), await open_account(bus, admin_db)
    await deposit(bus, alice, 30_000_000)
    payment_id = uuid.uuid4()
    assert (await pay(bus, p.PaymentKind.internal, 10_000_000, payer=alice, to=bob, payment_id=payment_id)).ok
    reply = await bus.send(p.CancelPayment(payment_id=payment_id, actor=TELLER, reason="customer changed mind"))
    assert reply.ok and reply.result["status"] == "cancelled"
    assert await balance(bus, alice) == (30_000_000, 0)
    again = await bus.send(p.CancelPayment(payment_id=payment_id, actor=TELLER, reason="again"))
    assert code(again) == "invalid_transition"


# --- external rails and the clearing partner ----------------------------------------------------------



async def test_atm_withdrawals_beyond_the_products_free_ones_pay_its_fee(bus: BusClient, admin_db) -> None:
    """The shipped savings product: 5 free ATM withdrawals a month, then 20.00 each, linked with the
    withdrawal; a withdrawal the ledger refuses is not counted."""
    alice = await open_account(bus, admin_db)
    await deposit(bus, alice, 1_000_000)
    terms = await admin_db.fetchrow("SELECT free_atm_withdrawals, atm_fee FROM payment.payment_account WHERE account_id = $1", alice)
    assert (terms["free_atm_withdrawals"], terms["atm_fee"]) == (5, 2_000)  # learnt from account.opened

    async def atm(amount: int) -> Reply:
        return await pay(bus, p.PaymentKind.cash_withdrawal, amount, payer=alice, channel=p.Channel.atm)

    fees = []
    for _ in range(6):
        reply = await atm(10_000)
        assert reply.ok and reply.result["status"] == "completed", reply.error
        fees.append(reply.result["fee"])
    assert fees == [0, 0, 0, 0, 0, 2_000]
    refused = await atm(930_000)  # more than the account holds above its minimum: failed, and not counted
    assert code(refused) == "insufficient_funds", refused
    seventh = await atm(10_000)
    assert seventh.ok and seventh.result["fee"] == 2_000
    assert await balance(bus, alice) == (1_000_000 - 7 * 10_000 - 2 * 2_000, 0)
    counted = await admin_db.fetchval("SELECT used FROM payment.limit_usage WHERE account_id = $1 AND period = 'atm_month'", alice)
    assert counted == 7

async def test_external_payment_settled_rejected_and_timed_out(bus: BusClient, admin_db, fast_config) -> None:
    alice = await open_account(bus, admin_db)
    await deposit(bus, alice, 10_000_000)
    clearing = clearing_account_id(p.PaymentKind.imps, "INR")
    before = (await ledger_accounts(bus, clearing))[clearing]["credits_posted"]

    settled = uuid.uuid4()
    reply = await pay(bus, p.PaymentKind.imps, 5_000_000, payer=alice, payee=NEFT_PAYEE, payment_id=settled)
    assert reply.ok and reply.result["status"] == "processing" and reply.result["fee"] == 10_000, reply
    assert await balance(bus, alice) == (10_000_000, 5_010_000)
    done = await bus.send(p.SettlePayment(payment_id=settled, partner_reference="CLR-1", settled_at=datetime.now(UTC)))
    assert done.ok and done.result["status"] == "completed", done
    repeat = await bus.send(p.SettlePayment(payment_id=settled, partner_reference="CLR-1", settled_at=datetime.now(UTC)))
    assert repeat.ok and repeat.result["status"] == "completed"
    assert await balance(bus, alice) == (4_990_000, 0)
    assert (await ledger_accounts(bus, clearing))[clearing]["credits_posted"] == before + 5_000_000
    # The posted lines keep their holds' words: the beneficiary outside the bank, not the clearing account.
    posted = [x for x in (await bus.ok(L.GetAccountHistory(account_id=alice)))["items"] if not x["pending"]]
    assert [(x["narration"], x["counterparty"], x["amount"]) for x in posted[-2:]] == [
        ("IMPS to Ravi Kumar", "Ravi Kumar · HDFC0001234 · 123456789012", 5_000_000),
        ("Fee: IMPS to Ravi Kumar", "Fee income", 10_000),
    ]  # fmt: skip

    refused = uuid.uuid4()
    assert (await pay(bus, p.PaymentKind.imps, 1_000_000, payer=alice, payee=NEFT_PAYEE, payment_id=refused)).ok
    reply = await bus.send(p.RejectExternalPayment(payment_id=refused, partner_reference="CLR-2", reason="account closed"))
    assert reply.ok and reply.result["status"] == "failed"
    assert await balance(bus, alice) == (4_990_000, 0)

    fast_config(settlement_timeout=timedelta(seconds=1))
    silent = uuid.uuid4()
    assert (await pay(bus, p.PaymentKind.imps, 1_000_000, payer=alice, payee=NEFT_PAYEE, payment_id=silent)).ok

    async def timed_out() -> bool:
        return (await payment(bus, silent))["failure_code"] == "settlement_timeout"

    await eventually(timed_out, timeout_s=15)
    await eventually(lambda: _no_pending(bus, alice))
    late = await bus.send(p.SettlePayment(payment_id=silent, partner_reference="CLR-3", settled_at=datetime.now(UTC)))
    assert code(late) == "invalid_transition"  # never posted after its hold was released
    assert await balance(bus, alice) == (4_990_000, 0)


async def _no_pending(bus: BusClient, account_id: UUID) -> bool:
    return (await balance(bus, account_id))[1] == 0


async def test_neft_waits_for_its_batch_window(bus: BusClient, admin_db) -> None:
    alice = await open_account(bus, admin_db)
    await deposit(bus, alice, 1_000_000)
    reply = await pay(bus, p.PaymentKind.neft, 100_000, payer=alice, payee=NEFT_PAYEE)
    assert reply.ok and reply.result["status"] == "pending", reply
    assert datetime.fromisoformat(reply.result["execute_at"]) >= datetime.now(UTC) + timedelta(minutes=9)
    assert await balance(bus, alice) == (1_000_000, 100_200)


async def test_incoming_credit_repeated_by_the_partner_is_credited_once(bus: BusClient, admin_db) -> None:
    alice = await open_account(bus, admin_db)
    number = await admin_db.fetchval("SELECT number FROM payment.payment_account WHERE account_id = $1", alice)
    credit = p.IncomingCredit(partner_reference=f"UTR{uuid.uuid4().hex[:12]}", rail=p.PaymentKind.neft,
                              payee_account_number=number, payer_name="Acme Ltd", amount=250_000, currency="INR")  # fmt: skip
    first, second = await bus.send(credit), await bus.send(credit)  # two message ids, one reference
    assert first.ok and second.ok and first.result["payment_id"] == second.result["payment_id"]
    assert first.result["status"] == "completed"
    assert await balance(bus, alice) == (250_000, 0)
    conflict = await bus.send(credit.model_copy(update={"amount": 1}))
    assert code(conflict) == "partner_reference_conflict"
    unknown = await bus.send(credit.model_copy(update={"partner_reference": "UTR-x", "payee_account_number": "999"}))
    assert code(unknown) == "account_not_found"


# --- refunds and reversals ----------------------------------------------------------------------------


async def test_partial_then_full_refund_and_never_more(bus: BusClient, admin_db) -> None:
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    await deposit(bus, alice, 1_000_000)
    await deposit(bus, bob, 10_000)  # a savings account keeps its minimum balance of 100.00
    original = uuid.uuid4()
    assert (await pay(bus, p.PaymentKind.internal, 300_000, payer=alice, to=bob, payment_id=original)).ok
    part = await bus.send(p.RefundPayment(refund_id=uuid.uuid4(), payment_id=original, amount=100_000, actor=TELLER, reason="r"))
    assert part.ok and part.result["status"] == "completed" and part.result["refund_of"] == str(original)
    too_much = await bus.send(p.RefundPayment(refund_id=uuid.uuid4(), payment_id=original, amount=200_001, actor=TELLER, reason="r"))
    assert code(too_much) == "refund_exceeds_amount"
    rest = await bus.send(p.RefundPayment(refund_id=uuid.uuid4(), payment_id=original, actor=TELLER, reason="r"))
    assert rest.ok and rest.result["amount"] == 200_000
    view = await payment(bus, original)
    assert view["status"] == "refunded" and view["refunded_amount"] == 300_000
    assert await balance(bus, alice) == (1_000_000, 0)
    assert await balance(bus, bob) == (10_000, 0)


async def test_reversal_returns_principal_and_fee(bus: BusClient, admin_db) -> None:
    alice = await open_account(bus, admin_db)
    await deposit(bus, alice, 10_000_000)
    original = uuid.uuid4()
    assert (await pay(bus, p.PaymentKind.imps, 5_000_000, payer=alice, payee=NEFT_PAYEE, payment_id=original)).ok
    assert (await bus.send(p.SettlePayment(payment_id=original, partner_reference="CLR-R", settled_at=datetime.now(UTC)))).ok
    assert await balance(bus, alice) == (4_990_000, 0)
    reversal = await bus.send(p.ReversePayment(reversal_id=uuid.uuid4(), payment_id=original, actor=OFFICER, reason="bank error"))
    assert reversal.ok and reversal.result["kind"] == "reversal" and reversal.result["fee"] == 10_000, reversal
    assert await balance(bus, alice) == (10_000_000, 0)
    assert (await payment(bus, original))["status"] == "refunded"


# --- payees -------------------------------------------------------------------------------------------


async def test_a_new_payee_cannot_be_paid_during_its_cooling_off(bus: BusClient, admin_db, fast_config) -> None:
    alice = await open_account(bus, admin_db)
    await deposit(bus, alice, 1_000_000)
    customer_id = await admin_db.fetchval("SELECT customer_id FROM payment.payment_account WHERE account_id = $1", alice)
    payee_id = uuid.uuid4()
    added = await bus.send(p.AddPayee(payee_id=payee_id, customer_id=customer_id, payee=p.Payee(vpa="Ravi.K@YBL"), actor="alice"))
    assert added.ok and added.result["payee"]["vpa"] == "ravi.k@ybl"
    listed = await bus.ok(p.ListPayees(customer_id=customer_id))
    assert [x["payee_id"] for x in listed["items"]] == [str(payee_id)]
    again = await bus.send(p.AddPayee(payee_id=payee_id, customer_id=customer_id, payee=p.Payee(vpa="ravi.k@ybl"), actor="alice"))
    assert again.ok and again.result["added_at"] == added.result["added_at"]  # a retry, not a second payee
    other = await bus.send(p.AddPayee(payee_id=payee_id, customer_id=customer_id, payee=p.Payee(vpa="sita@ybl"), actor="alice"))
    assert code(other) == "payee_exists"

    fast_config(payee_cooling_off=timedelta(hours=1))
    early = await pay(bus, p.PaymentKind.upi, 10_000, payer=alice, payee=p.Payee(vpa="ravi.k@ybl"), payee_id=payee_id)
    assert code(early) == "payee_cooling_off"
    fast_config(payee_cooling_off=timedelta(0))
    later = await pay(bus, p.PaymentKind.upi, 10_000, payer=alice, payee=p.Payee(vpa="ravi.k@ybl"), payee_id=payee_id)
    assert later.ok and later.result["status"] == "processing", later
    # Still within 24 h of adding it: scored (+30 new payee over the base 10).
    assert later.result["fraud_score"] == 40


# --- standing orders ----------------------------------------------------------------------------------


@pytest.fixture
async def business_today(bus: BusClient, admin_db) -> Any:
    """The open business date, as the day worker published it and payments learned it: a standing
    order starting "today" is due today, whatever day the tests run."""
    opened = date.fromisoformat((await bus.ok(dy.GetBusinessDay()))["business_date"])

    async def learned() -> bool:
        return await admin_db.fetchval("SELECT business_date FROM payment.business_day") == opened

    await eventually(learned)
    return opened


async def test_a_standing_order_due_today_is_placed_once_and_completes(bus: BusClient, admin_db, business_today) -> None:
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    await deposit(bus, alice, 1_000_000)
    start = business_today
    order_id = uuid.uuid4()
    created = await bus.send(p.CreateStandingOrder(
        standing_order_id=order_id, payer_account_id=alice, payee=p.Payee(account_id=bob), kind=p.PaymentKind.internal,
        amount=12_345, currency="INR", frequency=p.Frequency.monthly, start_date=start, actor="alice",
    ))  # fmt: skip
    assert created.ok and created.result["status"] == "active", created

    async def paid() -> bool:
        return await balance(bus, bob) == (12_345, 0) if await _occurrences(admin_db, order_id) else False

    await eventually(paid, timeout_s=15)
    await asyncio.sleep(2)  # more sweeps: nothing more is placed
    assert await _occurrences(admin_db, order_id) == 1
    assert await balance(bus, bob) == (12_345, 0)
    view = await bus.ok(p.GetStandingOrder(standing_order_id=order_id))
    assert view["failures"] == 0 and view["next_date"] > start.isoformat()
    cancelled = await bus.send(p.CancelStandingOrder(standing_order_id=order_id, actor="alice", reason="moved out"))
    assert cancelled.ok and cancelled.result["status"] == "cancelled" and cancelled.result["next_date"] is None


async def test_a_standing_order_refused_for_funds_is_reported(bus: BusClient, admin_db, business_today) -> None:
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    order_id = uuid.uuid4()
    start = business_today
    assert (await bus.send(p.CreateStandingOrder(
        standing_order_id=order_id, payer_account_id=alice, payee=p.Payee(account_id=bob), kind=p.PaymentKind.internal,
        amount=5_000, currency="INR", frequency=p.Frequency.weekly, start_date=start, actor="alice",
    ))).ok  # fmt: skip

    async def failed_once() -> bool:
        return (await bus.ok(p.GetStandingOrder(standing_order_id=order_id)))["failures"] == 1

    await eventually(failed_once, timeout_s=15)
    assert await balance(bus, bob) == (0, 0)
    past = (start - timedelta(days=1))
    refused = await bus.send(p.CreateStandingOrder(
        standing_order_id=uuid.uuid4(), payer_account_id=alice, payee=p.Payee(account_id=bob), kind=p.PaymentKind.internal,
        amount=5_000, currency="INR", frequency=p.Frequency.weekly, start_date=past, actor="alice",
    ))  # fmt: skip
    assert code(refused) == "invalid_schedule"


async def test_a_standing_order_is_refused_from_an_account_that_cannot_pay(bus: BusClient, admin_db, business_today) -> None:
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    await bus.ok(a.FreezeAccount(account_id=alice, actor="officer-1", reason="court order"))

    async def frozen_here() -> bool:
        status = await admin_db.fetchval("SELECT status FROM payment.payment_account WHERE account_id = $1", alice)
        return bool(status == "frozen")

    await eventually(frozen_here)
    refused = await bus.send(p.CreateStandingOrder(
        standing_order_id=uuid.uuid4(), payer_account_id=alice, payee=p.Payee(account_id=bob), kind=p.PaymentKind.internal,
        amount=5_000, currency="INR", frequency=p.Frequency.weekly, start_date=business_today, actor="alice",
    ))  # fmt: skip
    assert code(refused) == "account_not_active"


async def _occurrences(admin_db: Any, order_id: UUID) -> int:
    return await admin_db.fetchval(
        "SELECT count(*) FROM payment.standing_order_occurrence WHERE standing_order_id = $1", order_id
    )


async def test_account_payments_are_listed_newest_first_with_a_cursor(bus: BusClient, admin_db) -> None:
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    await deposit(bus, alice, 1_000_000)
    for amount in (1_000, 2_000, 3_000):
        assert (await pay(bus, p.PaymentKind.internal, amount, payer=alice, to=bob)).ok
    first = await bus.ok(p.ListAccountPayments(account_id=alice, limit=2))
    assert [x["amount"] for x in first["items"]] == [3_000, 2_000]
    rest = await bus.ok(p.ListAccountPayments(account_id=alice, limit=2, cursor=first["next_cursor"]))
    assert [x["amount"] for x in rest["items"]] == [1_000, 1_000_000]  # the deposit credited alice
    assert rest["next_cursor"] is None


# --- every rail to completed ---------------------------------------------------------------------------


async def _settle_when_submitted(bus: BusClient, payment_id: UUID, reference: str) -> dict[str, Any]:
    async def submitted() -> bool:
        return (await payment(bus, payment_id))["status"] == "processing"

    await eventually(submitted, timeout_s=15)
    done = await bus.send(p.SettlePayment(payment_id=payment_id, partner_reference=reference, settled_at=datetime.now(UTC)))
    assert done.ok and done.result["status"] == "completed", done
    return done.result


async def _batch_time_has_come(admin_db: Any, payment_id: UUID) -> None:
    """The clock's part, done by hand: the payment's rail window opens now (the sweep does the rest)."""
    await admin_db.execute("UPDATE payment.payment SET execute_at = now() WHERE payment_id = $1", payment_id)


async def test_neft_goes_out_with_its_batch_and_settles(bus: BusClient, admin_db) -> None:
    alice = await open_account(bus, admin_db)
    await deposit(bus, alice, 1_000_000)
    payment_id = uuid.uuid4()
    placed = await pay(bus, p.PaymentKind.neft, 100_000, payer=alice, payee=NEFT_PAYEE, payment_id=payment_id)
    assert placed.ok and placed.result["status"] == "pending" and placed.result["reference"].startswith("NEFT")
    await _batch_time_has_come(admin_db, payment_id)
    done = await _settle_when_submitted(bus, payment_id, "NEFT-UTR-1")
    assert done["fee"] == 200
    assert await balance(bus, alice) == (1_000_000 - 100_200, 0)


async def test_rtgs_needs_its_minimum_a_checker_and_its_window(bus: BusClient, admin_db) -> None:
    alice = await open_account(bus, admin_db, "current")
    await deposit(bus, alice, 30_000_000)
    payment_id = uuid.uuid4()
    placed = await pay(bus, p.PaymentKind.rtgs, 20_000_000, payer=alice, payee=NEFT_PAYEE, payment_id=payment_id, actor=OFFICER)
    assert placed.ok and placed.result["status"] == "pending", placed  # 200,000.00 ≥ the approval threshold
    approved = await bus.send(p.ApprovePayment(payment_id=payment_id, actor=OTHER_OFFICER, permissions=APPROVE))
    assert approved.ok and approved.result["approver"] == OTHER_OFFICER
    if approved.result["status"] == "pending":  # outside RTGS hours: it waits for the next window
        await _batch_time_has_come(admin_db, payment_id)
    await _settle_when_submitted(bus, payment_id, "RTGS-UTR-1")
    assert await balance(bus, alice) == (30_000_000 - 20_040_000, 0)  # fee 0.2 % = 40,000


async def test_upi_goes_out_at_once_and_settles(bus: BusClient, admin_db) -> None:
    alice = await open_account(bus, admin_db)
    await deposit(bus, alice, 1_000_000)
    payment_id = uuid.uuid4()
    placed = await pay(bus, p.PaymentKind.upi, 250_000, payer=alice, payee=p.Payee(vpa="Ravi@OKSBI"), payment_id=payment_id)
    assert placed.ok and placed.result["status"] == "processing" and placed.result["payee"]["vpa"] == "ravi@oksbi"
    await _settle_when_submitted(bus, payment_id, "UPI-1")
    assert await balance(bus, alice) == (1_000_000 - 250_500, 0)


async def test_a_scheduled_payment_runs_once_on_its_date(bus: BusClient, admin_db, business_today) -> None:
    alice, bob = await open_account(bus, admin_db), await open_account(bus, admin_db)
    await deposit(bus, alice, 1_000_000)
    order_id = uuid.uuid4()
    created = await bus.send(p.CreateStandingOrder(
        standing_order_id=order_id, payer_account_id=alice, payee=p.Payee(account_id=bob), kind=p.PaymentKind.internal,
        amount=4_321, currency="INR", frequency=p.Frequency.once, start_date=business_today, actor="alice",
    ))  # fmt: skip
    assert created.ok, created

    async def ended() -> bool:
        return (await bus.ok(p.GetStandingOrder(standing_order_id=order_id)))["status"] == "ended"

    await eventually(ended, timeout_s=15)
    await asyncio.sleep(1.5)
    assert await _occurrences(admin_db, order_id) == 1
    assert await balance(bus, bob) == (4_321, 0)


# --- orders placed together ---------------------------------------------------------------------


@pytest.fixture
def wide_batches(workers: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Orders sent in one burst commit as one batch: the window is wide enough to gather them all."""
    committer = workers["payment"].committers[p.InitiatePayment]
    monkeypatch.setattr(committer, "limits", replace(committer.limits, window_ms=300))


async def test_orders_placed_together_ask_the_ledger_once_and_each_gets_its_own_outcome(
    bus: BusClient, admin_db, wide_batches
) -> None:
    """One joint ledger command for the batch (bus/joint.py); a payer without funds fails alone, a
    withdrawal's fee stays linked to its principal, and a repeated joint reply moves nothing."""
    alice, bob, carol = [await open_account(bus, admin_db) for _ in range(3)]
    await deposit(bus, alice, 5_000_000)
    joints_before = await admin_db.fetchval("SELECT count(*) FROM payment.saga_step WHERE kind = 'joint'")

    replies = await asyncio.gather(
        *(pay(bus, p.PaymentKind.internal, 10_000 + n, payer=alice, to=bob) for n in range(12)),
        pay(bus, p.PaymentKind.internal, 5_000, payer=carol, to=bob),  # carol has nothing
        pay(bus, p.PaymentKind.cash_withdrawal, 1_000_000, payer=alice),  # 30.00 fee, linked
    )

    *transfers, broke, withdrawal = replies
    assert all(r.ok and r.result["status"] == "completed" for r in transfers), [r.error for r in transfers]
    assert code(broke) == "insufficient_funds"
    assert withdrawal.ok and withdrawal.result["fee"] == 3_000, withdrawal.error
    sent = sum(10_000 + n for n in range(12))
    assert await balance(bus, bob) == (sent, 0)
    assert await balance(bus, alice) == (5_000_000 - sent - 1_003_000, 0)
    assert await balance(bus, carol) == (0, 0)
    joints = await admin_db.fetch(
        "SELECT step_id, state FROM payment.saga_step WHERE kind = 'joint' ORDER BY created_at OFFSET $1", joints_before
    )
    assert joints, "the burst was not joined into one ledger command"
    members = [m for j in joints for m in json.loads(j["state"])["members"]]
    assert len(members) > len(joints)  # several orders per ledger command
    joint_ids = [j["step_id"] for j in joints]
    ledger_commands = await admin_db.fetchval(
        "SELECT count(*) FROM ledger.inbox WHERE consumer = 'ledger.create_transfers' AND message_id = ANY($1::text[])",
        joint_ids,
    )
    assert ledger_commands == len(joints)

    # The ledger's reply delivered again (a crash before the ack): the stored answers go out again,
    # nothing moves twice and no payment changes.
    payments_before = await admin_db.fetch("SELECT payment_id, status, updated_at FROM payment.payment ORDER BY 1")
    again = Reply.success({"results": []})
    await publish_as("ledger", "payment.replies", again.model_dump_json().encode(), exchange="",
                     correlation_id=joint_ids[0], message_id=f"{joint_ids[0]}.reply", type=Reply.message_type)  # fmt: skip

    async def consumed() -> bool:
        return bool(await admin_db.fetchval(
            "SELECT count(*) = 0 FROM payment.saga_step WHERE step_id = $1 AND completed_at IS NULL", joint_ids[0]
        ))  # fmt: skip

    await eventually(consumed)
    await asyncio.sleep(0.5)  # time for a wrong second effect to show
    assert await admin_db.fetch("SELECT payment_id, status, updated_at FROM payment.payment ORDER BY 1") == payments_before
    assert await balance(bus, bob) == (sent, 0)


async def test_payments_learn_the_business_date_and_the_holidays_from_the_day_worker(bus: BusClient, admin_db) -> None:
    view = await bus.ok(dy.GetBusinessDay())
    holiday = date.fromisoformat(view["next_business_date"])

    async def learned(name: str | None) -> Any:
        async def check() -> bool:
            row = await admin_db.fetchrow("SELECT name FROM payment.holiday WHERE holiday_date = $1", holiday)
            return row is not None and row["name"] == name

        return await eventually(check)

    await bus.ok(dy.AddHoliday(date=holiday, name="Payments' holiday"))
    await learned("Payments' holiday")
    await bus.ok(dy.RemoveHoliday(date=holiday))
    await learned(None)

    async def date_learned() -> bool:
        found = await admin_db.fetchval("SELECT business_date FROM payment.business_day")
        return found == date.fromisoformat(view["business_date"])

    await eventually(date_learned)
