"""What the payment worker learns from the account worker: each account's newest status, its
customer and currency, and (on opening) its product's limits; admission reads them (`store.KnownAccount`)."""

from __future__ import annotations

from typing import Any

from bus.handling import Context
from workers.payment import store


async def on_account_fact(ctx: Context, event: Any) -> None:
    """account.opened / frozen / unfrozen / closed / product_migrated: the newest status (and, on
    opening or migration, the product version's limits and ATM terms)."""
    await store.record_account(ctx.conn, event.model_dump(), event.occurred_at)
