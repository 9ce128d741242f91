"""Wait for the cluster to be quiet before a bench's load starts.

A set-up (opening and funding a thousand accounts) leaves work behind it: the notification worker
greets every new account, the payment and loan workers learn of it, and audit records it all. Load
started on top of that backlog measures the backlog as much as the load, and its CPU split charges
the set-up's work to the load. So the load waits until every worker queue (commands, events,
replies) has had no ready message for a few looks in a row. Audit's taps are streams, whose depth
is the retained log and not a backlog, so they are not looked at.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
from aio_pika.exceptions import ChannelClosed

from bus import topology
from bus.settings import WORKERS

LOOK_EVERY_S = 0.5
QUIET_LOOKS = 4  # in a row: a queue drained between two events is not yet a quiet cluster
MAX_WAIT_S = 300.0


def worker_queue_names() -> list[str]:
    names: list[str] = []
    for worker in WORKERS:
        names += [topology.command_queue(key).name for key in topology.command_keys(worker)]
        if worker in topology.EVENT_BINDINGS:
            names.append(topology.event_queue(worker).name)
        names.append(topology.replies_queue_name(worker))
    return names


async def ready_messages(channel: aio_pika.abc.AbstractChannel, names: list[str]) -> int:
    total = 0
    for name in names:
        queue = await channel.declare_queue(name, passive=True)
        total += queue.declaration_result.message_count or 0
    return total


async def wait_until_quiet(amqp_url: str, max_wait_s: float = MAX_WAIT_S) -> float:
    """Seconds waited; raises TimeoutError when the cluster is still busy after `max_wait_s`."""
    start = time.perf_counter()
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        names = []
        for name in worker_queue_names():  # a worker this cluster does not run has no queues
            try:
                await channel.declare_queue(name, passive=True)
                names.append(name)
            except ChannelClosed:
                channel = await connection.channel()
        quiet = 0
        while quiet < QUIET_LOOKS:
            if time.perf_counter() - start > max_wait_s:
                raise TimeoutError(f"the cluster's queues still hold messages after {max_wait_s:.0f} s")
            quiet = quiet + 1 if await ready_messages(channel, names) == 0 else 0
            await asyncio.sleep(LOOK_EVERY_S)
    finally:
        await connection.close()
    return time.perf_counter() - start
