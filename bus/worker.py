"""Builds a worker process from its routes: subscriptions, pool, outbox relay, lifecycle."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from faststream import FastStream
from faststream.rabbit import RabbitBroker
from faststream.specification import AsyncAPI
from prometheus_client import start_http_server

from bus import db, observability, saga, topology, tracing
from bus.batching import BatchLimits, GroupCommitter
from bus.broker import Delivery, make_broker
from bus.direct import DirectConsumer, batched_command, batched_events
from bus.handling import CommandHandler, Context, Duty, Routes, StartUp, StreamRoute
from bus.outbox import OutboxRelay
from bus.runtime import Answered, Delivered, DeliveredEvent, Runtime
from bus.settings import Settings, broker_user, load
from bus.streams import StreamLimits, StreamReader
from contracts.common import Command

log = logging.getLogger("cbs.worker")
# A batched command's gatherer: deliveries in, each one's `Answered` out (its reply, None while a saga step
# owes it, and the confirm of audit's copy of its batch's replies).
Committer = GroupCommitter[Delivered, Answered]
# A worker's events' gatherer: each event's answer is only that its batch committed.
EventCommitter = GroupCommitter[DeliveredEvent, None]


async def raw_body(msg: Any, original: Any = None) -> bytes:
    """Hand the handler the undecoded body: the runtime validates it against the contract."""
    return bytes(msg.body)


def _subscribe_command(broker: RabbitBroker, runtime: Runtime, contract: Any, handler: CommandHandler) -> None:
    key = contract.routing_key

    @broker.subscriber(
        topology.command_queue(key), topology.COMMANDS, decoder=raw_body, no_reply=True,
        title=key, description=f"{contract.__doc__ or key} Routing key `{key}` on `cbs.commands`.",
    )
    async def consume(body: bytes, msg: Delivery) -> None:
        with tracing.consuming(msg.raw_message):
            await runtime.consume_command(contract, handler, body, msg)


def _subscribe_get_operation(broker: RabbitBroker, runtime: Runtime, worker: str) -> None:
    key = topology.get_operation_key(worker)

    @broker.subscriber(
        topology.command_queue(key), topology.COMMANDS, decoder=raw_body, no_reply=True,
        title=key, description=f"The stored reply of a {worker} command by its message_id.",
    )
    async def consume(body: bytes, msg: Delivery) -> None:
        with tracing.consuming(msg.raw_message):
            await runtime.consume_get_operation(body, msg)


def _consume_direct(app: FastStream, consumer: DirectConsumer) -> None:
    """The hottest paths, consumed on aio-pika directly (bus/direct.py): group-committed commands and events."""

    @app.after_startup  # the pool, the relay and the committers' runtime are ready by then
    async def start_consumer() -> None:
        await consumer.start()

    @app.on_shutdown  # before the committers stop: what was delivered is finished first
    async def stop_consumer() -> None:
        await consumer.stop()


def _subscribe_saga_replies(broker: RabbitBroker, runtime: Runtime, worker: str) -> None:
    @broker.subscriber(
        topology.replies_queue(worker), decoder=raw_body, no_reply=True,
        title=topology.replies_queue_name(worker), description=f"Replies to {worker}'s saga steps.",
    )
    async def consume(body: bytes, msg: Delivery) -> None:
        # Named by the queue: a reply's routing key is the queue's name on the default exchange.
        with tracing.consuming(msg.raw_message):
            await runtime.consume_saga_reply(body, msg)


def _keep_running(app: FastStream, name: str, run_once: Callable[[], Awaitable[bool]], interval_s: float) -> None:
    """Run `run_once` again at once while it says more is due, else after `interval_s`, from start
    to shutdown. An exception is logged and the duty goes on: it must outlive a database restart
    or a full disk."""
    tasks: list[asyncio.Task[None]] = []

    async def forever() -> None:
        while True:
            try:
                while await run_once():
                    pass
            except Exception:
                log.exception("%s failed", name)
            await asyncio.sleep(interval_s)

    @app.after_startup
    async def start_duty() -> None:
        tasks.append(asyncio.create_task(forever(), name=name))

    @app.on_shutdown
    async def stop_duty() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()


def _add_duty(app: FastStream, runtime: Runtime, duty: Duty) -> None:
    async def run_once() -> bool:
        return bool(await runtime.in_transaction(lambda conn: duty.run(runtime.duty_context(conn, duty.name))))

    _keep_running(app, f"{runtime.routes.worker} {duty.name}", run_once, duty.interval_s)


REASK_INTERVAL_S = 5.0  # how often a worker with saga steps looks for unanswered ones


def _reask_duty(worker: str) -> Duty:
    """A step whose answer never came is asked again (bus/saga.py); each time is a warning."""

    async def run(ctx: Context) -> bool:
        asked = await saga.reask_unanswered(ctx.conn)
        for step in asked:
            log.warning("saga step %s got no answer %.0f s after its %s was published: asked again (time %d)",
                        step.step_id, step.waited_s, step.routing_key, step.times)  # fmt: skip
        if asked:
            observability.SAGA_REASKED.labels(worker).inc(len(asked))
        return len(asked) == saga.REASK_BATCH

    return Duty("saga re-ask", run, REASK_INTERVAL_S)


def _add_start_up(app: FastStream, runtime: Runtime, start_up: StartUp) -> None:
    @app.on_startup  # after the pool opens, before any queue is consumed
    async def start() -> None:
        await runtime.in_transaction(lambda conn: start_up(runtime.duty_context(conn, "start")))


def _add_stream(app: FastStream, runtime: Runtime, route: StreamRoute, settings: Settings, amqp_url: str) -> None:
    """Every replica runs a reader; the one holding the stream's lease reads (bus/streams.py)."""
    readers: list[StreamReader] = []
    worker = runtime.routes.worker

    @app.after_startup
    async def start_reader() -> None:
        assert runtime.pool is not None
        reader = StreamReader(
            route.stream, route.apply, pool=runtime.pool, dsn=settings.worker_database_url(worker), schema=worker,
            amqp_url=amqp_url, limits=StreamLimits(), max_body_bytes=settings.max_body_bytes,
        )  # fmt: skip
        await reader.start()
        readers.append(reader)

    @app.on_shutdown
    async def stop_reader() -> None:
        for reader in readers:
            await reader.stop()
        readers.clear()


