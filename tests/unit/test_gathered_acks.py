"""bus/direct.GatheredAcks: one ack (multiple) for a run of finished deliveries, and never an
ack that would settle a delivery still running. The broker's side of `multiple` (every unsettled
tag up to it on the channel) is modelled by `Channel`. The real path runs in every integration
test through the ledger's and the workers' event queues; `test_ledger_concurrency.py` sends 600
commands through a prefetch of 256, which stalls unless the acks really reach the broker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bus.direct import GatheredAcks


@dataclass(eq=False)
class Channel:
    frames: list[tuple[int, bool]] = field(default_factory=list)
    settled: set[int] = field(default_factory=set)
    delivered: int = 0

    def deliver(self) -> "Message":
        self.delivered += 1
        return Message(self, self.delivered)

    def ack(self, tag: int, multiple: bool) -> None:
        assert tag not in self.settled, f"tag {tag} acked twice: the broker closes the channel"
        self.frames.append((tag, multiple))
        self.settled |= set(range(1, tag + 1)) if multiple else {tag}


@dataclass(eq=False)
class Message:
    channel: Channel
    delivery_tag: int
    message_id: str = "m"

    async def ack(self, multiple: bool = False) -> None:
        self.channel.ack(self.delivery_tag, multiple)

    async def reject(self, requeue: bool = False) -> None:
        self.channel.settled.add(self.delivery_tag)


async def test_a_run_of_finished_deliveries_is_one_ack() -> None:
    channel, acks = Channel(), GatheredAcks()
    messages = [channel.deliver() for _ in range(5)]
    for m in messages:
        acks.received(m)
    for m in reversed(messages):  # finish in any order within the gathering time
        acks.done(m)
    await acks.drain()
    assert channel.frames == [(5, True)]
    assert channel.settled == {1, 2, 3, 4, 5}


async def test_a_delivery_still_running_is_never_settled_by_a_later_ack() -> None:
    channel, acks = Channel(), GatheredAcks()
    first, running, third, fourth = (channel.deliver() for _ in range(4))
    for m in (first, running, third, fourth):
        acks.received(m)
    for m in (first, third, fourth):
        acks.done(m)
    await acks.drain()
    assert 2 not in channel.settled
    assert channel.frames == [(1, False), (3, False), (4, False)]  # behind the running one: alone
    acks.done(running)
    fifth = channel.deliver()
    acks.received(fifth)
    acks.done(fifth)
    await acks.drain()
    assert channel.frames[3:] == [(5, True)]  # 2 and 5: 3 and 4 were settled already, not again
    assert channel.settled == {1, 2, 3, 4, 5}


async def test_a_rejected_delivery_is_passed_over() -> None:
    channel, acks = Channel(), GatheredAcks()
    messages = [channel.deliver() for _ in range(3)]
    for m in messages:
        acks.received(m)
    await messages[1].reject()
    acks.settled(messages[1])
    acks.done(messages[0])
    acks.done(messages[2])
    await acks.drain()
    assert channel.frames == [(3, True)]


async def test_acks_are_gathered_for_a_moment_then_sent_without_being_asked() -> None:
    channel, acks = Channel(), GatheredAcks()
    messages = [channel.deliver() for _ in range(3)]
    for m in messages:
        acks.received(m)
        acks.done(m)
    assert channel.frames == []
    await asyncio.sleep(0.05)
    assert channel.frames == [(3, True)]


async def test_a_new_channel_starts_again_and_an_old_ones_deliveries_are_not_acked() -> None:
    old, new, acks = Channel(), Channel(), GatheredAcks()
    stale = old.deliver()
    acks.received(stale)
    fresh = new.deliver()
    acks.received(fresh)  # the connection came back: tags count from 1 again
    acks.done(stale)
    acks.done(fresh)
    await acks.drain()
    assert old.frames == [] and new.frames == [(1, False)]
