"""Workers' own check of what a partner may send (defence in depth, DESIGN §1, §3).

The broker's topic permissions already stop a partner publishing a routing key it was not given.
Each worker also keeps the partner's grant, learned from `partner.access_changed` events (never
from the broker's or another worker's tables), and refuses a partner's command outside it with
`forbidden`. The refusal is logged; audit, which binds `#` on `cbs.commands`, sees the command too.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

import asyncpg

from bus.topology import PARTNER_PREFIX
from contracts.common import Reply
from contracts.partner import PartnerAccessChanged

log = logging.getLogger("cbs.grants")

FORBIDDEN = "forbidden"


def may_send(user_id: str | None, routing_key: str, grants: Mapping[str, frozenset[str]]) -> bool:
    """Whether a command published with this validated `user_id` may be acted on.

    `grants` maps a partner's broker user (`partner.<name>`) to the routing keys it was given.
    A partner user may send only its keys. A user that is not a partner (the edge, a worker) is
    not a partner's to judge: True (a message with no `user_id` is refused before this, by
    `bus.actor`). The broker already enforces this with topic permissions before any worker sees
    the message; this is defence in depth, should a permission ever be set too wide.
    """
    if user_id is None or not user_id.startswith(PARTNER_PREFIX):
        return True
    return routing_key in grants.get(user_id, frozenset())


def decide(user_id: str | None, routing_key: str, grants: Mapping[str, frozenset[str]]) -> Reply | None:
    """The refusal for a command this publisher may not send, or None when it may (pure)."""
    if may_send(user_id, routing_key, grants):
        return None
    return Reply.refusal(
        FORBIDDEN,
        f"partner {user_id} may not send {routing_key}",
        {"partner": user_id, "routing_key": routing_key},
    )


async def load(conn: asyncpg.Connection, users: Collection[str]) -> dict[str, frozenset[str]]:
    """The grants of these partner users (one indexed query); a partner with no row has none."""
    if not users:
        return {}
    rows = await conn.fetch("SELECT partner, may_send FROM partner_grant WHERE partner = ANY($1::text[])", list(users))
    return {r["partner"]: frozenset(r["may_send"]) for r in rows}


def refuse(user_id: str | None, routing_key: str, grants: Mapping[str, frozenset[str]]) -> Reply | None:
    """`decide`, logged: a refused partner command is a security fact worth a WARNING."""
    refusal = decide(user_id, routing_key, grants)
    if refusal is not None:
        # Audit binds `#` on cbs.commands and records the command itself.
        log.warning("partner %s may not send %s: refused", user_id, routing_key,
                    extra={"partner": user_id, "routing_key": routing_key})  # fmt: skip
    return refusal


async def record(conn: asyncpg.Connection, event: PartnerAccessChanged) -> bool:
    """Keep the grant unless a newer one is already known; True when it was kept. Idempotent."""
    status = await conn.execute(
        "INSERT INTO partner_grant (partner, may_send, as_of) VALUES ($1, $2::text[], $3) "
        "ON CONFLICT (partner) DO UPDATE SET may_send = EXCLUDED.may_send, as_of = EXCLUDED.as_of "
        "WHERE partner_grant.as_of < EXCLUDED.as_of",
        event.partner,
        sorted(set(event.may_send)),
        event.occurred_at,
    )
    kept = status.endswith(" 1")
    log.info("partner %s may send %s as of %s%s", event.partner, sorted(set(event.may_send)),
             event.occurred_at.isoformat(), "" if kept else " (older than the grant held: ignored)")  # fmt: skip
    return kept
