"""The loan worker process: `cbs worker loan`."""

from __future__ import annotations

from bus.worker import worker_app
from workers.loan.routes import ROUTES

app = worker_app(ROUTES)
