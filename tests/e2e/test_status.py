"""`cbs status --once --json` against the running cluster: real numbers from the broker and the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import aio_pika

from bus.settings import WORKERS, broker_user, load
from tests.e2e.conftest import ROOT, Cluster


def status() -> dict:
    done = subprocess.run([sys.executable, "-m", "ops.cli", "status", "--once", "--json"], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def plant_dead_letter() -> str:
    """A command whose body is not its contract: the account worker dead-letters it."""
    message_id = f"status-{uuid.uuid4()}"
    connection = await aio_pika.connect(load().process_amqp_url("ops"))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("cbs.commands", ensure=False)
        await exchange.publish(aio_pika.Message(b'{"account_id": "not-a-uuid"}', message_id=message_id,
                                                type="account.get_account.v1", user_id=broker_user("ops"),
                                                content_type="application/json"), routing_key="account.get_account")  # fmt: skip
    return message_id


async def test_status_once_json_reports_every_worker_the_business_date_and_a_planted_dead_letter(cluster: Cluster) -> None:
    before = status()
    await plant_dead_letter()
    deadline = time.monotonic() + 30
    while True:
        now = status()
        account = next(w for w in now["workers"] if w["worker"] == "account")
        if now["dead_letters"]["total"] > before["dead_letters"]["total"] and now["business_day"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert now["broker_source"] == "management"  # scripts/prepare.sh enables the plugin
    assert [w["worker"] for w in now["workers"]] == list(WORKERS)
    for w in now["workers"]:
        assert w["replicas"] >= 1 and w["consumers"] >= 1, w  # one process of every worker runs
        assert isinstance(w["outbox_unsent"], int) and w["outbox_unsent"] >= 0, w  # every worker has its outbox
        assert isinstance(w["depth"], int) and w["publish_rate"] is not None
    assert now["business_day"]["business_date"] and now["business_day"]["status"] in ("open", "closing")
    assert now["dead_letters"]["total"] == before["dead_letters"]["total"] + 1
    assert now["dead_letters"]["by_queue"].get("account.get_account", 0) >= 1
    assert account["dead_letters"] >= 1 and "body is not a valid GetAccount" in account["last_error"]
    assert now["edges"] == 1  # the cluster's one edge
    assert not now["errors"], now["errors"]
