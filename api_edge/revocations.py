"""Revoked access, as this edge instance knows it: a disabled user, a logout, a revoked API key
take effect here within seconds, not when the access token expires.

Identity says so as it happens (`identity.access_revoked`, contracts/identity.py `AccessRevoked`):
each edge instance hears it on its own exclusive queue bound on `cbs.events`
(`bus.topology.edge_events_queue`). What was revoked while the instance was away or
disconnected it reads back from identity (`identity.list_revocations`): before it reports ready
(and until then it answers token-authenticated requests 503: a revoked token must never pass
because the edge had not asked yet), on every reconnection, and every `RESYNC_S` as a backstop,
retrying in the background while identity is not up.

The list (`RevocationList`) is in memory and bounded:
- An entry older than `REVOCATION_WINDOW_S` (the longest token lifetime plus 5 minutes) is
  dropped: every token it covered has expired. Both the age and a token's expiry are judged on
  this edge's clock against identity's timestamps, so skew between the two cannot drop an entry
  while a token it covers still passes.
- Past `MAX_ENTRIES` the oldest entry is dropped and its `revoked_at` becomes the floor: every
  token issued at or before the floor (plus the margin) is refused. Memory stays bounded and
  nothing revoked ever passes; the cost, only under a flood of revocations, is that older
  tokens of unrevoked users must be refreshed.

The rule (clock skew: `REVOCATION_MARGIN_S`, 2 s, between `iat` and `revoked_at`, both stamped by
identity): refuse a token of a revoked user whose `iat <= revoked_at + margin` (a re-enabled
user's new tokens work again; one issued within margin + 1 s of the disabling is refused too,
since `iat` is whole seconds), any token of a revoked session (`sid`) or issued for a revoked API
key (`api_key_id`), and a revoked API key.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faststream import AckPolicy
from pydantic import ValidationError

from bus import topology, tracing
from bus.broker import Delivery
from bus.settings import publisher_of
from contracts.identity import (
    REVOCATION_MARGIN_S,
    REVOCATION_WINDOW_S,
    AccessRevoked,
    ListRevocations,
    RevocationPage,
    RevocationScope,
)

log = logging.getLogger("cbs.edge.revocations")

MAX_ENTRIES = 100_000  # ~100 bytes each: ~10 MB at most
RESYNC_S = 60.0  # re-read identity's recent revocations this often (a backstop: events are the fast path)
RESYNC_OVERLAP_S = 120.0  # re-read from this long before the newest revocation known (commit order)
RETRY_MIN_S, RETRY_MAX_S = 1.0, 10.0  # while identity does not answer
PAGE_SIZE = 500
PRUNE_MIN_INTERVAL_S = 1.0  # a full list prunes at most this often before dropping its oldest

Key = tuple[RevocationScope, str]


@dataclass(slots=True)
class _Entry:
    revoked_at: float  # POSIX seconds, identity's clock
    seq: int  # when this edge learned it (RevocationList.seq at the time)


class RevocationList:
    """Pure and synchronous: no I/O, no clock (`now` comes in, POSIX seconds on this edge's clock)."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES, keep_s: float = REVOCATION_WINDOW_S,
                 margin_s: float = REVOCATION_MARGIN_S) -> None:  # fmt: skip
        self.max_entries, self.keep_s, self.margin_s = max_entries, keep_s, margin_s
        # Insertion order is learning order, newest last: roughly oldest revocation first.
        self._entries: dict[Key, _Entry] = {}
        self.floor = float("-inf")  # revoked_at of the newest entry dropped for space
        self.seq = 0  # bumped by everything learned
        self.newest: float | None = None  # the newest revoked_at learned (where a re-read starts)
        self._pruned_at = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, scope: RevocationScope, ident: str, revoked_at: float, now: float) -> bool:
        """Learn a revocation; False when it tells nothing new (a repeat, an older one of the same
        user, or one too old to matter)."""
        if revoked_at < now - self.keep_s:
            return False
        key = (scope, ident)
        known = self._entries.pop(key, None)
        if known is not None and known.revoked_at >= revoked_at:
            self._entries[key] = known  # back where it was
            return False
        if known is None and len(self._entries) >= self.max_entries:
            self._make_room(now)
        self.seq += 1
        self._entries[key] = _Entry(revoked_at, self.seq)
        self.newest = revoked_at if self.newest is None else max(self.newest, revoked_at)
        return True

    def _make_room(self, now: float) -> None:
        if now - self._pruned_at >= PRUNE_MIN_INTERVAL_S:
            self.prune(now)
        while len(self._entries) >= self.max_entries:
            key = next(iter(self._entries))
            dropped = self._entries.pop(key)
            self.floor = max(self.floor, dropped.revoked_at)

    def prune(self, now: float) -> int:
        """Drop what covers only expired tokens; how many were dropped."""
        self._pruned_at = now
        cutoff = now - self.keep_s
        old = [key for key, entry in self._entries.items() if entry.revoked_at < cutoff]
        for key in old:
            del self._entries[key]
        return len(old)

    def token_refusal(self, sub: str, iat: float, sid: str | None = None, api_key_id: str | None = None) -> str | None:
        """Why an access token is refused, or None when nothing revoked covers it."""
        if iat <= self.floor + self.margin_s:
            return "token issued before revocations this edge no longer tells apart; log in again"
        user = self._entries.get((RevocationScope.user, sub))
        if user is not None and iat <= user.revoked_at + self.margin_s:
            return "access revoked: the user was disabled"
        if sid is not None and (RevocationScope.session, sid) in self._entries:
            return "access revoked: this login ended"
        if api_key_id is not None and (RevocationScope.api_key, api_key_id) in self._entries:
            return "access revoked: the API key of this token was revoked"
        return None

    def api_key_revoked(self, key_id: str) -> bool:
        return (RevocationScope.api_key, key_id) in self._entries

    def learned_since(self, seq: int, sub: str, key_id: str) -> bool:
        """Whether a revocation of the user or the API key was learned after `seq`."""
        for key in ((RevocationScope.user, sub), (RevocationScope.api_key, key_id)):
            entry = self._entries.get(key)
            if entry is not None and entry.seq > seq:
                return True
        return False


