"""The chart of accounts and the books drawn from the ledger's totals (workers/ledger/domain/books.py)."""

from __future__ import annotations

from contracts import ledger as c
from workers.ledger.domain.books import CodeTotals, statements, trial_balance_rows


def test_the_chart_lists_every_bank_account_and_customer_deposits_once() -> None:
    codes = [a.code for a in c.CHART_OF_ACCOUNTS]
    assert set(c.BANK_ACCOUNT_CODES) | {"customer_deposit"} == set(codes) and len(codes) == len(set(codes))
    assert len({a.gl_code for a in c.CHART_OF_ACCOUNTS}) == len(codes), "one GL code per account"
    assert c.CHART_BY_CODE["cash_vault"].gl_class == c.GLClass.asset
    assert c.CHART_BY_CODE["customer_deposit"].gl_class == c.GLClass.liability


def test_balances_read_in_each_class_normal_direction_and_the_statements_balance() -> None:
    # A deposit of 1,000 in cash, a fee of 20 taken from it, interest of 5 paid to it, and 3 moved
    # to an account whose code no chart knows.
    totals = [
        CodeTotals("INR", "cash_vault", 1, 1_000, 0),
        CodeTotals("INR", "customer_deposit", 2, 20 + 3, 1_000 + 5),
        CodeTotals("INR", "fee_income", 1, 0, 20),
        CodeTotals("INR", "interest_expense", 1, 5, 0),
        CodeTotals("INR", "bench_misc", 1, 0, 3),
    ]
    rows = trial_balance_rows(totals)
    assert [(r.code, r.gl_code, r.balance) for r in rows] == [
        ("cash_vault", "1000", 1_000), ("customer_deposit", "2000", 982), ("fee_income", "4100", 20),
        ("interest_expense", "5000", 5), ("bench_misc", None, 3),
    ]  # fmt: skip
    assert rows[-1].gl_class == c.UNCLASSIFIED
    total, sheet, income = statements(rows)
    assert total == [{"currency": "INR", "debits": 1_028, "credits": 1_028, "balanced": True}]
    assert sheet == [{"currency": "INR", "assets": 1_000, "liabilities": 982, "equity": 0, "net_income": 15,
                      "unclassified": 3, "balanced": True}]  # fmt: skip
    assert income == [{"currency": "INR", "income": 20, "expenses": 5, "net_income": 15}]


def test_unbalanced_totals_are_reported_not_hidden() -> None:
    rows = trial_balance_rows([CodeTotals("USD", "cash_vault", 1, 10, 0), CodeTotals("USD", "customer_deposit", 1, 0, 9)])
    total, sheet, _ = statements(rows)
    assert total[0]["balanced"] is False and sheet[0]["balanced"] is False
