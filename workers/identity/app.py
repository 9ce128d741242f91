"""The identity worker process: `cbs worker identity`."""

from bus.worker import worker_app
from workers.identity.routes import ROUTES

app = worker_app(ROUTES)
