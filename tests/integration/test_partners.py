"""Partners on the real broker: what a partner's user may and may not do (issue 4, DESIGN §3).

Partners are made with the real `cbs partner` CLI (a subprocess, in this run's vhost), each test
with its own, removed afterwards. The `bus` fixture runs the workers, so an allowed command is
answered on the partner's own reply queue.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import aiormq
import asyncpg
import pytest

from bus import topology
from bus.actor import Actor, Trust, actor_of
from ops import partners
from contracts import customer as cu
from contracts import ledger as lg
from contracts.common import Command, Reply
from contracts.partner import PartnerAccessChanged
from tests.conftest import VHOST
from tests.integration.conftest import BusClient, WORKERS_UNDER_TEST, eventually, publish_as

EDGE_USERS = frozenset({"guest"})  # the user the edge publishes as in tests


@dataclass(frozen=True)
class PartnerUser:
    name: str
    password: str

    @property
    def user(self) -> str:
        return partners.user_of(self.name)

    @property
    def replies(self) -> str:
        return partners.replies_queue_name(self.name)

    @property
    def events(self) -> str:
        return partners.events_queue_name(self.name)

    def url(self, password: str | None = None) -> str:
        admin = urlsplit(os.environ["CBS_AMQP_URL"])
        secret = quote(password or self.password, safe="")
        # The vhost of CBS_AMQP_URL as it is now: the end-to-end tests' own while they run.
        return f"amqp://{quote(self.user, safe='')}:{secret}@{admin.hostname}:{admin.port or 5672}{admin.path}"


async def cbs(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, as an operator runs it, against this run's vhost (CBS_AMQP_URL)."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "ops.cli", *args],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )  # fmt: skip


def unique_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


AddPartner = Callable[..., Awaitable[PartnerUser]]


@pytest.fixture
async def add_partner(infra: dict[str, str]) -> AsyncIterator[AddPartner]:
    made: list[str] = []

    async def add(*keys: str) -> PartnerUser:
        name = unique_name()
        done = await cbs("partner", "add", name, "--may-send", *keys)
        assert done.returncode == 0, done.stderr
        made.append(name)
        shown = json.loads(done.stdout.strip().splitlines()[-1])
        assert shown["user"] == f"partner.{name}" and shown["vhost"] == VHOST
        assert shown["may_send"] == sorted(keys)
        assert done.stdout.count(shown["password"]) == 1 and shown["password"] not in done.stderr
        return PartnerUser(name, shown["password"])

    yield add
    for name in made:
        if name in {u[len(partners.USER_PREFIX):] for u in partners.partner_users()}:
            assert (await cbs("partner", "remove", name)).returncode == 0


@asynccontextmanager
async def channel_of(url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


def get_customer(**properties: Any) -> aio_pika.Message:
    command = cu.GetCustomer(customer_id=uuid.uuid4())
    return aio_pika.Message(
        command.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=properties.pop("message_id", uuid.uuid4().hex),
        type=cu.GetCustomer.message_type,
        **properties,
    )


async def publish(channel: aio_pika.abc.AbstractChannel, routing_key: str, message: aio_pika.Message,
                  exchange: str = topology.COMMANDS.name) -> None:
    target = await channel.get_exchange(exchange)  # passive: needs no configure right
    await target.publish(message, routing_key=routing_key)


# -- the grants workers learn from `partner.access_changed` ---------------------------------------


async def grant_of(admin_db: asyncpg.Pool, worker: str, user: str) -> tuple[frozenset[str], datetime] | None:
    row = await admin_db.fetchrow(f"SELECT may_send, as_of FROM {worker}.partner_grant WHERE partner = $1", user)
    return None if row is None else (frozenset(row["may_send"]), row["as_of"])


async def granted(admin_db: asyncpg.Pool, worker: str, user: str, keys: Any, *, since: datetime | None = None) -> None:
    """Wait until the worker holds exactly this grant (it learns it from an event, asynchronously)."""

    async def holds() -> bool:
        grant = await grant_of(admin_db, worker, user)
        return grant is not None and grant[0] == frozenset(keys) and (since is None or grant[1] >= since)

    await eventually(holds)


async def publish_grant(user: str, keys: Any, occurred_at: datetime) -> None:
    """A `partner.access_changed` as the operator publishes it, straight to cbs.events."""
    event = PartnerAccessChanged(partner=user, may_send=sorted(keys), occurred_at=occurred_at)
    await publish_as("ops", event.routing_key, event)


async def ask_as(p: PartnerUser, command: Command, message_id: str | None = None) -> Reply:
    """Publish a command as the partner (with its validated user_id) and wait for the reply."""
    correlation_id = uuid.uuid4().hex
    async with channel_of(p.url()) as channel:
        await publish(channel, command.routing_key, aio_pika.Message(
            command.model_dump_json().encode(), content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=message_id or uuid.uuid4().hex,
            type=command.message_type, reply_to=p.replies, correlation_id=correlation_id, user_id=p.user,
        ))  # fmt: skip
        replies = await channel.get_queue(p.replies)

        async def reply() -> aio_pika.abc.AbstractIncomingMessage | None:
            while (message := await replies.get(no_ack=True, fail=False)) is not None:
                if message.correlation_id == correlation_id:
                    return message
            return None

        delivered = await eventually(reply)
    return Reply.model_validate_json(delivered.body)


def assert_forbidden(answer: Reply, p: PartnerUser, routing_key: str) -> None:
    assert not answer.ok and answer.error is not None, answer
    assert answer.error.code == "forbidden"
    assert answer.error.details == {"partner": p.user, "routing_key": routing_key}


async def test_add_and_remove_tell_every_worker_the_grant(
    bus: BusClient, add_partner: AddPartner, admin_db: asyncpg.Pool
) -> None:
    p = await add_partner(cu.GetCustomer.routing_key)
    # Every running worker, not only the one that consumes the key (notification runs only in its own module).
    for worker in WORKERS_UNDER_TEST:
        await granted(admin_db, worker, p.user, {cu.GetCustomer.routing_key})
    assert (await cbs("partner", "remove", p.name)).returncode == 0
    for worker in WORKERS_UNDER_TEST:
        await granted(admin_db, worker, p.user, ())


async def test_worker_refuses_a_command_outside_the_newest_grant(
    bus: BusClient, add_partner: AddPartner, admin_db: asyncpg.Pool
) -> None:
    """The broker lets the key through (topic permission); the worker's newer grant says no."""
    p = await add_partner(cu.GetCustomer.routing_key, cu.RegisterCustomer.routing_key)
    await granted(admin_db, "customer", p.user, {cu.GetCustomer.routing_key, cu.RegisterCustomer.routing_key})
    now = datetime.now(UTC)
    await publish_grant(p.user, [cu.RegisterCustomer.routing_key], now + timedelta(seconds=1))
    await granted(admin_db, "customer", p.user, {cu.RegisterCustomer.routing_key})
    message_id = uuid.uuid4().hex
    refused = await ask_as(p, cu.GetCustomer(customer_id=uuid.uuid4()), message_id)
    assert_forbidden(refused, p, cu.GetCustomer.routing_key)

    # (b) A grant that arrives late, older than the one held, does not undo it.
    await publish_grant(p.user, [cu.GetCustomer.routing_key, cu.RegisterCustomer.routing_key], now)
    marker = f"partner.{unique_name()}"  # behind the late grant on the same queue: once seen, it was applied
    await publish_grant(marker, [cu.GetCustomer.routing_key], now)
    await granted(admin_db, "customer", marker, {cu.GetCustomer.routing_key})
    assert (await grant_of(admin_db, "customer", p.user)) == (frozenset({cu.RegisterCustomer.routing_key}),
                                                               now + timedelta(seconds=1))
    assert_forbidden(await ask_as(p, cu.GetCustomer(customer_id=uuid.uuid4())), p, cu.GetCustomer.routing_key)

    # A newer grant restores it; a refusal is not stored, so the same message_id is now acted on.
    await publish_grant(p.user, [cu.GetCustomer.routing_key], now + timedelta(seconds=2))
    await granted(admin_db, "customer", p.user, {cu.GetCustomer.routing_key})
    answer = await ask_as(p, cu.GetCustomer(customer_id=uuid.uuid4()), message_id)
    assert answer.error is not None and answer.error.code == cu.CustomerError.customer_not_found


