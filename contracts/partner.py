"""Partner access: the operator's facts about what each partner may send (DESIGN §1, §3).

Published by `cbs partner add/remove` (the operator, not a worker). Every worker keeps the newest
grant per partner and refuses a partner's command it was not granted: defence in depth behind the
broker's topic permissions, learned from events like any other fact.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field, StringConstraints

from contracts.common import Command, Event

PartnerUser = Annotated[str, StringConstraints(pattern=r"^partner\.[a-z0-9][a-z0-9_-]{0,47}$")]
RoutingKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$", max_length=200)]


class PartnerAccessChanged(Event):
    """The routing keys a partner may send on `cbs.commands` changed (an empty list: it was removed).

    Grants are whole, not deltas: the one with the newest `occurred_at` wins, whatever the order of
    arrival.
    """

    routing_key: ClassVar[str] = "partner.access_changed"

    partner: PartnerUser = Field(description="the partner's broker user, `partner.<name>`")
    may_send: list[RoutingKey] = Field(
        max_length=1000, description="every command routing key the partner may send; empty when it was removed"
    )
    occurred_at: AwareDatetime = Field(description="UTC time the operator changed the access")


COMMANDS: tuple[type[Command], ...] = ()
EVENTS: tuple[type[Event], ...] = (PartnerAccessChanged,)
