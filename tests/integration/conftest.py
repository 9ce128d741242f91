"""Integration: the real workers' apps, in this process, on the real broker and database."""

from __future__ import annotations

import asyncio
import importlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker

from bus import topology
from bus.correlator import Correlator
from bus.settings import broker_user, load
from contracts.common import Command, Reply

WORKERS_UNDER_TEST = ("customer", "account", "ledger", "identity", "payment", "audit", "day", "loan")


# Package scope: the in-process workers must be gone before the end-to-end tests start theirs.
@pytest.fixture(scope="package")
async def workers(infra: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
    apps = {name: importlib.import_module(f"workers.{name}.app").app for name in WORKERS_UNDER_TEST}
    lifespans = []
    for app in apps.values():
        lifespan = app.lifespan_context()
        await lifespan.__aenter__()
        lifespans.append(lifespan)
        await app.start()
    yield apps
    for app in apps.values():
        await app.stop()
    for lifespan in lifespans:
        await lifespan.__aexit__(None, None, None)


class BusClient:
    """Talks to the workers as a partner or the edge would: contracts over AMQP."""

    def __init__(self, broker: RabbitBroker, correlator: Correlator) -> None:
        self.broker = broker
        self.correlator = correlator

    async def send(self, command: Command, *, message_id: str | None = None, timeout_s: float = 10) -> Reply:
        return await self.correlator.send(command, message_id=message_id or uuid.uuid4().hex, timeout_s=timeout_s)

    async def ok(self, command: Command, **kwargs: Any) -> dict[str, Any]:
        reply = await self.send(command, **kwargs)
        assert reply.ok, reply.error
        assert isinstance(reply.result, dict)
        return reply.result

    async def publish_raw(self, routing_key: str, body: bytes, **kwargs: Any) -> None:
        kwargs.setdefault("user_id", self.correlator.user_id)  # every command says who sent it
        await self.broker.publish(body, exchange=topology.COMMANDS, routing_key=routing_key, persist=True, **kwargs)


@pytest.fixture(scope="package")
async def bus(workers: dict[str, Any], infra: dict[str, str]) -> AsyncIterator[BusClient]:
    """As the operator's tools speak: a service of the bank (its own broker user, `user_id` set),
    believed when its commands name who they act for."""
    async for client in _client("ops", topology.ops_reply_queue(uuid.uuid4().hex[:12])):
        yield client


@pytest.fixture(scope="package")
async def edge_bus(workers: dict[str, Any], infra: dict[str, str]) -> AsyncIterator[BusClient]:
    """As the edge speaks: its broker user, whose `x-actor` header workers believe."""
    async for client in _client("edge", topology.edge_reply_queue(uuid.uuid4().hex[:12])):
        yield client


async def _client(process: str, reply_queue: Any) -> AsyncIterator[BusClient]:
    broker = RabbitBroker(load().process_amqp_url(process), logger=None)
    correlator = Correlator(load().process_amqp_url(process), user_id=broker_user(process), reply_queue=reply_queue)
    await broker.start()
    await correlator.start()
    yield BusClient(broker, correlator)
    await correlator.stop()
    await broker.stop()


async def eventually(check: Any, timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    """Poll an async check until it returns something truthy (events are asynchronous)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last: {result!r})")
        await asyncio.sleep(interval_s)


async def publish_as(process: str, routing_key: str, body: bytes | Any, *, exchange: str = topology.EVENTS.name,
                     **properties: Any) -> None:  # fmt: skip
    """Publish as one of the bank's processes would: its own broker user, its user_id (the broker
    checks it), persistent. `body` is bytes, or a contract (its JSON). E.g. a customer fact as the
    customer worker's outbox publishes it: `publish_as("customer", event.routing_key, event)`."""
    if not isinstance(body, bytes):
        properties.setdefault("type", body.message_type)
        body = body.model_dump_json().encode()
    properties.setdefault("message_id", uuid.uuid4().hex)
    connection = await aio_pika.connect(load().process_amqp_url(process))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = channel.default_exchange if exchange == "" else await channel.get_exchange(exchange, ensure=False)
        await target.publish(aio_pika.Message(body, content_type="application/json", user_id=broker_user(process),
                                              delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties),
                             routing_key=routing_key)  # fmt: skip


@asynccontextmanager
async def notification_worker(env: dict[str, str]) -> AsyncIterator[Any]:
    """The notification worker in this process, with `env` set while it runs (its settings are
    read when it starts, and read again after, without them)."""
    # Earlier modules' payments, logins and loans queued events for a worker that was not running:
    # a backlog whose SMS would take the provider's rate limit (60 a minute) before this module's.
    connection = await aio_pika.connect(os.environ["CBS_AMQP_URL"])
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.event_queue("notification").name, passive=True)
        await queue.purge()
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    from workers.notification.handlers import config

    config.reload()
    from workers.notification.app import app

    lifespan = app.lifespan_context()
    await lifespan.__aenter__()
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        await lifespan.__aexit__(None, None, None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        config.reload()


async def dead_letter_as_guest(amqp_url: str, command: Command, message_id: str, headers: dict[str, Any] | None = None) -> None:
    """Put `command` on the dead-letter exchange as RabbitMQ dead-letters one (same routing key and
    properties), sent by `guest`: neither the edge, a partner nor a service, whose user_id a replay keeps."""
    admin = RabbitBroker(amqp_url, logger=None)
    await admin.start()
    try:
        await admin.publish(
            command.model_dump(mode="json"), exchange=topology.DLX, routing_key=command.routing_key,
            message_id=message_id, message_type=command.message_type, user_id="guest", persist=True,
            headers=headers or {},
        )  # fmt: skip
    finally:
        await admin.stop()
