"""The audit worker process: `cbs worker audit`: its routes, plus its two taps."""

from __future__ import annotations

from faststream.rabbit import Channel, RabbitExchange, RabbitQueue

from bus import topology
from bus.broker import Delivery
from bus.settings import load
from bus.worker import raw_body, worker_app
from workers.audit.handlers import records
from workers.audit.handlers.taps import MAX_BATCH, Kind, Recorder, draft_of
from workers.audit.routes import ROUTES

settings = load()
app = worker_app(ROUTES, settings)
broker = app.broker
assert broker is not None
TAP_PREFETCH = max(settings.batch_prefetch, MAX_BATCH)
recorder = Recorder(app.runtime.in_transaction, records.append, queue_size=2 * TAP_PREFETCH)


# The taps are not Routes: they take every message of any type raw, store even what does not
# parse, never reply or dead-letter, and ack only once the recorder has committed the record.
def _tap(queue: RabbitQueue, exchange: RabbitExchange, kind: Kind) -> None:
    @broker.subscriber(
        queue, exchange, decoder=raw_body, no_reply=True, channel=Channel(prefetch_count=TAP_PREFETCH), title=queue.name,
        description=f"Audit's tap: every {kind} on `{exchange.name}` (`#`), recorded and hash-chained.",
    )  # fmt: skip
    async def record(body: bytes, msg: Delivery) -> None:
        raw = msg.raw_message
        draft = draft_of(
            body, exchange=exchange.name, kind=kind, message_id=raw.message_id, routing_key=raw.routing_key or "",
            message_type=raw.type, correlation_id=raw.correlation_id, headers=dict(raw.headers or {}),
            user_id=raw.user_id, max_body_bytes=settings.max_body_bytes,
        )  # fmt: skip
        await recorder.record(draft)


for _queue, _exchange in topology.audit_tap_queues():
    _tap(_queue, _exchange, "command" if _exchange is topology.COMMANDS else "event")


@app.after_shutdown
async def stop_recorder() -> None:
    await recorder.stop()
