"""Saga steps: a worker that needs another's answer records the step and moves on (DESIGN §3).

A crash between sending and the reply loses nothing: the step is a row, the command left
through the outbox, and the reply waits in `<worker>.replies` until the worker is back.

And a step whose answer never comes is asked again (`reask_unanswered`): the same command under
the same message_id, which the asked worker's inbox answers with the reply it stored (or, had
the command never reached it, acts on once). The asker owns the step, so the asker makes sure it
ends, whatever the broker lost on the way: CI saw one order of 370 wait forever after a RabbitMQ
node was killed (tests/cluster).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import asyncpg

from bus import outbox, topology
from contracts.common import Command

# A step unanswered this long after its command was published is asked again; each further ask
# waits twice as long as the one before, up to REASK_MAX_DOUBLINGS doublings (32 minutes), so a
# worker that is down for hours is not flooded with repeats when it comes back. Most steps ask a
# worker that answers as soon as it has the command (the ledger), and 30 s is far past a healthy
# answer. A step that waits long by design (a loan's payout by an external rail, answered when the
# clearing partner settles) is asked again too, harmlessly: the repeat finds the asked worker's
# inbox row still without a reply, and gets none.
REASK_AFTER = timedelta(seconds=30)
REASK_MAX_DOUBLINGS = 6
REASK_BATCH = 100  # steps asked again per transaction



class Origin(Protocol):
    """The message a step answers in the end (a handler's Context is one)."""

    consumer: str
    message_id: str
    reply_to: str | None
    correlation_id: str | None


# What a completed step owes its origin: (origin consumer, origin message_id, the reply as JSON).
Answer = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True)
class Step:
    step_id: str
    kind: str
    state: dict[str, Any]
    origin_consumer: str
    origin_message_id: str
    origin_reply_to: str | None
    origin_correlation_id: str | None
    completed: bool = False


async def record(conn: asyncpg.Connection, step_id: str, kind: str, state: dict[str, Any], origin: Origin) -> None:
    await conn.execute(
        "INSERT INTO saga_step (step_id, kind, state, origin_consumer, origin_message_id, origin_reply_to, "
        "origin_correlation_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        step_id,
        kind,
        state,
        origin.consumer,
        origin.message_id,
        origin.reply_to,
        origin.correlation_id,
    )


async def record_joint(conn: asyncpg.Connection, joint_id: str, consumer: str, state: dict[str, Any]) -> None:
    """A joint step (bus/joint.py): it answers nobody itself, its members do."""
    await conn.execute(
        "INSERT INTO saga_step (step_id, kind, state, origin_consumer, origin_message_id) VALUES ($1, 'joint', $2, $3, $1)",
        joint_id,
        state,
        consumer,
    )


async def send_request(conn: asyncpg.Connection, worker: str, command: Command, step_id: str,
                       causation_id: str | None) -> None:  # fmt: skip
    """A saga step's command, through the outbox: the step id is its message_id (a resend is the
    same message) and its correlation_id (the reply finds the step)."""
    await outbox.add_command(conn, command, message_id=step_id, correlation_id=step_id,
                             reply_to=topology.replies_queue_name(worker), causation_id=causation_id)  # fmt: skip


async def asked_worker(conn: asyncpg.Connection, step_id: str) -> str | None:
    """The worker a step's command went to (its outbox row: the step id is the command's
    message_id), whose broker user alone may answer it; None when the row is gone."""
    key = await conn.fetchval("SELECT routing_key FROM outbox WHERE message_id = $1", step_id)
    return key.split(".", 1)[0] if key else None


async def lock(conn: asyncpg.Connection, step_id: str) -> Step | None:
    """The step, locked so a repeated reply waits for the first and then finds it completed."""
    row = await conn.fetchrow(
        "SELECT step_id, kind, state, origin_consumer, origin_message_id, origin_reply_to, origin_correlation_id, "
        "completed_at IS NOT NULL AS completed FROM saga_step WHERE step_id = $1 FOR UPDATE",
        step_id,
    )
    return Step(**dict(row)) if row else None


