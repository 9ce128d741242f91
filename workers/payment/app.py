"""The payment worker process: `cbs worker payment`."""

from bus.worker import worker_app
from workers.payment.routes import ROUTES

app = worker_app(ROUTES)
