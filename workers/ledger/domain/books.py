"""The bank's books from the ledger's balances: the trial balance by general-ledger account (the
chart of accounts in contracts/ledger.py), and the balance sheet and income statement drawn from
it. Pure: the store hands in (currency, code, accounts, debits, credits) totals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from contracts.ledger import CHART_BY_CODE, DEBIT_NORMAL, UNCLASSIFIED, GLClass, TrialBalanceRow


@dataclass(frozen=True, slots=True)
class CodeTotals:
    currency: str
    code: str
    accounts: int
    debits_posted: int
    credits_posted: int


def trial_balance_rows(totals: Iterable[CodeTotals]) -> list[TrialBalanceRow]:
    """One row per (currency, code), in GL-code order; a code outside the chart stays visible."""
    rows = []
    for t in totals:
        gl = CHART_BY_CODE.get(t.code)
        debit_normal = gl is not None and gl.gl_class in DEBIT_NORMAL
        rows.append(TrialBalanceRow(
            currency=t.currency, code=t.code, gl_class=gl.gl_class.value if gl else UNCLASSIFIED,
            gl_code=gl.gl_code if gl else None, name=gl.name if gl else None, accounts=t.accounts,
            debits_posted=t.debits_posted, credits_posted=t.credits_posted,
            balance=t.debits_posted - t.credits_posted if debit_normal else t.credits_posted - t.debits_posted,
        ))  # fmt: skip
    return sorted(rows, key=lambda r: (r.currency, r.gl_code or "~", r.code))


def statements(rows: Iterable[TrialBalanceRow]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(totals, balance sheet, income statement), per currency. The sheet balances whenever the
    trial balance does: assets = liabilities + equity + net income (+ unclassified, shown apart)."""
    by: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        acc = by[r.currency]
        acc["debits"] += r.debits_posted
        acc["credits"] += r.credits_posted
        acc[r.gl_class] += r.balance
    totals, sheet, income = [], [], []
    for currency in sorted(by):
        acc = by[currency]
        net = acc[GLClass.income] - acc[GLClass.expense]
        totals.append({"currency": currency, "debits": acc["debits"], "credits": acc["credits"],
                       "balanced": acc["debits"] == acc["credits"]})  # fmt: skip
        sheet.append({
            "currency": currency, "assets": acc[GLClass.asset], "liabilities": acc[GLClass.liability],
            "equity": acc[GLClass.equity], "net_income": net, "unclassified": acc[UNCLASSIFIED],
            "balanced": acc[GLClass.asset] == acc[GLClass.liability] + acc[GLClass.equity] + net + acc[UNCLASSIFIED],
        })  # fmt: skip
        income.append({"currency": currency, "income": acc[GLClass.income], "expenses": acc[GLClass.expense],
                       "net_income": net})  # fmt: skip
    return totals, sheet, income
