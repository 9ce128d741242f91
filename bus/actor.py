"""Who a message acts for, and the ownership rule every worker applies to customers.

Only the broker-checked `user_id` says who published a message (RabbitMQ refuses a `user_id`
that is not the connection's user; DESIGN §3). So every command must carry one:

- the edge's user: the person the edge authenticated is in `x-actor`, believed for that reason;
  without the header the edge acts as itself (its own flows, e.g. a login);
- a partner's user (`partner.<name>`): the partner itself, whatever its headers or body claim;
- a service's user (a worker, the operator's tools): the service, which may name who it acts for
  (it forwards what the edge or a checker decided);
- no `user_id`, or any other user: nobody (`None`): the runtime refuses it `unauthenticated`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel

from bus.topology import PARTNER_PREFIX
from contracts.common import Reply

Handler = Callable[[Any, Any], Awaitable[Any]]
C = TypeVar("C", bound=BaseModel)
EDGE, PARTNER, SERVICE = "edge", "partner", "service"


@dataclass(frozen=True)
class Actor:
    subject: str
    roles: tuple[str, ...] = ()
    customer_id: UUID | None = None
    via: str = EDGE  # edge, partner, service

    @property
    def is_customer(self) -> bool:
        return "customer" in self.roles


@dataclass(frozen=True)
class Trust:
    """The broker users a worker knows: whose `x-actor` it believes, and which are the bank's own."""

    edge: frozenset[str]
    services: frozenset[str]


def actor_of(user_id: str | None, header: object, trust: Trust) -> Actor | None:
    """Who a message acts for, from its broker-checked `user_id` (see the module's text)."""
    if not user_id:
        return None
    if user_id.startswith(PARTNER_PREFIX):
        return Actor(subject=user_id, via=PARTNER)
    if user_id in trust.services:
        return Actor(subject=user_id, via=SERVICE)
    if user_id not in trust.edge:
        return None
    if header is None:
        return Actor(subject=user_id, via=EDGE)
    if not isinstance(header, (str, bytes)):
        return None
    try:
        claims = json.loads(header)
        customer_id = claims.get("customer_id")
        return Actor(subject=str(claims["sub"]), roles=tuple(claims.get("roles", ())),
                     customer_id=UUID(customer_id) if customer_id else None)  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # an unreadable header grants nothing


def unauthenticated(user_id: str | None) -> Reply:
    who = f"broker user {user_id!r}" if user_id else "a message without user_id"
    return Reply.refusal("unauthenticated", f"{who} is not the edge, a partner or a service of the bank",
                         {"user_id": user_id})  # fmt: skip


def acting_subject(actor: Actor | None, claimed: str) -> str:
    """Who did it, for the record: the edge's authenticated person or the partner itself; a
    service of the bank names who it acts for. A body never names somebody else otherwise."""
    if actor is None or actor.via == SERVICE:
        return claimed
    return actor.subject


def believed_permissions(actor: Actor | None, claimed: Iterable[str]) -> list[str]:
    """Permissions stated in a body are the edge's verified ones (or a service's); a partner's
    claim is worth nothing."""
    if actor is not None and actor.via == PARTNER:
        return []
    return list(claimed)


# Body fields that name who did something (a maker, a KYC reviewer): believed only from a service.
WHO_FIELDS = ("actor", "reviewer", "requested_by")


def believed(command: C, actor: Actor | None) -> C:
    """The command as far as it is believed, for every worker alike: a body's `actor`, `reviewer`
    … (who did it) is the authenticated subject unless a service of the bank names it, and a
    partner's stated `permissions` are none. The handler never sees what only the body claimed.
    A read (`read_only`) changes nothing and names nobody: its `actor` is a filter, kept as sent."""
    if getattr(type(command), "read_only", False):
        return command
    fields = type(command).model_fields
    update: dict[str, Any] = {}
    if actor is not None and actor.via != SERVICE:
        update |= {name: actor.subject for name in WHO_FIELDS if name in fields}
    if "permissions" in fields and actor is not None and actor.via == PARTNER:
        update["permissions"] = []
    return command.model_copy(update=update) if update else command


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
