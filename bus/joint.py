"""Joint requests: the saga steps of one group-committed batch asked of another worker as one command.

A payment asks the ledger for its transfers as a saga step (`Context.request`). When a batch
of orders is committed together, N steps would mean N `ledger.create_transfers` commands, N
ledger deliveries, N replies and N audit copies. Instead, the batch's requests of a joinable
contract leave as ONE command carrying every member's items, under a joint step; its single
reply is split back into each member's own reply, and every member's continuation runs as if
it had been asked alone.

Each member keeps its own saga step row (its origin, its state); the joint step row only
lists the members and how many items each contributed. The joint command leaves through the
outbox in the batch's transaction, so it is sent if and only if the members' steps exist. A
combiner joins only requests whose items stand alone (no chain left open across members), and
never more than the contract's size limit.

Which contracts join, and how, is the asking worker's to say: its `Routes.joint` names a `Combiner`
per contract (the payment worker's, for `ledger.create_transfers`, is in `workers/payment/routes.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg

from bus import saga
from contracts.common import Command, Reply

KIND = "joint"  # the saga_step kind of a joint step
C = TypeVar("C", bound=Command)


@dataclass(frozen=True)
class Combiner(Generic[C]):
    """How requests of one contract are merged into one command and its reply split back."""

    contract: type[C]
    size: Callable[[C], int]  # items one request carries
    merge: Callable[[list[C]], C]  # requests -> one command (items in member order)
    split: Callable[[Reply, list[int]], list[Reply]]  # its reply, items per member -> a reply each
    max_items: int  # the contract's own limit on one command
    joinable: Callable[[C], bool] = lambda _: True  # e.g. not when its items end inside a chain


@dataclass(frozen=True)
class Member:
    step_id: str
    command: Command
    causation_id: str


@dataclass
class Collector:
    """The requests a batch's handlers made of joinable contracts, sent at the batch's end."""

    combiners: dict[type[Command], Combiner[Any]]
    members: list[Member] = field(default_factory=list)

    def accepts(self, command: Command) -> bool:
        combiner = self.combiners.get(type(command))
        return combiner is not None and combiner.joinable(command)

    async def send(self, conn: asyncpg.Connection, worker: str, consumer: str) -> None:
        """Write the joint steps and their commands (through the outbox); a lone request leaves as
        itself, under its own step id, exactly as if it had never been collected."""
        for contract, combiner in self.combiners.items():
            mine = [m for m in self.members if type(m.command) is contract]
            for group in _groups(mine, combiner):
                if len(group) == 1:
                    await saga.send_request(conn, worker, group[0].command, group[0].step_id, group[0].causation_id)
                    continue
                joint_id = f"{worker}:{KIND}:{uuid.uuid4().hex}"
                members = [[m.step_id, combiner.size(m.command)] for m in group]
                await saga.record_joint(conn, joint_id, consumer, {"contract": contract.routing_key, "members": members})
                # No single cause: each member's step records its own (the origin message).
                await saga.send_request(conn, worker, combiner.merge([m.command for m in group]), joint_id, None)
        self.members.clear()


def _groups(members: list[Member], combiner: Combiner[Any]) -> list[list[Member]]:
    """Consecutive members, as many as fit in one command."""
    groups: list[list[Member]] = []
    items = 0
    for m in members:
        size = combiner.size(m.command)
        if not groups or items + size > combiner.max_items:
            groups.append([])
            items = 0
        groups[-1].append(m)
        items += size
    return groups


def members_of(step: saga.Step) -> list[tuple[str, int]]:
    return [(str(step_id), int(size)) for step_id, size in step.state["members"]]
