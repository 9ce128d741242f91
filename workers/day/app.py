"""The day worker process: `cbs worker day`."""

from __future__ import annotations

from bus.worker import worker_app
from workers.day.routes import ROUTES

app = worker_app(ROUTES)
