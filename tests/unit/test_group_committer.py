"""Group commit's gathering half (bus/batching.py), with a commit of our own: no broker, no database."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bus.batching import BatchLimits, GroupCommitter


class Commits:
    """A commit that doubles each item, fails any batch holding a negative one, and keeps the batches."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        if any(i < 0 for i in items):
            raise ValueError("a bad item")
        return [2 * i for i in items]


async def test_items_submitted_together_commit_together_and_each_gets_its_own_answer() -> None:
    commits = Commits()
    committer = GroupCommitter("t", commits, BatchLimits(window_ms=20, max_messages=8))
    try:
        answers = await asyncio.gather(*(committer.submit(i) for i in range(10)))
    finally:
        await committer.stop()
    assert answers == [2 * i for i in range(10)]
    assert [len(b) for b in commits.batches] == [8, 2], "bounded by max_messages, in arrival order"


async def test_a_failing_batch_is_committed_one_by_one_so_only_the_bad_item_fails() -> None:
    commits = Commits()
    committer = GroupCommitter("t", commits, BatchLimits(window_ms=20))
    try:
        results = await asyncio.gather(*(committer.submit(i) for i in (1, -1, 3)), return_exceptions=True)
    finally:
        await committer.stop()
    assert results[0] == 2 and results[2] == 6
    assert isinstance(results[1], ValueError)
    assert commits.batches == [[1, -1, 3], [1], [-1], [3]]


async def test_a_stopped_committer_gathers_again_when_its_worker_starts_again() -> None:
    commits = Commits()
    committer = GroupCommitter("t", commits, BatchLimits(window_ms=1))
    assert await committer.submit(1) == 2
    await asyncio.sleep(0.05)  # idle: the collector waits for a first item, holding a batch's slot
    await committer.stop()
    # The same app started again (tests restart a worker in-process): it must not wait forever.
    assert await asyncio.wait_for(committer.submit(2), timeout=5) == 4
    await committer.stop()


@pytest.mark.parametrize("units", [3, 5])
async def test_a_batch_never_holds_more_units_than_its_bound(units: int) -> None:
    commits = Commits()
    committer = GroupCommitter("t", commits, BatchLimits(window_ms=20, max_units=10), units=lambda _: units)
    try:
        await asyncio.gather(*(committer.submit(i) for i in range(7)))
    finally:
        await committer.stop()
    assert all(len(b) * units <= 10 for b in commits.batches)
    assert [i for b in commits.batches for i in b] == list(range(7)), "arrival order kept across batches"
