"""Close of business as a property (issue 11): any sequence of days, whatever the customers do
between closes, keeps the books balanced.

Each scenario is a few savings accounts (a minimum balance, some at a rate, a maintenance and a
shortfall fee) and a run of calendar days from a random start. Each business day the customers
deposit and withdraw (some refused: the ledger's floor), then the day closes as the workers close
it, from their pure domains: the day-end balances are taken, savings interest accrues on them
(`interest.accrue`) and each ended period posts rounded once from interest expense; at a month's
end the fees (`charges.month_charges`) are taken as balancing debits to fee income. The ledger
engine (`transfers.create_transfers`) applies every transfer; the trial balance is drawn the way
the ledger step draws it (`books.trial_balance_rows`, `books.statements`).

After every close: debits = credits per currency, the balance sheet balances, no account is
below its floor, no fee or interest transfer is refused, and the interest posted for each period
is its exact accrual rounded once.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from uuid import UUID, uuid5

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from contracts.account import InterestPosting, ProductTerms, ProductType
from contracts.ledger import AccountFlags, NewTransfer, TransferFlags, bank_account_id
from contracts.ledger import TransferResultCode as R
from workers.account.domain import charges, interest
from workers.day.domain import next_business_date
from workers.ledger.domain import books
from workers.ledger.domain.accounts import AccountState, balance
from workers.ledger.domain.transfers import Ledger, create_transfers

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
VAULT, EXPENSE, FEES = (bank_account_id(code, "INR") for code in ("cash_vault", "interest_expense", "fee_income"))
NAMESPACE = UUID(int=42)


def terms(rate_bps: int, minimum: int, maintenance: int, shortfall: int) -> ProductTerms:
    return ProductTerms(name="Saver", type=ProductType.savings, currency="INR", rate_bps=rate_bps,
                        interest_posting=InterestPosting.quarterly, minimum_balance=minimum,
                        daily_cash_withdrawal_limit=0, daily_payments_out_limit=0, monthly_debit_limit=0,
                        overdraft_limit=0, maintenance_fee=maintenance, shortfall_fee=shortfall)  # fmt: skip


accounts = st.lists(st.tuples(st.sampled_from([0, 350, 400, 725]), st.sampled_from([0, 10_000, 100_000]),
                              st.sampled_from([0, 5_000]), st.sampled_from([0, 10_000])), min_size=1, max_size=4)  # fmt: skip
movements = st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.integers(1, 5_000_000)), max_size=4)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(accounts, st.dates(dt.date(2026, 1, 1), dt.date(2027, 12, 1)), st.lists(movements, min_size=1, max_size=80))
def test_closing_any_sequence_of_days_keeps_the_books_balanced(
    products: list[tuple[int, int, int, int]], start: dt.date, days: list[list[tuple[int, bool, int]]],
) -> None:  # fmt: skip
    ledger = Ledger(accounts={}, transfers={}, failed={})
    for bank_id, code in ((VAULT, "cash_vault"), (EXPENSE, "interest_expense"), (FEES, "fee_income")):
        ledger.accounts[bank_id] = AccountState(bank_id, "INR", code, AccountFlags(), 0)
    saver = [(UUID(int=100 + i), terms(*p)) for i, p in enumerate(products)]
    for account_id, t in saver:  # the floor in the ledger: the minimum balance (banking-rules §2)
        ledger.accounts[account_id] = AccountState(account_id, "INR", "customer_deposit",
                                                   AccountFlags(debits_must_not_exceed_credits=True), -t.minimum_balance)  # fmt: skip
    accrued: dict[tuple[UUID, dt.date], int] = defaultdict(int)  # balance-bps-days per (account, period end)
    month_days: dict[tuple[UUID, dt.date], int] = defaultdict(int)  # balance-days per (account, month end)
    posted: dict[tuple[UUID, dt.date], int] = {}
    seq = 0

    def apply(*transfers: NewTransfer) -> list[R]:
        return [o.result for o in create_transfers(ledger, transfers, NOW)]

    def new_id() -> UUID:
        nonlocal seq
        seq += 1
        return uuid5(NAMESPACE, str(seq))

    business_date = start if start.weekday() < 5 else next_business_date(start, set())
    for moves in days:
        for who, deposit, amount in moves:  # the customers' day; a withdrawal below the floor is refused
            account_id = saver[who % len(saver)][0]
            debit, credit = (VAULT, account_id) if deposit else (account_id, VAULT)
            apply(NewTransfer(id=new_id(), debit_account_id=debit, credit_account_id=credit, amount=amount,
                              currency="INR", code="deposit" if deposit else "withdrawal"))  # fmt: skip
        # Close of business: every calendar day up to the next business date, on today's day-end balance.
        until = next_business_date(business_date, set())
        for account_id, t in saver:
            day_end = balance(ledger.accounts[account_id])
            for a in interest.accrue(day_end, t.rate_bps, business_date, until, t.interest_posting):
                accrued[(account_id, a.period_end)] += a.balance_bps_days
            for share in charges.balance_days(day_end, business_date, until):
                month_days[(account_id, share.month_end)] += share.balance_days
        for (account_id, period_end), bps_days in sorted(accrued.items()):
            if interest.due(period_end, until) and (account_id, period_end) not in posted:
                amount = interest.interest_minor(bps_days)
                posted[(account_id, period_end)] = amount
                if amount:
                    event("interest posted")
                    assert apply(NewTransfer(id=new_id(), debit_account_id=EXPENSE, credit_account_id=account_id,
                                             amount=amount, currency="INR", code="interest")) == [R.ok]  # fmt: skip
        for month_end in charges.month_ends_covered(business_date, until):
            for account_id, t in saver:
                opened = charges.days_open(month_end, start)
                for charge in charges.month_charges(t, month_days[(account_id, month_end)], opened):
                    fee = NewTransfer(id=new_id(), debit_account_id=account_id, credit_account_id=FEES, amount=charge.amount,
                                      currency="INR", code="fee", flags=TransferFlags(balancing_debit=True))  # fmt: skip
                    assert apply(fee) == [R.ok], "a fee is never refused: it takes what lies above the floor"
                    event("fee taken in full" if ledger.transfers[fee.id].amount == charge.amount else "fee clamped at the floor")
        # The books as the ledger's step draws them.
        by_code: dict[str, list[AccountState]] = defaultdict(list)
        for a in ledger.accounts.values():
            by_code[a.code].append(a)
        rows = books.trial_balance_rows(
            books.CodeTotals("INR", code, len(group), sum(a.debits_posted for a in group), sum(a.credits_posted for a in group))
            for code, group in by_code.items()
        )  # fmt: skip
        totals, sheet, _ = books.statements(rows)
        assert totals[0]["balanced"] and sheet[0]["balanced"], (business_date, totals, sheet)
        for account_id, t in saver:
            # The floor refuses debits, never credits: below the minimum only before any debit.
            account = ledger.accounts[account_id]
            assert balance(account) >= t.minimum_balance or account.debits_posted == 0, (account_id, balance(account))
        business_date = until
    # Interest: each period posted is its exact accrual rounded once, half-up.
    for key, amount in posted.items():
        assert amount == interest.interest_minor(accrued[key])

