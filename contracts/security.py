"""Refusals of access, as facts: every refusal is recorded. Audit binds `#` and stores them.

- `edge.auth_failed` / `edge.access_denied`: the edge refused a request itself (401 / 403);
  published directly with confirms, since the edge has no outbox (banking-rules §8).
- `<worker>.access_denied`: a worker refused a command for who sent it (`forbidden`,
  `not_owner`, a partner's command outside its grant); through the worker's outbox.

None carries a secret: no token, key or password, only who, what and why.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from contracts.common import Command, Event

# The workers that answer commands; a test keeps this in step with bus.settings.WORKERS.
WORKERS = ("customer", "account", "ledger", "identity", "payment", "audit", "day", "loan", "notification")


class EdgeAuthFailed(Event):
    """The edge answered 401: no credentials, or credentials it could not accept."""

    routing_key: ClassVar[str] = "edge.auth_failed"

    method: str = Field(max_length=10, description="HTTP method")
    path: str = Field(max_length=500, description="the route asked for (no query string)")
    reason: str = Field(max_length=300, description="why, e.g. `invalid token: Signature has expired`")
    client: str | None = Field(default=None, max_length=100, description="the caller's address as the edge saw it")
    occurred_at: AwareDatetime = Field(description="UTC time of the refusal")


class EdgeAccessDenied(Event):
    """The edge answered 403: an authenticated caller without the permission the route needs."""

    routing_key: ClassVar[str] = "edge.access_denied"

    subject: str = Field(max_length=200, description="who asked (user id, API key id or partner)")
    roles: list[str] = Field(max_length=20, description="the caller's roles")
    permission: str | None = Field(default=None, max_length=100, description="the permission the route needs")
    method: str = Field(max_length=10, description="HTTP method")
    path: str = Field(max_length=500, description="the route asked for (no query string)")
    reason: str = Field(max_length=300, description="why")
    client: str | None = Field(default=None, max_length=100, description="the caller's address as the edge saw it")
    occurred_at: AwareDatetime = Field(description="UTC time of the refusal")


class AccessDenied(Event):
    """A worker refused a command because of who sent it. Each worker publishes it as
    `<worker>.access_denied` (the subclasses below)."""

    command: str = Field(max_length=200, description="routing key of the refused command")
    command_message_id: str = Field(max_length=200, description="message_id of the refused command")
    code: str = Field(max_length=100, description="the refusal code: forbidden, not_owner, …")
    reason: str = Field(max_length=500, description="the refusal's message")
    subject: str | None = Field(default=None, max_length=200, description="the actor the worker believed, if any")
    broker_user: str | None = Field(default=None, max_length=200, description="the broker user that published the command")
    occurred_at: AwareDatetime = Field(description="UTC time of the refusal")


def _access_denied(worker: str) -> type[AccessDenied]:
    return type(
        f"{worker.title()}AccessDenied",
        (AccessDenied,),
        {
            "__doc__": f"The {worker} worker refused a command because of who sent it.",
            "__module__": __name__,
            "routing_key": f"{worker}.access_denied",
        },
    )


ACCESS_DENIED: dict[str, type[AccessDenied]] = {worker: _access_denied(worker) for worker in WORKERS}

COMMANDS: tuple[type[Command], ...] = ()
EVENTS: tuple[type[Event], ...] = (EdgeAuthFailed, EdgeAccessDenied, *ACCESS_DENIED.values())