def check_event_routes(routes: Routes) -> None:
    """The two halves of a worker's event sheet agree: every event route is bound to the worker's
    queue (else it would never arrive), and every binding of its own domain has a route (else
    the worker would consume and drop it)."""
    bindings = topology.EVENT_BINDINGS.get(routes.worker, ())
    keys = [route.contract.routing_key for route in routes.events]
    unbound = [key for key in keys if not any(topology.topic_matches(b, key) for b in bindings)]
    assert not unbound, f"{routes.worker} routes events its queue is not bound to: {unbound}"
    unrouted = [b for b in bindings if b not in topology.SHARED_EVENT_KEYS
                and not any(topology.topic_matches(b, key) for key in keys)]  # fmt: skip
    assert not unrouted, f"{routes.worker} binds events it has no route for: {unrouted}"


class WorkerApp(FastStream):
    """A worker's FastStream application, with the runtime and group committers tests reach."""

    runtime: Runtime
    committers: dict[type[Command], Committer]


def worker_app(routes: Routes, settings: Settings | None = None) -> WorkerApp:
    settings = settings or load()
    worker = routes.worker
    check_event_routes(routes)
    process = f"{worker}-worker"
    observability.configure_logging(process)
    registry = observability.metrics_registry(*routes.metrics)
    # The worker's own broker user: what it publishes is known to be its, and it may touch only its
    # own queues (permissions made by `cbs migrate`, which alone declares the topology).
    amqp_url = settings.process_amqp_url(worker)
    tracing.setup(process)
    broker = make_broker(process, settings, registry, amqp_url=amqp_url)
    runtime = Runtime(routes, max_body_bytes=settings.max_body_bytes, user_id=broker_user(worker))
    handled = {c.routing_key for c in routes.commands} | {c.routing_key for c in routes.batched}
    missing = {c.routing_key for c in topology.worker_commands(worker)} - handled
    assert not missing, f"{worker} has contracts without handlers: {sorted(missing)}"
    for contract, handler in routes.commands.items():
        _subscribe_command(broker, runtime, contract, handler)
    limits = BatchLimits(window_ms=settings.group_commit_window_ms)
    committers: dict[type[Command], Committer] = {}
    batched: list[tuple[Any, Committer]] = []
    for contract, batch_handler in routes.batched.items():
        committers[contract] = GroupCommitter(
            contract.routing_key, functools.partial(runtime.commit_and_copy, contract, batch_handler), limits,
            lambda delivered: routes.batch_units(delivered.command),
        )  # fmt: skip
        batched.append((contract, committers[contract]))
    _subscribe_get_operation(broker, runtime, worker)
    # Events commit in batches as batched commands do: a payment's completion reaches the account
    # and notification workers as one event each, and one transaction an event cost each of them
    # an fsync and FastStream's per-message pipeline (issue 10's payment profile).
    # No window: events come in chains (close of business asks each step by an event and learns it
    # is done by another, 16 hops a day), and a 2 ms window at each hop made a 285-day catch-up
    # take 95 s instead of 55-78 (tests/integration/test_day_bus.py). Batches still form: what
    # arrives while a batch commits waits for the next, which takes it all at once.
    events: EventCommitter | None = None
    if worker in topology.EVENT_BINDINGS:
        events = GroupCommitter(f"{worker}.events", runtime.commit_events, BatchLimits(window_ms=0))
    if routes.continuations:
        _subscribe_saga_replies(broker, runtime, worker)

    relay: OutboxRelay | None = None

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        runtime.pool = await db.create_pool(
            settings.worker_database_url(worker), worker, max_size=settings.db_pool_max, application_name=process,
            traced=tracing.ON,
        )
        observability.watch_pool(runtime.pool)
        async with runtime.pool.acquire() as conn:
            for warning in await db.server_upkeep_warnings(conn):
                log.warning("%s", warning)
        try:
            yield
        finally:
            await runtime.pool.close()
            tracing.shutdown()  # its last spans leave before the process does

    app = WorkerApp(broker, lifespan=lifespan, specification=AsyncAPI(title=f"CBS {worker}", version="1.0.0"))
    app.runtime = runtime

    reply_connection: list[Any] = []

    @app.on_startup  # inside the lifespan, before any queue is consumed: every reply finds it
    async def open_reply_channel() -> None:
        connection = await aio_pika.connect_robust(amqp_url, client_properties={"connection_name": f"{worker} replies"})
        reply_connection.append(connection)
        runtime.reply_channel = await connection.channel(publisher_confirms=True)

    @app.after_shutdown
    async def close_reply_channel() -> None:
        runtime.reply_channel = None
        for connection in reply_connection:
            await connection.close()

    @app.after_startup
    async def start_relay() -> None:
        nonlocal relay
        assert runtime.pool is not None
        relay = OutboxRelay(runtime.pool, amqp_url, poll_interval_s=settings.outbox_poll_ms / 1000)
        await relay.start()
        runtime.publisher = relay

    metrics_server: list[Any] = []

    @app.after_startup
    async def serve_metrics() -> None:
        if settings.metrics_port is None:
            return
        try:
            server, _ = start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
        except OSError as exc:  # metrics are worth a warning, never a worker that cannot start
            log.warning("metrics not served on %s:%s: %r", settings.metrics_host, settings.metrics_port, exc)
            return
        metrics_server.append(server)

    @app.on_shutdown
    async def stop_relay() -> None:
        runtime.publisher = None  # what is still written from here on is left to the next start's relay
        if relay is not None:
            await relay.stop()

    @app.after_shutdown
    async def stop_committers() -> None:
        for committer in [*committers.values(), *([events] if events else [])]:
            await committer.stop()
        for server in metrics_server:
            server.shutdown()
            server.server_close()

    for contract, committer in batched:
        _consume_direct(app, DirectConsumer(topology.command_queue(contract.routing_key).name,
                                            batched_command(runtime, contract, committer.submit), amqp_url=amqp_url,
                                            prefetch=settings.batch_prefetch, graceful_timeout_s=settings.graceful_timeout_s))  # fmt: skip
    if events is not None:
        _consume_direct(app, DirectConsumer(topology.event_queue(worker).name, batched_events(runtime, events.submit),
                                            amqp_url=amqp_url, prefetch=settings.batch_prefetch,
                                            graceful_timeout_s=settings.graceful_timeout_s))  # fmt: skip
    if routes.continuations:
        _add_duty(app, runtime, _reask_duty(worker))
    if routes.on_start is not None:
        _add_start_up(app, runtime, routes.on_start)
    for duty in routes.duties:
        _add_duty(app, runtime, duty)
    for stream in routes.streams:
        _add_stream(app, runtime, stream, settings, amqp_url)
    app.committers = committers
    return app
