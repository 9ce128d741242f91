"""Restructuring, pure (workers/loan/domain/restructure.py): what is rescheduled, what is
capitalised and how it is booked, and what is refused."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from uuid import uuid4

from contracts.ledger import bank_account_id
from contracts.loan import Amortization, InterestMethod, LoanError, LoanStatus
from workers.loan.domain import restructure
from workers.loan.domain.foreclosure import Line
from workers.loan.domain.products import default_products
from workers.loan.domain.schedule import schedule

DISBURSED = dt.date(2029, 1, 15)
DRAWN = schedule(10_000_000, 1_200, 12, InterestMethod.declining, Amortization.equal_instalments, DISBURSED)


def _lines(paid: int, accrued_days_of_next: int = 0) -> list[Line]:
    """The first `paid` instalments paid, the rest owed; due ones fully accrued; the next accrued for some days."""
    lines = []
    for i in DRAWN.instalments:
        settled = i.number <= paid
        accrued = i.interest if i.due_date <= dt.date(2029, 5, 15) else 0
        lines.append(Line(i.number, i.due_date, i.principal, i.interest, i.principal if settled else 0, i.interest if settled else 0,
                          0, 0, "paid" if settled else "pending", accrued_interest=accrued))  # fmt: skip
    nxt = next(x for x in lines if x.due_date > dt.date(2029, 5, 15))
    return [replace(x, accrued_interest=nxt.interest // 31 * accrued_days_of_next) if x is nxt else x for x in lines]


def test_the_outstanding_principal_and_the_interest_owed_are_rescheduled_and_penalties_waived() -> None:
    # Paid through March; April and May due and unpaid (a penalty on April's), June's period 10 days accrued.
    lines = [replace(x, penalty_due=1_234) if x.number == 3 else x for x in _lines(paid=2, accrued_days_of_next=10)]
    t = restructure.terms(lines, dt.date(2029, 5, 25), last_number=12)
    [third, fourth, fifth] = DRAWN.instalments[2:5]
    assert t.outstanding_principal == 10_000_000 - sum(i.principal for i in DRAWN.instalments[:2])
    assert t.arrears_interest == third.interest + fourth.interest and t.accrued_interest == fifth.interest // 31 * 10
    assert (t.to_receivable, t.to_income) == (t.capitalised_interest, 0)  # all of it was accrued
    assert t.waived_penalties == 1_234 and t.principal == t.outstanding_principal + t.capitalised_interest


def test_interest_owed_that_was_never_accrued_is_income_when_capitalised() -> None:
    legacy = [replace(x, accrued_interest=0) for x in _lines(paid=2)]  # a loan from before accrual
    t = restructure.terms(legacy, dt.date(2029, 5, 25), last_number=12)
    assert (t.to_receivable, t.to_income) == (0, t.arrears_interest)
    loan_id = uuid4()
    [leg] = restructure.transfers(loan_id, uuid4(), "INR", "LN1", t)
    assert (leg.debit_account_id, leg.credit_account_id, leg.amount) == (loan_id, bank_account_id("interest_income", "INR"), t.arrears_interest)


def test_the_capitalisation_moves_the_receivable_onto_the_loans_account() -> None:
    t = restructure.terms(_lines(paid=2, accrued_days_of_next=10), dt.date(2029, 5, 25), last_number=12)
    loan_id, restructure_id = uuid4(), uuid4()
    [leg] = restructure.transfers(loan_id, restructure_id, "INR", "LN1", t)
    assert (leg.debit_account_id, leg.credit_account_id, leg.amount) == (loan_id, bank_account_id("loan_interest_receivable", "INR"),
                                                                         t.capitalised_interest)  # fmt: skip
    assert [x.id for x in restructure.transfers(loan_id, restructure_id, "INR", "LN1", t)] == [leg.id]  # asked again: the same id
    nothing = restructure.terms(_lines(paid=4), dt.date(2029, 5, 15), last_number=12)
    assert restructure.transfers(loan_id, restructure_id, "INR", "LN1", replace(nothing, arrears_interest=0, accrued_interest=0,
                                                                                to_receivable=0, to_income=0)) == []  # fmt: skip


def test_a_defaulted_loan_or_terms_beyond_the_product_are_refused() -> None:
    personal = default_products()["personal"]
    t = restructure.terms(_lines(paid=2), dt.date(2029, 5, 25), last_number=12)
    assert restructure.refusal(LoanStatus.overdue, 24, 1_400, personal, t) is None
    assert restructure.refusal(LoanStatus.defaulted, 24, 1_400, personal, t)[0] == LoanError.invalid_transition  # type: ignore[index]
    assert restructure.refusal(LoanStatus.closed, 24, 1_400, personal, t)[0] == LoanError.invalid_transition  # type: ignore[index]
    assert restructure.refusal(LoanStatus.active, 24, personal.max_rate_bps + 1, personal, t)[0] == LoanError.invalid_restructure  # type: ignore[index]
    assert restructure.refusal(LoanStatus.active, personal.max_months + 1, 1_400, personal, t)[0] == LoanError.invalid_restructure  # type: ignore[index]
    long_lived = replace(t, last_number=350)
    refused = restructure.refusal(LoanStatus.active, 11, 1_400, personal, long_lived)
    assert refused is not None and "10 months" in refused[1]  # 360 instalments in a loan's life
