"""The customer worker process: `cbs worker customer`."""

from bus.worker import worker_app
from workers.customer.routes import ROUTES

app = worker_app(ROUTES)