async def test_batched_command_outside_the_grant_is_refused_alone(
    bus: BusClient, add_partner: AddPartner, admin_db: asyncpg.Pool
) -> None:
    """ledger.create_transfers goes through group commit: each refused message gets its own refusal."""
    p = await add_partner(lg.CreateTransfers.routing_key)
    await granted(admin_db, "ledger", p.user, {lg.CreateTransfers.routing_key})

    def transfers() -> lg.CreateTransfers:
        return lg.CreateTransfers(transfers=[lg.NewTransfer(
            id=uuid.uuid4(), debit_account_id=uuid.uuid4(), credit_account_id=uuid.uuid4(), amount=100,
            currency="INR", code="internal_transfer",
        )])  # fmt: skip

    allowed = await ask_as(p, transfers())
    assert allowed.ok or (allowed.error is not None and allowed.error.code != "forbidden"), allowed
    await publish_grant(p.user, [], datetime.now(UTC) + timedelta(seconds=1))
    await granted(admin_db, "ledger", p.user, ())
    refused, other = await asyncio.gather(ask_as(p, transfers()), bus.send(transfers()))
    assert_forbidden(refused, p, lg.CreateTransfers.routing_key)
    assert other.ok or (other.error is not None and other.error.code != "forbidden"), other  # its neighbours run


