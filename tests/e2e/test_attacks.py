"""Attacks on the bus, tried as an attacker would, against the real processes (DESIGN §3).

Each test sends what an attacker on the broker could send and checks, through the edge, the
audit trail, the dead-letter queue or the broker itself, that it was not believed:

- identity: a partner that leaves out `user_id` and names an officer in `x-actor` and the body
  (`actor`, `permissions`) cannot approve a payment waiting for a checker, nor pass for its maker;
- contract: a command whose AMQP `type` is another command's, an unknown version, or that has no
  `message_id` is refused `invalid_message`, dead-lettered and never applied;
- least privilege: each process's own broker user may do only its own work, and an event from
  anyone but its owner (even the administrator) is dead-lettered, not acted on.

The last test tries the default exchange, where topic permissions do not apply: a worker's user
(which may write there to send replies) puts a command straight into another worker's queue. The
runtime refuses any command that did not travel on `cbs.commands` (found by this file, then closed).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
import asyncpg
import httpx
import pytest
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from pydantic import BaseModel

from bus import topology
from ops import dlq, partners
from bus.settings import PROCESSES, broker_user, load
from contracts import customer as cu
from contracts import ledger as lg
from contracts import payment as pm
from contracts.common import Reply
from tests.e2e.conftest import ROOT, Cluster
from tests.e2e.test_auth import new_user
from tests.e2e.test_flows import open_account_when_eligible, post, register_body, verified_customer
from tests.e2e.test_payments import deposit, internal, payable_account
from tests.integration.conftest import eventually
from tests.integration.test_partners import PartnerUser

pytestmark = pytest.mark.e2e

COMMANDS, EVENTS = topology.COMMANDS.name, topology.EVENTS.name
DEFAULT = ""  # the default exchange: straight into the queue named by the routing key
LARGE = 15_000_000  # >= workers/payment/domain/screening.py APPROVAL_AMOUNT: held for a checker
VAULT = str(uuid.UUID(hashlib.md5(b"cbs.ledger.cash_vault.INR").hexdigest()))  # the ledger's INR cash vault


# -- talking to the broker ----------------------------------------------------------------------


def admin_url() -> str:
    """guest, the broker's administrator, in the vhost of the tests' cluster (read when asked: the
    end-to-end package has its own, tests/conftest.py's `separate_infra`)."""
    return os.environ["CBS_AMQP_URL"]


def message(body: BaseModel | bytes, **properties: Any) -> aio_pika.Message:
    """A persistent JSON message; a contract gives its body and `type` (both can be overridden)."""
    if isinstance(body, BaseModel):
        properties.setdefault("type", type(body).message_type)  # type: ignore[attr-defined]
        body = body.model_dump_json().encode()
    properties.setdefault("content_type", "application/json")
    properties.setdefault("delivery_mode", aio_pika.DeliveryMode.PERSISTENT)
    return aio_pika.Message(body, **properties)


async def publish(channel: aio_pika.abc.AbstractChannel, exchange: str, routing_key: str,
                  msg: aio_pika.Message) -> None:  # fmt: skip
    """Publish and wait for the broker's confirm: a refusal raises here (the channel is closed)."""
    target = channel.default_exchange if exchange == DEFAULT else await channel.get_exchange(exchange, ensure=False)
    await target.publish(msg, routing_key=routing_key)


async def publish_without_message_id(channel: aio_pika.abc.AbstractChannel, exchange: str, routing_key: str,
                                     body: bytes, **properties: Any) -> None:  # fmt: skip
    """aiormq gives a message without one a random message_id, so this attacker writes the
    publish frames itself: the broker delivers the message with no message_id at all.
    `channel` must not use publisher confirms (aiormq would not expect this publish's ack)."""
    if "type" in properties:
        properties["message_type"] = properties.pop("type")  # pamqp's name for the AMQP `type`
    raw = await channel.get_underlay_channel()
    written = asyncio.get_running_loop().create_future()
    frames = [spec.Basic.Publish(exchange=exchange, routing_key=routing_key),
              ContentHeader(properties=spec.Basic.Properties(**properties), body_size=len(body)), ContentBody(body)]
    await raw.write_queue.put(ChannelFrame.marshall(channel_number=raw.number, frames=frames, drain_future=written))
    await written


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    connection = await aio_pika.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


def process_url(process: str) -> str:
    return load().process_amqp_url(process)


Attempt = Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]


