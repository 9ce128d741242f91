"""Who a message acts for, and the ownership rule every worker applies to customers.

The edge names the person it authenticated in `x-actor`; a worker believes that header only
when the broker-validated `user_id` is one of the edge's broker users (a partner can write any
header, never another user_id). A partner's message acts as the partner itself. A message
with no `user_id` comes from an internal service, limited by the broker's permissions alone.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from contracts.common import Reply

PARTNER_PREFIX = "partner."
Handler = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Actor:
    subject: str
    roles: tuple[str, ...] = ()
    customer_id: UUID | None = None
    via: str = "edge"  # edge, partner

    @property
    def is_customer(self) -> bool:
        return "customer" in self.roles


def edge_users() -> frozenset[str]:
    """`CBS_EDGE_BROKER_USERS`, else the user of CBS_AMQP_URL (one shared user in development)."""
    explicit = os.environ.get("CBS_EDGE_BROKER_USERS")
    if explicit:
        return frozenset(u.strip() for u in explicit.split(",") if u.strip())
    return frozenset({urlsplit(os.environ.get("CBS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")).username or "guest"})


def actor_of(user_id: str | None, header: object, trusted: frozenset[str]) -> Actor | None:
    if user_id and user_id.startswith(PARTNER_PREFIX):
        return Actor(subject=user_id, roles=("partner",), via="partner")
    if not user_id or user_id not in trusted or not isinstance(header, (str, bytes)):
        return None
    try:
        claims = json.loads(header)
        customer_id = claims.get("customer_id")
        return Actor(subject=str(claims["sub"]), roles=tuple(claims.get("roles", ())),
                     customer_id=UUID(customer_id) if customer_id else None)  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # an unreadable header grants nothing


def not_for_customers(actor: Actor | None) -> Reply | None:
    """Staff and system commands: a customer's request is refused whatever the edge allowed."""
    if actor is not None and actor.is_customer:
        return Reply.refusal("forbidden", "customers may not do this")
    return None


def owner_only(actor: Actor | None, owner_id: UUID | None) -> Reply | None:
    """A customer acts only on what they own; staff, partners and services are not limited here."""
    if actor is not None and actor.is_customer and (actor.customer_id is None or actor.customer_id != owner_id):
        return Reply.refusal("not_owner", "this belongs to another customer")
    return None


def owned_by(owner: Callable[[Any], UUID | None]) -> Callable[[Handler], Handler]:
    """Wrap a handler whose command names its owner (e.g. `customer_id`): customers get only theirs."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(ctx: Any, cmd: Any) -> Any:
            return owner_only(ctx.actor, owner(cmd)) or await handler(ctx, cmd)

        return guarded

    return wrap


def staff_only(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def guarded(ctx: Any, cmd: Any) -> Any:
        return not_for_customers(ctx.actor) or await handler(ctx, cmd)

    return guarded