# -- what a partner may do ----------------------------------------------------------------------


async def test_allowed_command_is_handled_and_answered_on_the_partners_reply_queue(
    bus: BusClient, add_partner: AddPartner, admin_db: asyncpg.Pool
) -> None:
    p = await add_partner(cu.GetCustomer.routing_key)
    await granted(admin_db, "customer", p.user, {cu.GetCustomer.routing_key})
    correlation_id = uuid.uuid4().hex
    async with channel_of(p.url()) as channel:
        await publish(channel, cu.GetCustomer.routing_key,
                      get_customer(reply_to=p.replies, correlation_id=correlation_id, user_id=p.user))
        replies = await channel.get_queue(p.replies)

        async def reply() -> aio_pika.abc.AbstractIncomingMessage | None:
            return await replies.get(no_ack=True, fail=False)

        delivered = await eventually(reply)
    assert delivered.correlation_id == correlation_id
    answer = Reply.model_validate_json(delivered.body)
    assert not answer.ok and answer.error is not None
    assert answer.error.code == cu.CustomerError.customer_not_found


async def test_list_shows_each_partner_with_its_keys_and_no_secret(add_partner: AddPartner) -> None:
    p = await add_partner(cu.GetCustomer.routing_key, cu.RegisterCustomer.routing_key)
    done = await cbs("partner", "list")
    assert done.returncode == 0, done.stderr
    listed = {row["name"]: row for row in map(json.loads, done.stdout.strip().splitlines())}
    assert listed[p.name]["may_send"] == sorted([cu.GetCustomer.routing_key, cu.RegisterCustomer.routing_key])
    assert listed[p.name]["queues"] == [p.replies, p.events]
    assert p.password not in done.stdout


async def test_grants_read_from_the_broker_drive_may_send(add_partner: AddPartner) -> None:
    p = await add_partner(cu.GetCustomer.routing_key)
    grants = await asyncio.to_thread(partners.load_grants, VHOST)
    assert grants[p.user] == frozenset({cu.GetCustomer.routing_key})
    assert partners.may_send(p.user, cu.GetCustomer.routing_key, grants)
    assert not partners.may_send(p.user, cu.RegisterCustomer.routing_key, grants)
    assert not partners.may_send("partner.nobody", cu.GetCustomer.routing_key, grants)


async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    return None


# -- what the broker refuses --------------------------------------------------------------------


async def test_routing_key_not_given_is_refused_by_the_broker(bus: BusClient, add_partner: AddPartner) -> None:
    p = await add_partner(cu.GetCustomer.routing_key)
    async with channel_of(p.url()) as channel:
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="customer.register_customer"):
            await publish(channel, cu.RegisterCustomer.routing_key, get_customer(user_id=p.user))
    async with channel_of(p.url()) as channel:
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ledger.create_transfers"):
            await publish(channel, "ledger.create_transfers", get_customer())
    async with channel_of(p.url()) as channel:  # nor another exchange, even with an allowed key
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match=topology.EVENTS.name):
            await publish(channel, cu.GetCustomer.routing_key, get_customer(), exchange=topology.EVENTS.name)
    async with channel_of(p.url()) as channel:  # nor straight into a queue by the default exchange
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="amq.default"):
            await channel.default_exchange.publish(get_customer(), routing_key=cu.GetCustomer.routing_key)


