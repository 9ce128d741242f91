"""The audit worker process: `cbs worker audit`.

`worker_app` serves audit's own commands; the two taps are added here: raw subscribers on
`audit.commands` and `audit.events`, each on its own channel (its prefetch bounds what waits in
memory), handing every delivery to one batching writer and returning (so acking) only after the
record is committed. A background duty archives expired records (workers/audit/archive.py) every
`CBS_AUDIT_RETENTION_SWEEP_S` seconds into `CBS_AUDIT_ARCHIVE_DIR`.
"""

from __future__ import annotations

from faststream.rabbit import Channel

from bus import topology
from bus.broker import Delivery
from bus.settings import load
from bus.worker import raw_body, worker_app
from workers.audit import handlers
from workers.audit.recorder import MAX_BATCH, Kind, Recorder, draft_of
from workers.audit.routes import ROUTES

settings = load()
app = worker_app(ROUTES, settings)
runtime = app.runtime  # type: ignore[attr-defined]
broker = app.broker
assert broker is not None
TAP_PREFETCH = max(settings.batch_prefetch, MAX_BATCH)
recorder = Recorder(runtime.in_transaction, handlers.append, queue_size=2 * TAP_PREFETCH)
app.recorder = recorder  # type: ignore[attr-defined]  # tests read its counters


def _tap(queue: object, exchange: object, kind: Kind) -> None:
    name = exchange.name  # type: ignore[attr-defined]

    @broker.subscriber(
        queue, exchange, decoder=raw_body, no_reply=True, channel=Channel(prefetch_count=TAP_PREFETCH),  # type: ignore[arg-type]
        title=queue.name, description=f"Audit's tap: every {kind} on `{name}` (`#`), recorded and hash-chained.",  # type: ignore[attr-defined]
    )  # fmt: skip
    async def record(body: bytes, msg: Delivery) -> None:
        raw = msg.raw_message
        draft = draft_of(
            body, exchange=name, kind=kind, message_id=raw.message_id, routing_key=raw.routing_key or "",
            message_type=raw.type, correlation_id=raw.correlation_id, headers=dict(raw.headers or {}),
            user_id=raw.user_id, max_body_bytes=settings.max_body_bytes,
        )  # fmt: skip
        await recorder.record(draft)


for _queue, _exchange in topology.audit_tap_queues():
    _tap(_queue, _exchange, "command" if _exchange is topology.COMMANDS else "event")


@app.after_shutdown
async def stop_recorder() -> None:
    await recorder.stop()
