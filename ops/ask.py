"""One command, one reply, for the operator's tools (`cbs ledger verify`).

On `bus.correlator.Correlator`, as the operator's broker user, with a reply queue of its own that
lives as long as the call. The bench keeps its own long-lived sender (ops/bench/transfers.py).
"""

from __future__ import annotations

import uuid
from urllib.parse import unquote, urlsplit

from bus import topology
from bus.correlator import Correlator
from contracts.common import Command, Reply


async def ask_once(command: Command, amqp_url: str, *, timeout_s: float) -> Reply:
    """Send `command` over `amqp_url` (ops's own: a command says who sent it) and wait for its
    reply; `bus.correlator.ReplyTimeout` when none comes within `timeout_s`."""
    correlator = Correlator(amqp_url, user_id=unquote(urlsplit(amqp_url).username or ""),
                            reply_queue=topology.ops_reply_queue(uuid.uuid4().hex[:12]))  # fmt: skip
    await correlator.start()
    try:
        return await correlator.send(command, message_id=uuid.uuid4().hex, timeout_s=timeout_s)
    finally:
        await correlator.stop()
