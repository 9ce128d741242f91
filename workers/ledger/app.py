"""The ledger worker process: `cbs worker ledger`.

Besides its queues it runs one background duty: releasing holds whose timeout has passed.
Every replica sweeps; the account locks make a hold expire exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os

from bus.worker import worker_app
from workers.ledger import handlers, store
from workers.ledger.routes import ROUTES

SWEEP_INTERVAL_S = float(os.environ.get("CBS_LEDGER_SWEEP_S", "1"))
CURRENCIES = tuple(c.strip() for c in os.environ.get("CBS_CURRENCIES", "INR").split(",") if c.strip())

log = logging.getLogger("cbs.ledger")
app = worker_app(ROUTES)
_sweeper: asyncio.Task[None] | None = None


async def _sweep_forever() -> None:
    runtime = app.runtime  # type: ignore[attr-defined]
    while True:
        try:
            while await runtime.in_transaction(handlers.expire_due_holds) == handlers.EXPIRY_BATCH:
                pass  # a full batch: more may be due
        except Exception:  # the sweep must outlive a database restart; it logs and tries again
            log.exception("expiry sweep failed")
        await asyncio.sleep(SWEEP_INTERVAL_S)


@app.after_startup
async def start_duties() -> None:
    global _sweeper
    runtime = app.runtime  # type: ignore[attr-defined]
    for currency in CURRENCIES:
        await runtime.in_transaction(lambda conn, cur=currency: store.ensure_bank_accounts(conn, cur))
    _sweeper = asyncio.create_task(_sweep_forever(), name="ledger-expiry-sweep")


@app.on_shutdown
async def stop_duties() -> None:
    if _sweeper is not None:
        _sweeper.cancel()
        await asyncio.gather(_sweeper, return_exceptions=True)