async def test_partner_cannot_read_another_partners_queue_or_a_workers(add_partner: AddPartner) -> None:
    mine, theirs = await add_partner(cu.GetCustomer.routing_key), await add_partner(cu.GetCustomer.routing_key)
    for queue_name in (theirs.replies, theirs.events, cu.GetCustomer.routing_key, topology.DEAD_LETTER_QUEUE_NAME):
        async with channel_of(mine.url()) as channel:
            queue = await channel.get_queue(queue_name)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match=queue_name):
                await queue.consume(ignore)
        async with channel_of(mine.url()) as channel:
            queue = await channel.get_queue(queue_name)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match=queue_name):
                await queue.get(fail=False)
    async with channel_of(mine.url()) as channel:  # its own queues it can read
        for own in (mine.replies, mine.events):
            assert await (await channel.get_queue(own)).get(fail=False) is None


async def bind_own_events(channel: aio_pika.abc.AbstractChannel, p: PartnerUser) -> None:
    queue = await channel.get_queue(p.events)
    await queue.bind(topology.EVENTS.name, routing_key="#")  # events are bound by the operator


@pytest.mark.parametrize(
    "configure",
    [
        pytest.param(lambda ch, p: ch.declare_queue(f"{p.user}.mine", durable=True), id="declare-queue"),
        pytest.param(lambda ch, p: ch.declare_exchange(f"{p.user}.ex", type="topic"), id="declare-exchange"),
        pytest.param(lambda ch, p: ch.queue_delete(p.replies), id="delete-own-queue"),
        pytest.param(lambda ch, p: bind_own_events(ch, p), id="bind-own-queue"),
    ],
)
async def test_partner_can_configure_nothing(add_partner: AddPartner, configure: Any) -> None:
    p = await add_partner(cu.GetCustomer.routing_key)
    async with channel_of(p.url()) as channel:
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await configure(channel, p)


async def test_user_id_that_is_not_the_connections_user_is_refused(add_partner: AddPartner) -> None:
    p, other = await add_partner(cu.GetCustomer.routing_key), await add_partner(cu.GetCustomer.routing_key)
    for forged in ("guest", other.user):
        async with channel_of(p.url()) as channel:
            with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="user_id property set to"):
                await publish(channel, cu.GetCustomer.routing_key, get_customer(user_id=forged))


async def test_partner_cannot_forge_x_actor(bus: BusClient, add_partner: AddPartner) -> None:
    """`x-actor` counts only when the broker-validated `user_id` is the edge's, which no partner can set."""
    p = await add_partner(cu.GetCustomer.routing_key)
    async with channel_of(bus_admin_url()) as admin:
        # A tap on the partner's routing key, to see exactly what the workers receive.
        tap = await admin.declare_queue(exclusive=True, auto_delete=True)
        await tap.bind(topology.COMMANDS.name, routing_key=cu.GetCustomer.routing_key)
        sent = {"without_user_id": uuid.uuid4().hex, "with_user_id": uuid.uuid4().hex, "edge": uuid.uuid4().hex}
        staff = {"x-actor": json.dumps({"sub": "someone", "roles": ["admin"]})}
        async with channel_of(p.url()) as channel:
            await publish(channel, cu.GetCustomer.routing_key,
                          get_customer(message_id=sent["without_user_id"], headers=staff))
            await publish(channel, cu.GetCustomer.routing_key,
                          get_customer(message_id=sent["with_user_id"], headers=staff, user_id=p.user))
        await publish(admin, cu.GetCustomer.routing_key, get_customer(message_id=sent["edge"], headers=staff,
                                                                       user_id="guest"))
        seen: dict[str, aio_pika.abc.AbstractIncomingMessage] = {}

        async def all_seen() -> bool:
            while (message := await tap.get(no_ack=True, fail=False)) is not None:
                seen[str(message.message_id)] = message
            return set(sent.values()) <= set(seen)

        await eventually(all_seen)

    def actor(label: str) -> Actor | None:
        message = seen[sent[label]]
        assert message.headers.get("x-actor") == staff["x-actor"]  # the header itself arrives as written
        return actor_of(message.user_id, message.headers["x-actor"], Trust(edge=EDGE_USERS, services=frozenset()))

    assert seen[sent["without_user_id"]].user_id is None  # the broker does not stamp an absent user_id
    assert seen[sent["with_user_id"]].user_id == p.user
    assert actor("without_user_id") is None
    assert actor("with_user_id") == Actor(subject=p.user, via="partner")  # the header counts for nothing
    assert actor("edge") == Actor(subject="someone", roles=("admin",))