async def refused(connection: aio_pika.abc.AbstractConnection, error: type[Exception], attempt: Attempt,
                  match: str | None = None) -> None:  # fmt: skip
    """The broker refuses `attempt` with `error`; each try gets a fresh channel (a refusal closes it)."""
    channel = await connection.channel(publisher_confirms=True)
    with pytest.raises(error, match=match):
        await attempt(channel)


async def allowed(connection: aio_pika.abc.AbstractConnection, attempt: Attempt) -> None:
    """The control: the same user may do this, so a refusal beside it is about what was asked."""
    channel = await connection.channel(publisher_confirms=True)
    await attempt(channel)
    await channel.close()


def sending(exchange: str, routing_key: str, msg: aio_pika.Message) -> Attempt:
    return lambda channel: publish(channel, exchange, routing_key, msg)


def publishing(exchange: str, routing_key: str, **properties: Any) -> Attempt:
    """A probe: an empty JSON body typed after its key (nothing acts on it even when it goes)."""
    properties.setdefault("message_id", uuid.uuid4().hex)
    properties.setdefault("type", f"{routing_key}.v1")
    return sending(exchange, routing_key, message(b"{}", **properties))


async def leave(delivery: aio_pika.abc.AbstractIncomingMessage) -> None:
    await delivery.nack(requeue=True)  # never reached: the broker refuses the consume itself


def consuming(queue_name: str) -> Attempt:
    async def attempt(channel: aio_pika.abc.AbstractChannel) -> None:
        queue = await channel.get_queue(queue_name)  # passive: only looks it up
        await queue.consume(leave)

    return attempt


def declaring(queue_name: str, **arguments: Any) -> Attempt:
    return lambda channel: channel.declare_queue(queue_name, **arguments)


async def reply_from(channel: aio_pika.abc.AbstractChannel, queue_name: str, correlation_id: str,
                     timeout_s: float = 15) -> Reply:  # fmt: skip
    """The reply with this correlation_id, read from our own reply queue."""
    queue = await channel.get_queue(queue_name)

    async def arrived() -> aio_pika.abc.AbstractIncomingMessage | None:
        while (m := await queue.get(no_ack=True, fail=False)) is not None:
            if m.correlation_id == correlation_id:
                return m
        return None

    return Reply.model_validate_json((await eventually(arrived, timeout_s=timeout_s)).body)


def letter_of(message_id: str, queue: str) -> Callable[[dlq.DeadLetter], bool]:
    return lambda letter: letter.message_id == message_id and letter.queue == queue


async def dead_letter(found: Callable[[dlq.DeadLetter], bool], timeout_s: float = 15) -> dlq.DeadLetter:
    """The letter in `cbs.dead` that `found` picks (listing leaves every letter in place)."""

    async def listed() -> dlq.DeadLetter | None:
        return next((letter for letter in await dlq.list_dead(admin_url()) if found(letter)), None)

    return await eventually(listed, timeout_s=timeout_s, interval_s=0.3)


def officer_claims(officer_id: str) -> dict[str, str]:
    """The `x-actor` header the edge would send for this officer: believed from the edge's user only."""
    return {"x-actor": json.dumps({"sub": officer_id, "roles": ["officer"], "customer_id": None, "via": "token"})}


