"""How a route reaches a worker: the command built from the request (or a 400), sent through the
correlator, and its reply turned into an HTTP response."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from fastapi import Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError, create_model

from api_edge.auth import Principal
from api_edge.errors import problem, status_for
from bus.correlator import Backpressure, Correlator, ReplyTimeout, Unroutable, encode, request_hash
from contracts import common
from contracts.common import Command, Reply

IDEMPOTENCY_KEY_MAX = 200
REQUEST_HASH_CHARS = 16  # of the body's SHA-256 hex, in a 202's status URL: 64 bits tell requests apart
ContractT = TypeVar("ContractT", bound=BaseModel)


def worker_of(command: type[Command] | Command) -> str:
    return command.routing_key.split(".", 1)[0]


def operation_id(worker: str, message_id: str) -> str:
    return f"{worker}.{message_id}"


async def idempotency_key(
    idempotency_key: str | None = Header(default=None, description="client-made key; a retry with it never repeats the effect"),
) -> str | None:
    return idempotency_key


def holds_nul(command: Command) -> bool:
    """Whether some text of the command holds U+0000, which PostgreSQL text cannot store: the worker
    would fail on it at every delivery and never answer. No valid request holds one."""
    return common.holds_nul(command.__pydantic_serializer__.to_json(command))  # its JSON, as bytes


def body_model(contract: type[Command], *, exclude: set[str], name: str) -> type[BaseModel]:
    """The HTTP body of a command whose ids come from the path: the contract minus those fields."""
    fields: dict[str, Any] = {
        field_name: (info.annotation, info) for field_name, info in contract.model_fields.items() if field_name not in exclude
    }
    return create_model(name, __config__=contract.model_config, **fields)  # type: ignore[call-overload]


def reply_response(reply: Reply, *, created: bool = False) -> Response:
    if reply.ok:
        return JSONResponse(reply.result, status_code=201 if created else 200)
    assert reply.error is not None
    return problem(status_for(reply.error.code), reply.error.code, reply.error.message, reply.error.details)


def build(contract: type[ContractT], data: dict[str, Any]) -> ContractT | Response:
    """Validate path + body into the contract; a mismatch is the client's 400, never the route's 500."""
    try:
        return contract.model_validate(data)
    except ValidationError as exc:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return problem(400, "invalid_message", f"not a valid {contract.__name__}", errors)


class Gateway:
    """The one way a route reaches a worker: build the command (a mismatch is the client's 400),
    send it, and answer with the reply or with why there is none."""

    def __init__(self, correlator: Correlator, timeout_s: float) -> None:
        self.correlator = correlator
        self.timeout_s = timeout_s

    async def change(
        self,
        contract: type[Command],
        data: dict[str, Any],
        principal: Principal,
        key: str | None,
        *,
        created: bool = False,
        require_key: bool = True,
    ) -> Response:
        """A change: the client's Idempotency-Key (required on POST) becomes the message_id, so a
        retry is answered from the worker's inbox instead of acting twice."""
        command = build(contract, data)
        if isinstance(command, Response):
            return command
        if not command.read_only:
            if key is None and require_key:
                return problem(400, "idempotency_key_required", "POST requires an Idempotency-Key header")
            if key is not None and not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
                return problem(400, "invalid_message", f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} characters")
        return await self.answer(command, principal, partial(reply_response, created=created), message_id=key)

    async def query(self, contract: type[Command], data: dict[str, Any], principal: Principal) -> Response:
        """A read: built like a change, but with no key (each read is asked afresh)."""
        return await self.change(contract, data, principal, None, require_key=False)

    async def answer(
        self,
        command: Command,
        principal: Principal,
        respond: Callable[[Reply], Response] = reply_response,
        *,
        message_id: str | None = None,
    ) -> Response:
        """The reply, as `respond` answers it; or the response that says why there is none (400,
        202, 503)."""
        if holds_nul(command):
            return problem(400, "invalid_message", "text may not hold the NUL character (U+0000)")
        message_id = message_id or uuid.uuid4().hex
        try:
            reply = await self._send(command, principal, message_id)
        except ReplyTimeout:
            op = operation_id(worker_of(command), message_id)
            # The status URL names this request, not only its key: should another request have
            # used the key first, this one's status is `idempotency_key_reused`, never the other's.
            url = f"/v1/operations/{op}?request={request_hash(encode(command))[:REQUEST_HASH_CHARS]}"
            return JSONResponse(
                {"operation_id": op, "status": "accepted", "status_url": url},
                status_code=202,
                headers={"Location": url},
            )
        except Backpressure as exc:
            return problem(503, "backpressure", str(exc), headers={"Retry-After": "1"})
        except Unroutable as exc:
            return problem(503, "unavailable", str(exc), headers={"Retry-After": "5"})
        return respond(reply)

    async def read(self, command: Command, principal: Principal) -> Reply | Response:
        """One read of several a route composes: the reply, or the response that says why there is
        none (a read that times out is asked again by the client, never tracked as an operation)."""
        try:
            return await self._send(command, principal, uuid.uuid4().hex)
        except ReplyTimeout:
            return problem(504, "timeout", f"{worker_of(command)} did not answer in time", headers={"Retry-After": "1"})
        except Backpressure as exc:
            return problem(503, "backpressure", str(exc), headers={"Retry-After": "1"})
        except Unroutable as exc:
            return problem(503, "unavailable", str(exc), headers={"Retry-After": "5"})

    async def _send(self, command: Command, principal: Principal, message_id: str) -> Reply:
        return await self.correlator.send(
            command, message_id=message_id, timeout_s=self.timeout_s, headers={"x-actor": principal.actor_header()}
        )


def gateway_of(request: Request) -> Gateway:
    """The edge's gateway, made at start-up (app.lifespan)."""
    gateway: Gateway = request.app.state.gateway
    return gateway
