"""`cbs dlq` on the real broker, with the real workers: a poisoned command dies, is listed with its
reason and error, shown, replayed by filter, purged with and without confirmation, and every
replay and purge is in the audit trail."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any


from bus import topology
from bus.settings import broker_user
from contracts import account as a
from tests.integration.conftest import BusClient, dead_letter_as_guest, eventually

ROOT = Path(__file__).resolve().parents[2]


async def cbs(*args: str, stdin: str = "") -> tuple[int, str, str]:
    """`cbs ARGS…` as its own process (as an operator runs it), without blocking the workers here."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", *args, cwd=ROOT, env=dict(os.environ), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def listed(*filters: str) -> dict[str, dict[str, Any]]:
    code, out, err = await cbs("dlq", "list", "--json", *filters)
    assert code == 0, err
    return {d["message_id"]: d for d in map(json.loads, out.splitlines())}


async def poison(bus: BusClient) -> str:
    """A command the account worker must refuse: its body is not the contract (it dies `rejected`)."""
    message_id = f"poison-{uuid.uuid4()}"
    reply = await bus.correlator.request("account.get_account", {"account_id": "not-a-uuid"}, "account.get_account.v1",
                                         message_id=message_id, timeout_s=10)  # fmt: skip
    assert reply.error is not None and reply.error.code == "invalid_message"
    return message_id


async def died_of_its_limit(infra: dict[str, str]) -> str:
    """A well-formed command as the broker dead-letters one that failed on every delivery (an outage,
    say): its x-first-death headers name the queue and the reason. Sent by `guest`, whose user_id a
    replay must keep, so the account worker refuses it `unauthenticated` (and does not kill it again)."""
    message_id = f"limit-{uuid.uuid4()}"
    command = a.FreezeAccount(account_id=uuid.uuid4(), actor="ops", reason="dlq test")
    await dead_letter_as_guest(infra["amqp_url"], command, message_id, {
        "x-first-death-queue": command.routing_key, "x-first-death-reason": "delivery_limit",
        "x-first-death-exchange": topology.COMMANDS.name,
    })  # fmt: skip
    return message_id


async def audit_records(admin_db: Any, routing_key: str, message_id: str) -> list[dict[str, Any]]:
    rows = await admin_db.fetch("SELECT broker_user, record_type, payload::text AS payload FROM audit.audit_record "
                                "WHERE routing_key = $1 ORDER BY seq", routing_key)  # fmt: skip
    found = []
    for row in rows:
        payload = json.loads(row["payload"])
        if any(letter["message_id"] == message_id for letter in payload["letters"]):
            found.append({**dict(row), "payload": payload})
    return found


async def test_a_poisoned_command_is_listed_with_its_reason_and_error_and_shown(bus: BusClient, infra) -> None:
    message_id = await poison(bus)

    async def mine() -> dict[str, Any] | None:
        return (await listed("--type", "account.get_account.v1")).get(message_id)

    letter = await eventually(mine, timeout_s=15)
    assert (letter["queue"], letter["reason"], letter["type"]) == ("account.get_account", "rejected", "account.get_account.v1")
    assert letter["exchange"] == "cbs.commands" and letter["routing_key"] == "account.get_account"
    assert letter["user_id"] == broker_user("ops") and letter["died_at"]
    assert "body is not a valid GetAccount" in letter["error"] and '"account_id"' in letter["error"]
    assert message_id not in await listed("--type", "customer.*")  # a filter leaves others out
    code, out, _ = await cbs("dlq", "list")
    assert code == 0 and message_id in out and "rejected" in out  # the table for people

    code, out, _ = await cbs("dlq", "show", message_id)
    assert code == 0
    shown = json.loads(out)
    assert json.loads(shown["body"]) == {"account_id": "not-a-uuid"} and shown["message_id"] == message_id
    assert (await cbs("dlq", "show", "no-such-letter"))[0] == 1
    assert message_id in await listed()  # listing and showing leave it in place


async def test_replay_by_filter_sends_back_only_what_it_chose_and_is_audited(bus: BusClient, infra, admin_db) -> None:
    retried = await died_of_its_limit(infra)
    bystander = await poison(bus)
    await eventually(lambda: _both_listed(retried, bystander), timeout_s=15)

    code, out, err = await cbs("dlq", "replay")
    assert code == 2 and "--all" in err  # no selection: nothing replayed by accident
    code, out, err = await cbs("dlq", "replay", "--reason", "delivery_limit", "--queue", "account.*")
    assert code == 0, err
    outcome = json.loads(out)
    assert retried in outcome["replayed"] and bystander not in outcome["replayed"]

    async def refused_as_guest() -> Any:
        return await admin_db.fetchval("SELECT payload->>'broker_user' FROM account.outbox WHERE routing_key = "
                                       "'account.access_denied' AND payload->>'command_message_id' = $1", retried)  # fmt: skip

    # Back on its queue under its first sender's user_id: the worker handled it (no second death).
    assert await eventually(refused_as_guest) == "guest"
    letters = await listed()
    assert retried not in letters and bystander in letters

    [record] = await eventually(lambda: audit_records(admin_db, "ops.dead_letters_replayed", retried), timeout_s=15)
    assert record["broker_user"] == broker_user("dlq") and record["record_type"] == "admin"
    assert record["payload"]["selected_by"] == {"reason": "delivery_limit", "queue": "account.*"}
    [ref] = [letter for letter in record["payload"]["letters"] if letter["message_id"] == retried]
    assert ref == {"message_id": retried, "type": "account.freeze_account.v1", "routing_key": "account.freeze_account",
                   "queue": "account.freeze_account", "reason": "delivery_limit"}


async def _both_listed(*ids: str) -> bool:
    letters = await listed()
    return all(i in letters for i in ids)


async def test_purge_asks_first_and_is_audited(bus: BusClient, infra, admin_db) -> None:
    asked, scripted = await poison(bus), await poison(bus)
    await eventually(lambda: _both_listed(asked, scripted), timeout_s=15)

    code, out, err = await cbs("dlq", "purge", "--id", asked, stdin="n\n")
    assert code == 1 and "Purge these 1 dead letters" in err and "nothing purged" in err
    code, out, err = await cbs("dlq", "purge", "--id", asked)  # no answer at all (a script forgot --yes)
    assert code == 1
    assert asked in await listed()

    code, out, err = await cbs("dlq", "purge", "--id", asked, "--type", "account.get_account.v1", stdin="y\n")
    assert code == 0, err
    assert json.loads(out)["purged"] == [asked]
    code, out, err = await cbs("dlq", "purge", "--id", scripted, "--yes")
    assert code == 0 and json.loads(out)["purged"] == [scripted] and "Purge these" not in err
    letters = await listed()
    assert asked not in letters and scripted not in letters

    for purged, chosen in ((asked, {"id": asked, "type": "account.get_account.v1"}), (scripted, {"id": scripted})):
        [record] = await eventually(lambda: audit_records(admin_db, "ops.dead_letters_purged", purged), timeout_s=15)  # noqa: B023
        assert record["broker_user"] == broker_user("dlq") and record["payload"]["count"] == 1
        assert record["payload"]["letters"][0]["reason"] == "rejected"
        assert record["payload"]["selected_by"] == chosen  # how the operator chose, and what they confirmed
