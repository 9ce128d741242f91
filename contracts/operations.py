"""The operator's own actions on the bus, as facts audit records (issue 14).

Published on `cbs.events` by `cbs dlq` (its broker user, `dlq`, is the one that acted: the
broker checks the `user_id`); no worker acts on them, audit stores them with everything else.
`operator` is who ran the tool as the machine knows them (its login name), not an authenticated
person: the authenticated identity is the broker user.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from contracts.common import Command, Contract, Event

MAX_LETTERS = 1_000  # one action never touches more dead letters than `cbs dlq` fetches at once


class DeadLetterRef(Contract):
    """One dead letter an action touched: enough to find it in the records, not its body."""

    message_id: str | None = Field(max_length=200, description="the dead letter's message_id (its idempotency key)")
    type: str | None = Field(default=None, max_length=200, description="its AMQP `type` (contract and version)")
    routing_key: str = Field(max_length=200, description="the routing key it was first published with")
    queue: str | None = Field(default=None, max_length=200, description="the queue it died in (x-first-death-queue)")
    reason: str | None = Field(default=None, max_length=50,
                               description="why it died: rejected, delivery_limit, expired, maxlen")  # fmt: skip


class DeadLettersAction(Event):
    selected_by: dict[str, str] = Field(max_length=10, description="how the letters were chosen: id, type, queue, reason "
                                                              "or all")  # fmt: skip
    letters: list[DeadLetterRef] = Field(max_length=MAX_LETTERS, description="every letter the action took")
    count: int = Field(ge=0, le=MAX_LETTERS, description="how many")
    operator: str = Field(max_length=200, description="the login name that ran `cbs dlq` (not authenticated)")
    host: str = Field(max_length=200, description="the machine it ran on")
    occurred_at: AwareDatetime = Field(description="UTC time of the action")


class DeadLettersReplayed(DeadLettersAction):
    """Dead letters were published again to where they first went, under their first sender's
    user_id (`cbs dlq replay`); the consumers' inboxes make a second effect impossible."""

    routing_key: ClassVar[str] = "ops.dead_letters_replayed"


class DeadLettersPurged(DeadLettersAction):
    """Dead letters were removed from `cbs.dead` for good (`cbs dlq purge`)."""

    routing_key: ClassVar[str] = "ops.dead_letters_purged"


COMMANDS: tuple[type[Command], ...] = ()
EVENTS: tuple[type[Event], ...] = (DeadLettersReplayed, DeadLettersPurged)