async def lock_many(conn: asyncpg.Connection, step_ids: list[str]) -> dict[str, Step]:
    """`lock` for several steps in one round trip (a joint step's members), in id order."""
    rows = await conn.fetch(
        "SELECT step_id, kind, state, origin_consumer, origin_message_id, origin_reply_to, origin_correlation_id, "
        "completed_at IS NOT NULL AS completed FROM saga_step WHERE step_id = ANY($1::text[]) "
        "ORDER BY step_id FOR UPDATE",
        step_ids,
    )
    return {row["step_id"]: Step(**dict(row)) for row in rows}


async def complete_many(conn: asyncpg.Connection, step_ids: list[str], answers: list[Answer]) -> None:
    """`complete` for several steps and the origins' replies they owe, in one round trip."""
    if not step_ids:
        return
    await conn.execute(
        "WITH done AS (UPDATE saga_step SET completed_at = now() WHERE step_id = ANY($1::text[])) "
        "UPDATE inbox SET reply = a.reply::jsonb FROM unnest($2::text[], $3::text[], $4::text[]) AS a(consumer, message_id, reply) "
        "WHERE inbox.consumer = a.consumer AND inbox.message_id = a.message_id",
        step_ids,
        [consumer for consumer, _, _ in answers],
        [message_id for _, message_id, _ in answers],
        [json.dumps(reply) for _, _, reply in answers],
    )


async def complete(conn: asyncpg.Connection, step_id: str, *, answer: Answer | None = None) -> None:
    """Mark the step done; with `answer` (origin consumer, origin message_id, reply), also store the
    origin's reply in its inbox row, in the same round trip."""
    if answer is None:
        await conn.execute("UPDATE saga_step SET completed_at = now() WHERE step_id = $1", step_id)
        return
    await conn.execute(
        "WITH done AS (UPDATE saga_step SET completed_at = now() WHERE step_id = $1) "
        "UPDATE inbox SET reply = $4 WHERE consumer = $2 AND message_id = $3",
        step_id,
        *answer,
    )


@dataclass(frozen=True)
class Reasked:
    step_id: str
    routing_key: str
    times: int  # this ask included
    waited_s: float  # since the command was last published


async def reask_unanswered(conn: asyncpg.Connection, *, after: timedelta | None = None) -> list[Reasked]:
    """Open steps whose command was published `after` (doubled per earlier ask) ago and got no
    answer: their outbox rows are made unsent again, and the relay publishes them, unchanged, at
    its next poll. A joint step's command is its own row (its members have none); a step whose
    command is still unsent is the relay's already. Replicas share the work (SKIP LOCKED)."""
    rows = await conn.fetch(
        "WITH due AS ("
        " SELECT s.step_id, o.id, extract(epoch FROM now() - o.published_at)::float8 AS waited_s"
        " FROM saga_step s JOIN outbox o ON o.message_id = s.step_id"
        " WHERE s.completed_at IS NULL AND o.published_at IS NOT NULL"
        " AND o.published_at < now() - $1::interval * power(2, least(s.reasked, $2))"
        " ORDER BY o.published_at LIMIT $3 FOR UPDATE OF s, o SKIP LOCKED),"
        " asked AS (UPDATE outbox SET published_at = NULL, last_error = 'unanswered: asked again'"
        "  FROM due WHERE outbox.id = due.id RETURNING outbox.message_id, outbox.routing_key)"
        " UPDATE saga_step SET reasked = reasked + 1 FROM due JOIN asked ON asked.message_id = due.step_id"
        " WHERE saga_step.step_id = due.step_id"
        " RETURNING saga_step.step_id, asked.routing_key, saga_step.reasked, due.waited_s",
        REASK_AFTER if after is None else after,
        REASK_MAX_DOUBLINGS,
        REASK_BATCH,
    )
    return [Reasked(r["step_id"], r["routing_key"], r["reasked"], r["waited_s"]) for r in rows]
