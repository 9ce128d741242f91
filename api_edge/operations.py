"""`GET /v1/operations/{id}`: the reply of a command that outlived the HTTP wait (a 202).

The edge stores nothing: the owning worker's inbox keeps every reply by message_id.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from api_edge.auth import Principal, require
from api_edge.errors import problem
from api_edge.gateway import IDEMPOTENCY_KEY_MAX, build, gateway_of, reply_response
from bus import topology
from bus.correlator import ReplyTimeout
from bus.settings import WORKERS
from contracts.common import GetOperation, OperationStatus

router = APIRouter(prefix="/v1/operations", tags=["operations"])

# `<worker>.<message id>`: the message id is the client's Idempotency-Key (or one the edge made).
OperationId = Annotated[str, Path(
    min_length=3, max_length=max(map(len, WORKERS)) + 1 + IDEMPOTENCY_KEY_MAX,
    description="`<worker>.<message id>`, as a 202 named it (its `operation_id`)",
)]  # fmt: skip


RequestHash = Annotated[str | None, Query(
    alias="request", pattern=r"^[0-9a-f]{16,64}$",
    description="the request the 202's status URL names (a prefix of its body's SHA-256): another request "
    "that used the same key first is answered `idempotency_key_reused`, never with its reply",
)]  # fmt: skip


@router.get("/{operation_id}")
async def get_operation(operation_id: OperationId, request: Request, who: Principal = require(None),
                        request_hash: RequestHash = None) -> Response:  # fmt: skip
    """The stored reply of the caller's own operation (only its asker may read it)."""
    worker, _, message_id = operation_id.partition(".")
    if worker not in WORKERS or not message_id or "\x00" in message_id:  # no key holds a NUL (see gateway)
        return problem(404, "operation_unknown", "operation ids look like <worker>.<idempotency key>")
    query = build(GetOperation, {"operation_id": message_id, "request_hash": request_hash})  # e.g. a key longer than any the edge takes: 400
    if isinstance(query, Response):
        return query
    gateway = gateway_of(request)
    try:
        reply = await gateway.correlator.request(
            topology.get_operation_key(worker),
            query.model_dump(mode="json"),
            GetOperation.message_type,
            message_id=uuid.uuid4().hex,
            timeout_s=gateway.timeout_s,
            headers={"x-actor": who.actor_header()},
        )
    except ReplyTimeout:
        return problem(503, "unavailable", f"the {worker} worker did not answer in time", headers={"Retry-After": "5"})
    if not reply.ok:
        return reply_response(reply)
    status = OperationStatus.model_validate(reply.result)
    if status.status == "unknown" or status.reply is None:
        # Not (yet) received by the worker: it may still be queued. The client may retry its POST.
        return problem(404, "operation_unknown", "no reply is recorded for this operation (yet)")
    return reply_response(status.reply)