def in_thread(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    """Blocking HTTP calls to the edge, off the event loop (AMQP connections stay serviced)."""
    return asyncio.to_thread(fn, *args)


def edge_get(cluster: Cluster, path: str) -> httpx.Response:
    with cluster.client() as client:
        return client.get(path)


# -- a partner made by the operator's CLI -------------------------------------------------------

# Its name, password, user, replies queue and URL, as the partner tests know it.
Partner = PartnerUser


def cbs(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=cluster.env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


async def granted(admin_db: asyncpg.Pool, worker: str, user: str, keys: set[str]) -> None:
    """The worker has learnt the partner's grant (from `partner.access_changed`)."""

    async def holds() -> bool:
        row = await admin_db.fetchrow(f"SELECT may_send FROM {worker}.partner_grant WHERE partner = $1", user)
        return row is not None and set(row["may_send"]) == keys

    await eventually(holds, timeout_s=20)


# -- identity: a partner posing as an officer (item 1) ------------------------------------------


@dataclass(frozen=True)
class CheckerScene:
    """A payment held for a checker, placed through the edge by the admin; an officer who could
    approve it; and a partner granted approve and initiate, as an attacker holding its secret."""

    partner: Partner
    officer_id: str
    payer: str
    payee: str
    payment_id: str


def _payment_waiting_for_a_checker(cluster: Cluster) -> tuple[str, str, str, str]:
    officer_id, _ = new_user(cluster, ["officer"])
    with cluster.client(timeout=30) as staff:
        payer = payable_account(staff, verified_customer(staff), "current")
        payee = payable_account(staff, verified_customer(staff))
        deposit(staff, payer, 2 * LARGE)
        placed = post(staff, "/v1/payments", internal(payer, payee, LARGE))
        assert placed.status_code == 201 and placed.json()["status"] == "pending", placed.text
    return officer_id, payer, payee, placed.json()["payment_id"]


@pytest.fixture(scope="module")
async def scene(cluster: Cluster, admin_db: asyncpg.Pool) -> AsyncIterator[CheckerScene]:
    keys = {pm.ApprovePayment.routing_key, pm.InitiatePayment.routing_key}
    name = f"attacker-{uuid.uuid4().hex[:8]}"
    made = await in_thread(cbs, cluster, "partner", "add", name, "--may-send", *sorted(keys))
    assert made.returncode == 0, made.stderr
    partner = Partner(name, json.loads(made.stdout.strip().splitlines()[-1])["password"])
    try:
        officer_id, payer, payee, payment_id = await in_thread(_payment_waiting_for_a_checker, cluster)
        await granted(admin_db, "payment", partner.user, keys)
        yield CheckerScene(partner, officer_id, payer, payee, payment_id)
    finally:
        await in_thread(cbs, cluster, "partner", "remove", name)


async def ask_as_partner(partner: Partner, command: BaseModel, **properties: Any) -> tuple[str, Reply]:
    """Send `command` on cbs.commands as the partner (properties as given) and read its reply."""
    message_id, correlation_id = uuid.uuid4().hex, uuid.uuid4().hex
    async with connected(partner.url()) as connection:
        channel = await connection.channel()
        await publish(channel, COMMANDS, command.routing_key,  # type: ignore[attr-defined]
                      message(command, message_id=message_id, correlation_id=correlation_id,
                              reply_to=partner.replies, **properties))  # fmt: skip
        return message_id, await reply_from(channel, partner.replies, correlation_id)


async def payment_view(cluster: Cluster, payment_id: str) -> dict[str, Any]:
    read = await in_thread(edge_get, cluster, f"/v1/payments/{payment_id}")
    assert read.status_code == 200, read.text
    return read.json()


async def test_a_partner_without_user_id_posing_as_an_officer_cannot_approve(
    cluster: Cluster, scene: CheckerScene
) -> None:
    """The partner leaves `user_id` out (once read as "an internal service") and names an officer
    holding `payments:approve` in `x-actor`, `actor` and `permissions`: refused `unauthenticated`,
    recorded as `payment.access_denied`, and the payment still waits for a checker."""
    forged = pm.ApprovePayment(payment_id=uuid.UUID(scene.payment_id), actor=scene.officer_id,
                               permissions=["payments:approve"])  # fmt: skip
    message_id, answer = await ask_as_partner(scene.partner, forged, headers=officer_claims(scene.officer_id))
    assert not answer.ok and answer.error is not None and answer.error.code == "unauthenticated", answer
    assert answer.error.details == {"user_id": None}

    view = await payment_view(cluster, scene.payment_id)
    assert (view["status"], view["approver"]) == ("pending", None), view

    async def recorded() -> dict[str, Any] | None:
        path = "/v1/audit/records?routing_key_prefix=payment.access_denied&limit=500"
        listed = await in_thread(edge_get, cluster, path)
        assert listed.status_code == 200, listed.text
        return next((r for r in listed.json()["items"]
                     if (r["payload"] or {}).get("command_message_id") == message_id), None)  # fmt: skip

    record = await eventually(recorded, timeout_s=20, interval_s=0.5)
    assert record["payload"]["code"] == "unauthenticated" and record["payload"]["broker_user"] is None
    assert record["payload"]["command"] == pm.ApprovePayment.routing_key
    assert record["broker_user"] == broker_user("payment")  # published by the payment worker's outbox


async def test_a_partner_with_its_user_id_cannot_approve_whatever_permissions_it_states(
    cluster: Cluster, scene: CheckerScene
) -> None:
    """The same forged approval with the partner's own (broker-checked) user_id: the partner is
    the partner, its stated `payments:approve` counts for nothing, and the payment still waits."""
    forged = pm.ApprovePayment(payment_id=uuid.UUID(scene.payment_id), actor=scene.officer_id,
                               permissions=["payments:approve"])  # fmt: skip
    _, answer = await ask_as_partner(scene.partner, forged, user_id=scene.partner.user,
                                     headers=officer_claims(scene.officer_id))  # fmt: skip
    assert not answer.ok and answer.error is not None, answer
    assert answer.error.code == pm.PaymentError.permission_denied, answer
    view = await payment_view(cluster, scene.payment_id)
    assert (view["status"], view["approver"]) == ("pending", None), view


async def test_a_partner_cannot_name_an_officer_as_the_maker_of_its_payment(
    cluster: Cluster, scene: CheckerScene
) -> None:
    """The partner places a payment (with its user_id) whose body `actor` and `x-actor` name an
    officer: the maker on record is the partner's broker user, not the officer it claimed."""
    order = pm.InitiatePayment(payment_id=uuid.uuid4(), kind=pm.PaymentKind.internal, channel=pm.Channel.api,
                               payer_account_id=uuid.UUID(scene.payer),
                               payee=pm.Payee(account_id=uuid.UUID(scene.payee)), amount=5_000, currency="INR",
                               actor=scene.officer_id)  # fmt: skip
    _, answer = await ask_as_partner(scene.partner, order, user_id=scene.partner.user,
                                     headers=officer_claims(scene.officer_id))  # fmt: skip
    assert answer.ok, answer.error
    assert isinstance(answer.result, dict) and answer.result["maker"] == scene.partner.user
    view = await payment_view(cluster, str(order.payment_id))
    assert view["maker"] == scene.partner.user != scene.officer_id, view


# -- contract: a command is its queue's contract, with a message_id (item 4) --------------------


@pytest.mark.parametrize(
    "message_type, with_message_id",
    [
        pytest.param(cu.UpdateCustomer.message_type, True, id="another-commands-type"),
        pytest.param("customer.register_customer.v99", True, id="unknown-version"),
        pytest.param(cu.RegisterCustomer.message_type, False, id="no-message-id"),
    ],
)
async def test_a_command_not_of_its_queues_contract_is_dead_lettered_and_never_applied(
    cluster: Cluster, admin_db: asyncpg.Pool, message_type: str, with_message_id: bool
) -> None:
    """A valid RegisterCustomer body, sent as ops (a service, with its user_id: identity is not
    the reason) but typed as another command, as `.v99`, or without message_id: answered
    `invalid_message`, dead-lettered, no customer. The same body sent properly registers it."""
    register = cu.RegisterCustomer.model_validate(register_body(uuid.uuid4().hex[:8]))
    customer_id = str(register.customer_id)
    message_id = uuid.uuid4().hex if with_message_id else None
    async with connected(process_url("ops")) as connection:
        channel = await connection.channel(publisher_confirms=False)
        replies = await channel.declare_queue(f"ops.replies.attack{uuid.uuid4().hex[:8]}", exclusive=True)
        properties = {"user_id": broker_user("ops"), "reply_to": replies.name, "correlation_id": uuid.uuid4().hex,
                      "type": message_type, "content_type": "application/json", "delivery_mode": 2}  # fmt: skip
        if with_message_id:
            await publish(channel, COMMANDS, register.routing_key,
                          message(register, message_id=message_id, **properties))
        else:
            await publish_without_message_id(channel, COMMANDS, register.routing_key,
                                             register.model_dump_json().encode(), **properties)  # fmt: skip
        answer = await reply_from(channel, replies.name, properties["correlation_id"])
        assert not answer.ok and answer.error is not None and answer.error.code == "invalid_message", answer

        letter = await dead_letter(lambda d: d.queue == register.routing_key and customer_id.encode() in d.body)
        assert (letter.message_id, letter.message_type) == (message_id, message_type)  # as sent: none, or ours
        assert (await in_thread(edge_get, cluster, f"/v1/customers/{customer_id}")).status_code == 404
        assert await admin_db.fetchval("SELECT count(*) FROM customer.customer WHERE customer_id = $1",
                                       register.customer_id) == 0  # fmt: skip

        # The control: nothing was wrong with the body, only with the message around it.
        properties |= {"correlation_id": uuid.uuid4().hex, "type": register.message_type}
        await publish(channel, COMMANDS, register.routing_key,
                      message(register, message_id=uuid.uuid4().hex, **properties))
        registered = await reply_from(channel, replies.name, properties["correlation_id"])
        assert registered.ok, registered.error
    assert (await in_thread(edge_get, cluster, f"/v1/customers/{customer_id}")).status_code == 200


# -- least privilege: each process its own broker user (item 8) ---------------------------------


async def test_a_workers_user_cannot_pass_for_the_edge(cluster: Cluster) -> None:
    """The customer worker's user sets `user_id` to the edge's user (to have its `x-actor`
    believed): the broker refuses the publish; with its own user_id, the same publish goes."""
    probe = "customer.attack_probe"  # its own event key: the broker's topic permission lets it through
    async with connected(process_url("customer")) as connection:
        await refused(connection, aiormq.exceptions.ChannelPreconditionFailed,
                      publishing(EVENTS, probe, user_id=broker_user("edge")), match="user_id")  # fmt: skip
        await allowed(connection, publishing(EVENTS, probe, user_id=broker_user("customer")))


async def test_a_workers_user_sends_only_the_commands_and_events_it_owns(cluster: Cluster) -> None:
    """The customer worker's user tries to move money (`ledger.create_transfers`), to send
    another worker's command, and to publish another worker's event: ACCESS_REFUSED each. The
    account worker's user, which asks the ledger, may publish a `ledger.*` key."""
    customer = broker_user("customer")
    async with connected(process_url("customer")) as connection:
        for exchange, key in ((COMMANDS, lg.CreateTransfers.routing_key), (COMMANDS, "account.open_account"),
                              (COMMANDS, "customer.register_customer"), (EVENTS, "account.opened"),
                              (EVENTS, "ledger.transfers_committed")):  # fmt: skip
            await refused(connection, aiormq.exceptions.ChannelAccessRefused,
                          publishing(exchange, key, user_id=customer), match=key)  # fmt: skip
        # Nor the dead-letter exchange, to make a letter look like another queue's.
        await refused(connection, aiormq.exceptions.ChannelAccessRefused,
                      publishing(topology.DLX.name, "ledger.create_transfers", user_id=customer))  # fmt: skip
    async with connected(process_url("account")) as connection:
        await allowed(connection, publishing(COMMANDS, "ledger.attack_probe", user_id=broker_user("account")))


async def test_a_workers_user_reads_only_its_own_queues_and_declares_nothing(cluster: Cluster) -> None:
    """The customer worker's user tries to take the ledger's and the payment's work (consume
    their queues), to read the dead letters, and to declare a queue of its own: ACCESS_REFUSED."""
    async with connected(process_url("customer")) as connection:
        for queue_name in (lg.CreateTransfers.routing_key, "payment.replies", "account.events",
                           topology.DEAD_LETTER_QUEUE_NAME):  # fmt: skip
            await refused(connection, aiormq.exceptions.ChannelAccessRefused, consuming(queue_name), match=queue_name)
        await refused(connection, aiormq.exceptions.ChannelAccessRefused, declaring("customer.mine", durable=True))
        await refused(connection, aiormq.exceptions.ChannelAccessRefused, declaring("", exclusive=True))


async def test_the_edges_user_cannot_read_a_workers_queue_nor_publish_its_events(cluster: Cluster) -> None:
    """The edge's user (the one whose `x-actor` is believed) tries to consume a worker's command
    queue, to publish a worker's event and to declare a queue outside `edge.*`: ACCESS_REFUSED.
    Its own `edge.*` event key goes through."""
    edge = broker_user("edge")
    async with connected(process_url("edge")) as connection:
        for queue_name in (cu.RegisterCustomer.routing_key, lg.CreateTransfers.routing_key, "customer.events"):
            await refused(connection, aiormq.exceptions.ChannelAccessRefused, consuming(queue_name), match=queue_name)
        for key in ("customer.kyc_status_changed", "account.opened", "partner.access_changed"):
            await refused(connection, aiormq.exceptions.ChannelAccessRefused,
                          publishing(EVENTS, key, user_id=edge), match=key)  # fmt: skip
        await refused(connection, aiormq.exceptions.ChannelAccessRefused, declaring("customer.mine", durable=True))
        await allowed(connection, publishing(EVENTS, "edge.attack_probe", user_id=edge))


@pytest.mark.parametrize("process", [p for p in PROCESSES if p != "dlq"])
async def test_nobody_but_the_dlq_publishes_under_another_users_id(cluster: Cluster, process: str) -> None:
    """Each process's user sets another process's user_id on a publish it may otherwise make:
    PRECONDITION_FAILED. Only the dead-letter replayer (tag `impersonator`) may, to replay a
    letter as its first sender."""
    own_key = {"edge": "edge.attack_probe", "ops": "partner.attack_probe"}.get(process, f"{process}.attack_probe")
    other = broker_user("ops" if process != "ops" else "edge")
    async with connected(process_url(process)) as connection:
        await refused(connection, aiormq.exceptions.ChannelPreconditionFailed,
                      publishing(EVENTS, own_key, user_id=other), match="user_id")  # fmt: skip
        await allowed(connection, publishing(EVENTS, own_key, user_id=broker_user(process)))
    async with connected(process_url("dlq")) as connection:
        await allowed(connection, publishing(EVENTS, own_key, user_id=broker_user(process)))


async def test_a_forged_event_does_not_make_a_customer_eligible(cluster: Cluster, admin_db: asyncpg.Pool) -> None:
    """A `customer.kyc_status_changed` saying a pending customer completed KYC, forged by the
    administrator's user (guest: may publish anything, owns no event), with its user_id and
    without, and by the ledger's user pushed straight into `account.events` by the default
    exchange. The account worker believes customer facts only from the customer worker's user,
    on their own key: it dead-letters each forgery, the customer stays pending there, and opening
    an account for them is still refused."""
    customer_id = await in_thread(_registered_customer_the_account_worker_knows, cluster)
    forged = cu.CustomerKycStatusChanged(customer_id=uuid.UUID(customer_id), occurred_at=datetime.now(UTC),
                                         old_status="pending", new_status="completed", status="active")  # fmt: skip
    forgeries = {  # message_id -> (url, exchange, routing key, user_id)
        uuid.uuid4().hex: (admin_url(), EVENTS, forged.routing_key, "guest"),
        uuid.uuid4().hex: (admin_url(), EVENTS, forged.routing_key, None),
        uuid.uuid4().hex: (process_url("ledger"), DEFAULT, "account.events", broker_user("ledger")),
    }
    for message_id, (url, exchange, key, user_id) in forgeries.items():
        async with connected(url) as connection:
            await allowed(connection, sending(exchange, key, message(forged, message_id=message_id, user_id=user_id)))
    for message_id in forgeries:
        await dead_letter(letter_of(message_id, "account.events"))
    standing = await admin_db.fetchrow(
        "SELECT status, kyc_status FROM account.customer_standing WHERE customer_id = $1", forged.customer_id
    )
    assert standing is not None and (standing["status"], standing["kyc_status"]) == ("inactive", "pending")
    refusal = await in_thread(_open_account, cluster, customer_id)
    assert refusal.status_code != 201 and refusal.json()["code"] == "customer_not_eligible", refusal.text


def _registered_customer_the_account_worker_knows(cluster: Cluster) -> str:
    """A customer registered through the edge, KYC pending, once the account worker has learnt it
    (from the real `customer.registered`): opening an account is `customer_not_eligible`."""
    body = register_body(uuid.uuid4().hex[:8])
    with cluster.client() as client:
        assert post(client, "/v1/customers", body).status_code == 201
    customer_id = body["customer_id"]
    deadline = time.monotonic() + 20
    while (answer := _open_account(cluster, customer_id)).json().get("code") == "customer_unknown":
        assert time.monotonic() < deadline, "the account worker never learnt the customer"
        time.sleep(0.2)
    assert answer.json()["code"] == "customer_not_eligible", answer.text
    return customer_id


def _open_account_of_a_new_customer(cluster: Cluster) -> str:
    with cluster.client(timeout=30) as staff:
        return str(open_account_when_eligible(staff, verified_customer(staff))["account_id"])


def _open_account(cluster: Cluster, customer_id: str) -> httpx.Response:
    with cluster.client() as client:
        return post(client, "/v1/accounts", {"account_id": str(uuid.uuid4()), "customer_id": customer_id,
                                             "product_code": "savings"})  # fmt: skip


# -- around the topic permissions: the default exchange ------------------------------------------


async def test_a_workers_user_cannot_send_a_command_straight_into_another_workers_queue(cluster: Cluster) -> None:
    """The customer worker's user may not publish `ledger.create_transfers` on cbs.commands
    (ACCESS_REFUSED, above); it tries the default exchange instead, the routing key naming the
    ledger's queue, with a deposit of 1,000.00 from the cash vault. No money may move."""
    target = await in_thread(_open_account_of_a_new_customer, cluster)
    transfer = lg.CreateTransfers(transfers=[lg.NewTransfer(id=uuid.uuid4(), debit_account_id=uuid.UUID(VAULT),
                                                            credit_account_id=uuid.UUID(target), amount=100_000,
                                                            currency="INR", code="deposit")])  # fmt: skip
    async with connected(process_url("customer")) as connection:
        try:
            sent = message(transfer, message_id=uuid.uuid4().hex, user_id=broker_user("customer"))
            await allowed(connection, sending(DEFAULT, transfer.routing_key, sent))
        except aiormq.exceptions.ChannelAccessRefused:
            return  # the broker refused it
    await asyncio.sleep(3)  # the ledger posts a transfer in milliseconds
    read = await in_thread(edge_get, cluster, f"/v1/ledger/transfers/{transfer.transfers[0].id}")
    balance = (await in_thread(edge_get, cluster, f"/v1/accounts/{target}/balance")).json()["balance"]
    assert (read.status_code, balance) == (404, 0), f"the ledger posted it: {read.text}; balance {balance}"
