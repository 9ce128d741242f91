"""The payment worker process: `cbs worker payment`.

Besides its queues it runs two background duties on every replica: the payment sweep (approvals
that expired, settlements the partner never answered, held payments whose rail window opened)
and the standing-order scheduler. Row locks taken with SKIP LOCKED share the work between
replicas, and deterministic payment ids make each occurrence happen once.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bus.worker import add_duty, worker_app
from workers.payment import duties
from workers.payment.routes import ROUTES

SWEEP_INTERVAL_S = float(os.environ.get("CBS_PAYMENT_SWEEP_S", "1"))

app = worker_app(ROUTES)


def _in_batches(duty: Callable[[Any, datetime], Awaitable[int]], batch: int) -> Callable[[], Awaitable[bool]]:
    """One transaction of the duty; more may be due when it acted on a full batch."""
    runtime = app.runtime  # type: ignore[attr-defined]

    async def run_once() -> bool:
        return bool(await runtime.in_transaction(lambda conn: duty(conn, datetime.now(UTC))) == batch)

    return run_once


add_duty(app, "payment sweep", _in_batches(duties.sweep_due_payments, duties.SWEEP_BATCH), SWEEP_INTERVAL_S)
add_duty(app, "standing-order scheduler", _in_batches(duties.run_due_standing_orders, duties.SCHEDULER_BATCH),
         SWEEP_INTERVAL_S)  # fmt: skip