def bus_admin_url() -> str:
    return os.environ["CBS_AMQP_URL"]


# -- lifecycle ----------------------------------------------------------------------------------


async def closed_by_broker(connection: aio_pika.abc.AbstractConnection) -> bool:
    """True once the connection can no longer open a channel."""

    async def refused() -> bool:
        try:
            channel = await asyncio.wait_for(connection.channel(), timeout=2)
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError, asyncio.TimeoutError):
            return True
        await channel.close()
        return False

    return bool(await eventually(refused))


async def test_rotate_secret_retires_the_old_password(add_partner: AddPartner) -> None:
    p = await add_partner(cu.GetCustomer.routing_key)
    open_connection = await aio_pika.connect(p.url())  # the first password works
    try:
        done = await cbs("partner", "rotate-secret", p.name)
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout.strip().splitlines()[-1])
        new_password = shown["password"]
        assert new_password != p.password and shown["user"] == p.user
        with pytest.raises(aiormq.exceptions.ProbableAuthenticationError):
            await aio_pika.connect(p.url())
        async with channel_of(p.url(new_password)) as channel:  # and keeps its permissions
            await publish(channel, cu.GetCustomer.routing_key, get_customer(user_id=p.user))
        # Without --close-connections an open connection lives on, so the partner can switch over...
        await publish(await open_connection.channel(), cu.GetCustomer.routing_key, get_customer())
        # ...and after a leak, rotating with --close-connections cuts it off.
        done = await cbs("partner", "rotate-secret", p.name, "--close-connections")
        assert done.returncode == 0, done.stderr
        assert await closed_by_broker(open_connection)
    finally:
        await open_connection.close()


async def test_remove_deletes_the_user_and_its_queues(add_partner: AddPartner) -> None:
    p = await add_partner(cu.GetCustomer.routing_key)
    open_connection = await aio_pika.connect(p.url())
    done = await cbs("partner", "remove", p.name)
    assert done.returncode == 0, done.stderr
    assert p.user not in await asyncio.to_thread(partners.partner_users)

    assert await closed_by_broker(open_connection)  # the broker closes a deleted user's connections
    await open_connection.close()
    with pytest.raises(aiormq.exceptions.ProbableAuthenticationError):
        await aio_pika.connect(p.url())
    for queue_name in (p.replies, p.events):
        async with channel_of(bus_admin_url()) as admin:
            with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
                await admin.get_queue(queue_name)
    again = await cbs("partner", "remove", p.name)
    assert again.returncode == 2 and "no partner" in again.stderr


async def test_add_refuses_unknown_keys_wildcards_and_bad_names(infra: dict[str, str]) -> None:
    name = unique_name()
    for args in (
        [name, "--may-send", "customer.no_such_command"],
        [name, "--may-send", "customer.*"],
        ["Bad.Name", "--may-send", cu.GetCustomer.routing_key],
    ):
        done = await cbs("partner", "add", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "password" not in done.stdout
    assert partners.user_of(name) not in await asyncio.to_thread(partners.partner_users)


# -- the pure rules behind them (no broker) -------------------------------------------------------


def test_keys_pattern_round_trips_and_matches_only_its_keys() -> None:
    import re

    keys = ("customer.get_customer", "ledger.create_transfers")
    pattern = partners.keys_pattern(keys)
    assert partners.keys_from_pattern(pattern) == keys
    assert re.fullmatch(pattern, "ledger.create_transfers")
    assert not re.fullmatch(pattern, "ledgerXcreate_transfers")  # the dot is escaped
    assert not re.fullmatch(pattern, "ledger.create_transfers.extra")


def test_may_send_judges_only_partner_users() -> None:
    grants = {"partner.acme": frozenset({"customer.get_customer"})}
    assert partners.may_send("partner.acme", "customer.get_customer", grants)
    assert not partners.may_send("partner.acme", "ledger.create_transfers", grants)
    assert not partners.may_send("partner.unknown", "customer.get_customer", grants)
    assert partners.may_send("edge", "ledger.create_transfers", grants)
    assert partners.may_send(None, "ledger.create_transfers", grants)  # the broker's permissions decide
