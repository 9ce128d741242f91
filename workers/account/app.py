"""The account worker process: `cbs worker account`."""

from bus.worker import worker_app
from workers.account.routes import ROUTES

app = worker_app(ROUTES)
