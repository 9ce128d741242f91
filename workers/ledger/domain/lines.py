"""How an account's history line names who is on the other side of a transfer. Pure.

A statement reads `counterparty`, never a bare id where a better name is known:
- the other side is one of the bank's own accounts (cash vault, a clearing account, interest
  expense, fee income…): the outside party the transfer names (a NEFT beneficiary, a remitter),
  else the account's name in the chart of accounts;
- the other side is a customer's account: its title (the account worker sets its number), else
  its id. A person's name is never kept in the ledger.
"""

from __future__ import annotations

from uuid import UUID

from contracts.ledger import BANK_ACCOUNT_CODES, CHART_BY_CODE


def counterparty_name(*, account_id: UUID, code: str, owner_id: UUID | None, title: str | None,
                      outside_party: str | None) -> str:  # fmt: skip
    if owner_id is None and code in BANK_ACCOUNT_CODES:
        return outside_party or CHART_BY_CODE[code].name  # every bank account's code is in the chart
    return title or str(account_id)
