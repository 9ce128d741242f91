"""The notification worker process: `cbs worker notification`."""

from __future__ import annotations

from bus.worker import worker_app
from workers.notification.routes import ROUTES

app = worker_app(ROUTES)
