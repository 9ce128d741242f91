"""The ledger worker process: `cbs worker ledger`."""

from bus.worker import worker_app
from workers.ledger.routes import ROUTES

app = worker_app(ROUTES)
