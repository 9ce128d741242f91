"""The identity worker process: `cbs worker identity`.

On start it makes sure a signing key exists and that the first admin exists, named by
CBS_ADMIN_USERNAME / CBS_ADMIN_PASSWORD. The password's default is for development only: it is
documented in the README and printed by `make run`; production sets its own (and rotates it).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

from bus.worker import worker_app
from workers.identity import handlers
from workers.identity.routes import ROUTES

DEV_ADMIN_PASSWORD = "cbs-dev-admin-password"  # noqa: S105  (the documented development default)

log = logging.getLogger("cbs.identity")
app = worker_app(ROUTES)


@app.on_startup  # before the queues are consumed: no login can arrive before the admin exists
async def bootstrap() -> None:
    runtime = app.runtime  # type: ignore[attr-defined]
    username = os.environ.get("CBS_ADMIN_USERNAME", "admin")
    password = os.environ.get("CBS_ADMIN_PASSWORD", DEV_ADMIN_PASSWORD)
    await runtime.in_transaction(lambda conn: handlers.ensure_signing_key(conn, datetime.now(UTC)))
    made = await runtime.in_transaction(
        lambda conn: handlers.ensure_first_admin(conn, datetime.now(UTC), username, password)
    )
    if made:
        log.info("created the first admin %r from the environment", username)
    if "CBS_ADMIN_PASSWORD" not in os.environ:
        log.warning("CBS_ADMIN_PASSWORD is unset: the development default applies; set it outside development")