def ident_of(fact: AccessRevoked) -> str | None:
    """What the revocation names in its scope."""
    found = {RevocationScope.user: fact.user_id, RevocationScope.session: fact.session_id,
             RevocationScope.api_key: fact.key_id}[fact.scope]  # fmt: skip
    return str(found) if found is not None else None


async def _raw_body(msg: Any, original: Any = None) -> bytes:
    """The undecoded body: the handler validates it against the contract itself."""
    return bytes(msg.body)


class RevocationWatch:
    """Keeps one edge instance's `RevocationList` current. Made before the broker starts (it
    subscribes), started after (`start`), closed before the broker stops."""

    def __init__(self, broker: Any, correlator: Any, *, clock: Callable[[], float] = time.time) -> None:
        self.broker, self.correlator, self.clock = broker, correlator, clock
        self.revoked = RevocationList()
        self.synced = False  # the first read-back from identity has completed
        self.listeners: list[Callable[[AccessRevoked], None]] = []  # told of each new revocation
        self.queue = topology.edge_events_queue(correlator.instance)
        broker.subscriber(self.queue, topology.EVENTS, decoder=_raw_body, no_reply=True, include_in_schema=False,
                          ack_policy=AckPolicy.ACK)(self._on_event)  # fmt: skip
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def learn(self, fact: AccessRevoked) -> None:
        ident = ident_of(fact)
        if ident is None:
            return
        if self.revoked.add(fact.scope, ident, fact.revoked_at.timestamp(), self.clock()):
            log.info("access revoked: %s %s (%s)", fact.scope, ident, fact.reason)
            for listener in self.listeners:
                listener(fact)

    async def _on_event(self, body: bytes, msg: Delivery) -> None:
        with tracing.consuming(msg.raw_message):  # the edge is a consumer of the revocation's trace
            self._consider(body, msg)

    def _consider(self, body: bytes, msg: Delivery) -> None:
        # Acknowledged whatever happens (ack_policy ACK): a bad message on an exclusive queue
        # would otherwise come back forever. A revocation can only refuse access, never grant it.
        raw = msg.raw_message
        if raw.type != AccessRevoked.message_type:
            log.warning("ignored %r on %s: not %s", raw.type, self.queue.name, AccessRevoked.message_type)
            return
        if raw.user_id != publisher_of(AccessRevoked.routing_key):
            # Only identity's broker user publishes revocations (a forged one could lock people out).
            log.warning("ignored %s %s from %r: not identity's", raw.type, raw.message_id, raw.user_id)
            return
        try:
            self.learn(AccessRevoked.model_validate_json(body))
        except ValidationError as exc:
            log.warning("ignored an invalid %s %s: %s", AccessRevoked.message_type, raw.message_id, exc)

    # -- reading back from identity -------------------------------------------------------

    def start(self, timeout_s: float) -> None:
        self._wake = asyncio.Event()
        connection = getattr(self.broker, "_connection", None)  # FastStream's aio-pika RobustConnection
        if connection is not None and hasattr(connection, "reconnect_callbacks"):
            # Events published while disconnected went nowhere (the queue went with the connection).
            connection.reconnect_callbacks.add(self._on_reconnect)
        self._task = asyncio.create_task(self._run(timeout_s), name="edge-revocations")

    def _on_reconnect(self, *_: Any) -> None:
        if self._wake is not None:
            self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self, timeout_s: float) -> None:
        assert self._wake is not None
        retry = RETRY_MIN_S
        while True:
            try:
                learned = await self.sync(timeout_s)
                if not self.synced:
                    log.info("learned %d recent revocations from identity", learned)
                self.synced, retry, wait = True, RETRY_MIN_S, RESYNC_S
                self.revoked.prune(self.clock())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # identity not up yet, broker away: try again soon
                log.warning("could not read revocations from identity (%r); retrying in %.0f s", exc, retry)
                wait, retry = retry, min(retry * 2, RETRY_MAX_S)
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
            self._wake.clear()

    async def sync(self, timeout_s: float) -> int:
        """Read identity's revocations (the whole window the first time, then from a little before
        the newest known); how many revocations were read."""
        after = None
        if self.synced and self.revoked.newest is not None:
            after = datetime.fromtimestamp(self.revoked.newest - RESYNC_OVERLAP_S, UTC)
        cursor, read = None, 0
        while True:
            query = ListRevocations(after=after, cursor=cursor, limit=PAGE_SIZE)
            reply = await self.correlator.send(query, message_id=uuid.uuid4().hex, timeout_s=timeout_s)
            if not reply.ok:
                raise RuntimeError(f"identity refused {query.routing_key}: {reply.error}")
            page = RevocationPage.model_validate(reply.result)
            for fact in page.items:
                self.learn(fact)
            read += len(page.items)
            if page.next_cursor is None:
                return read
            cursor = page.next_cursor
