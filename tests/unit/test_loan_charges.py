"""Late fees (banking-rules §5 "Repayment": allocation penalty → charges → interest → principal), pure."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from uuid import uuid4

from contracts.ledger import bank_account_id
from contracts.loan import Amortization, InterestMethod
from workers.loan.domain import foreclosure, repayment, write_off
from workers.loan.domain.accrual import Receipt
from workers.loan.domain.foreclosure import Line
from workers.loan.domain.repayment import Owed, Share
from workers.loan.domain.schedule import schedule


def test_the_late_fee_is_charged_once_and_only_past_the_grace_days() -> None:
    assert repayment.late_fee_due(days_late=7, grace_days=7, charged=False, late_fee=50_000) == 0
    assert repayment.late_fee_due(days_late=8, grace_days=7, charged=False, late_fee=50_000) == 50_000
    assert repayment.late_fee_due(days_late=30, grace_days=7, charged=True, late_fee=50_000) == 0
    assert repayment.late_fee_due(days_late=30, grace_days=7, charged=False, late_fee=0) == 0


def test_a_payment_takes_the_penalty_then_the_charges_then_interest_then_principal() -> None:
    owed = [Owed(2, interest=8_375, principal=164_173, penalty=120, charges=50_000), Owed(3, 6_733, 165_815)]
    assert repayment.allocate(owed, 50_100)[0] == "amount_below_due"  # type: ignore[index]
    assert repayment.allocate(owed, 222_668) == [Share(2, 8_375, 164_173, 120, 50_000)]
    assert repayment.allocate(owed, 222_668 + 1_000) == [Share(2, 8_375, 164_173, 120, 50_000), Share(3, 1_000, 0)]
    [penalty, charges, interest, principal] = repayment.payment_transfers(
        uuid4(), uuid4(), uuid4(), "INR", "LN1", [Share(2, 8_375, 164_173, 120, 50_000)], Receipt(8_375, 0, 0))
    assert (charges.credit_account_id, charges.amount, charges.code) == (bank_account_id("fee_income", "INR"), 50_000, "fee")
    assert [t.flags.linked for t in (penalty, charges, interest, principal)] == [True, True, True, False]


def test_foreclosure_and_write_off_count_the_late_fees_owed() -> None:
    disbursed = dt.date(2029, 1, 15)
    drawn = schedule(10_000_000, 1_200, 12, InterestMethod.declining, Amortization.equal_instalments, disbursed)
    lines = [Line(i.number, i.due_date, i.principal, i.interest, 0, 0, 0, 0, "partially_paid" if i.number == 1 else "pending")
             for i in drawn.instalments]  # fmt: skip
    late = [replace(x, charges_due=50_000) if x.number == 1 else x for x in lines]
    on = drawn.instalments[0].due_date + dt.timedelta(days=20)
    without, with_fee = foreclosure.quote(lines, on, disbursed, 1_200, 200, 7), foreclosure.quote(late, on, disbursed, 1_200, 200, 7)
    assert (with_fee.charges, with_fee.total - without.total) == (50_000, 50_000)
    chain = foreclosure.transfers(uuid4(), uuid4(), uuid4(), "INR", "LN1", with_fee, late)
    assert [t.amount for t in chain if t.credit_account_id == bank_account_id("fee_income", "INR")] == [50_000, with_fee.prepayment_charge]
    assert write_off.claim(late, on).total - write_off.claim(lines, on).total == 50_000


def test_the_ids_of_an_instalments_debits_are_known_without_making_them() -> None:
    loan_id, account = uuid4(), uuid4()
    for interest, principal, receivable in ((8_375, 164_173, 8_375), (8_375, 164_173, 0), (8_375, 164_173, 5_000), (0, 0, 0), (0, 9, 0)):
        due = repayment.Due(loan_id, 2, principal, interest, account, "INR", "LN1", receivable=receivable)
        assert repayment.part_ids(due) == [t.id for t in repayment.transfers(due)]
