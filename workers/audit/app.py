"""The audit worker process: `cbs worker audit`."""

from __future__ import annotations

from bus.worker import worker_app
from workers.audit.routes import ROUTES

app = worker_app(ROUTES)
