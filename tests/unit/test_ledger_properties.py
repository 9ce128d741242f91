"""Ledger invariants under random batches (DESIGN §5): conservation, limits, bounds, determinism,
idempotency.

Scenarios are a few accounts (mixed flags and limits, one or two currencies) and a sequence of
batches: single-phase and pending transfers, posts and voids of real and unknown holds, linked
chains, balancing flags, repeated ids, amounts near 2**63 (built unvalidated, past the contract's
cap, so the overflow checks are reached), and expiry sweeps as time moves on.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.common import MAX_AMOUNT
from contracts.ledger import MAX_BALANCE, AccountFlags, NewTransfer, TransferFlags
from contracts.ledger import TransferResultCode as R
from tests import ledger_oracle
from workers.ledger.domain.accounts import AccountState
from workers.ledger.domain.transfers import (
    Ledger,
    Outcome,
    chains,
    create_transfers,
    expire_pending,
    records_failure,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
UNKNOWN_ACCOUNT = UUID(int=999)
CURRENCIES = ("INR", "USD")


@dataclass(frozen=True)
class Step:
    transfers: list[NewTransfer]
    now: datetime
    sweep: bool  # expire due holds before the batch, as the store does


@dataclass(frozen=True)
class Scenario:
    accounts: list[AccountState]
    steps: list[Step]


# Mostly small amounts so most transfers go through; some up to the contract's cap, and some near
# 2**63 so that balances reach the overflow checks.
amounts = st.sampled_from(["small"] * 6 + ["cap", "huge", "zero"]).flatmap(
    lambda size: {
        "small": st.integers(1, 1_000),
        "cap": st.integers(1, MAX_AMOUNT),
        "huge": st.integers(2**62, MAX_BALANCE),
        "zero": st.just(0),
    }[size]
)


# Posts are mostly of the full hold (0); a void's amount is 0 or the hold's, so 50 is mostly refused.
POST_AMOUNTS = [0, 0, 0, 1, 50, 10**6]
VOID_AMOUNTS = [0, 0, 0, 50]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    currencies = CURRENCIES[: draw(st.integers(1, 2))]
    accounts = []
    for n in range(draw(st.integers(2, 5))):
        # The first account of each currency has no limit: money has to come from somewhere.
        kind = "plain" if n < len(currencies) else draw(st.sampled_from(["plain", "liability", "asset"]))
        flags = AccountFlags(
            debits_must_not_exceed_credits=kind == "liability", credits_must_not_exceed_debits=kind == "asset"
        )
        limit = draw(st.sampled_from([0, 0, 100, -50, 10**6, 2**62]))
        currency = currencies[n] if n < len(currencies) else draw(st.sampled_from(currencies))
        status = draw(st.sampled_from(["open"] * 13 + ["frozen", "closed"]))
        account = AccountState(UUID(int=n + 1), currency, "suspense", flags, limit)
        account.frozen, account.closed = status == "frozen", status == "closed"
        accounts.append(account)
    g = _Generator(draw, accounts)
    steps, now = [], START
    if draw(st.booleans()):
        # Start near the top of a bigint so later transfers meet the overflow checks.
        steps.append(Step([g.seed(currency) for currency in currencies], now, False))
    for _ in range(draw(st.integers(1, 5))):
        batch = [g.transfer() for _ in range(draw(st.integers(1, 8)))]
        now += timedelta(seconds=draw(st.sampled_from([0, 1, 10, 100])))
        steps.append(Step(batch, now, draw(st.booleans())))
    return Scenario(accounts, steps)


class _Generator:
    """Draws transfers that mostly make sense (so the rules are exercised beyond validation)."""

    def __init__(self, draw: st.DrawFn, accounts: list[AccountState]) -> None:
        self.draw, self.accounts = draw, accounts
        self.sent: list[NewTransfer] = []
        self.holds: list[UUID] = []
        self.next_id = 1000

    def chance(self, one_in: int) -> bool:
        return self.draw(st.integers(1, one_in)) == 1

    def seed(self, currency: str) -> NewTransfer:
        source, *others = [a.id for a in self.accounts if a.currency == currency]
        self.next_id += 1
        t = NewTransfer.model_construct(
            id=UUID(int=self.next_id),
            debit_account_id=source,
            credit_account_id=self.draw(st.sampled_from(others)) if others else UNKNOWN_ACCOUNT,
            amount=MAX_BALANCE - self.draw(st.integers(0, 3_000)),
            currency=currency,
            code="opening",
            flags=TransferFlags(),
            pending_id=None,
            timeout_s=0,
            reference=None,
            user_data=None,
        )
        self.sent.append(t)
        return t

    def transfer(self) -> NewTransfer:
        if self.sent and self.chance(8):
            t = self.draw(st.sampled_from(self.sent))  # the very same transfer again: exists
        else:
            t = self.new()
        self.sent.append(t)
        return t

    def new(self) -> NewTransfer:
        draw = self.draw
        if self.sent and self.chance(10):
            tid = draw(st.sampled_from(self.sent)).id  # an id already used, with other fields
        else:
            self.next_id += 1
            tid = UUID(int=self.next_id)
        kind = draw(st.sampled_from(["single", "single", "pending", "pending", "post", "void"]))
        if kind in ("post", "void") and not self.holds:
            kind = "pending"
        resolves = kind in ("post", "void")
        if kind == "pending":
            self.holds.append(tid)
        balancing = draw(st.sampled_from([(False, False)] * 3 + [(True, False), (False, True), (True, True)]))
        flags = TransferFlags(
            linked=self.chance(6),
            pending=kind == "pending",
            post_pending=kind == "post",
            void_pending=kind == "void",
            balancing_debit=balancing[0] and not resolves,
            balancing_credit=balancing[1] and not resolves,
        )
        debit, credit = self.pair()
        currency = next((a.currency for a in self.accounts if a.id == debit), "INR")
        if self.chance(15):
            currency = draw(st.sampled_from(CURRENCIES))
        if resolves:
            # Recent holds are the likeliest to still be open.
            pending_id = UUID(int=7) if self.chance(8) else draw(st.sampled_from(self.holds[-4:]))
            if not self.chance(5):
                debit = credit = None  # usually left to default to the hold's
        # Built without validation: amounts beyond MAX_AMOUNT reach the engine's overflow checks.
        return NewTransfer.model_construct(
            id=tid,
            debit_account_id=debit,
            credit_account_id=credit,
            amount=draw(amounts if not resolves else st.sampled_from(POST_AMOUNTS if kind == "post" else VOID_AMOUNTS)),
            currency=currency,
            code="internal_transfer",
            flags=flags,
            pending_id=pending_id if resolves else None,
            timeout_s=draw(st.sampled_from([0, 0, 5, 60])) if kind == "pending" else 0,
            reference=None,
            user_data=None,
        )

    def pair(self) -> tuple[UUID, UUID]:
        ids = [a.id for a in self.accounts]
        if self.chance(12):
            anything = st.sampled_from([*ids, UNKNOWN_ACCOUNT])
            return self.draw(anything), self.draw(anything)
        debit = self.draw(st.sampled_from(self.accounts))
        same_currency = [a.id for a in self.accounts if a.currency == debit.currency and a.id != debit.id]
        if not same_currency:
            return debit.id, self.draw(st.sampled_from(ids))
        return debit.id, self.draw(st.sampled_from(same_currency))


def _fresh(s: Scenario) -> Ledger:
    return Ledger(accounts={a.id: copy.deepcopy(a) for a in s.accounts}, transfers={}, failed={})


def _run(s: Scenario, led: Ledger) -> list[list[Outcome]]:
    history = []
    for step in s.steps:
        before = {a.id: copy.copy(a) for a in led.accounts.values()}
        if step.sweep:
            _check_sweep(led, step.now)
        transfers_before, failed_before = dict(led.transfers), dict(led.failed)
        outcomes = create_transfers(led, step.transfers, step.now)
        _check_batch(step, outcomes)
        _check_records(led, step, outcomes, transfers_before, failed_before)
        _check_state(led, before)
        history.append(outcomes)
    return history


def _check_sweep(led: Ledger, now: datetime) -> None:
    due = {t.id for t in led.transfers.values() if t.state == "pending" and t.expires_at and t.expires_at <= now}
    outcomes = expire_pending(led, list(led.transfers), now)
    assert {o.id for o in outcomes} == due
    for o in outcomes:
        assert o.resolved_pending is not None and led.transfers[o.id] == o.resolved_pending
        assert o.resolved_pending.state == "pending_expired"


def _check_batch(step: Step, outcomes: list[Outcome]) -> None:
    assert [o.index for o in outcomes] == list(range(len(step.transfers)))
    assert [o.id for o in outcomes] == [t.id for t in step.transfers]
    stamps = [o.transfer.timestamp for o in outcomes if o.transfer is not None]
    assert stamps == sorted(set(stamps))
    for o in outcomes:
        assert (o.transfer is not None) == (o.result == R.ok)
    for chain in chains(step.transfers):
        results = {outcomes[i].result == R.ok for i in chain}
        assert len(results) == 1, "a chain is all or nothing"
    for t, o in zip(step.transfers, outcomes, strict=True):
        if o.transfer is None:
            continue
        moved, f = o.transfer.amount, t.flags
        if f.post_pending or f.void_pending:
            assert o.resolved_pending is not None and 0 <= moved <= o.resolved_pending.amount
        else:
            assert 0 <= moved <= t.amount
            assert moved == t.amount or f.balancing_debit or f.balancing_credit


# Failures that make an id failed for good; spelled out here, independently of the engine.
_PERMANENT_ANSWERS = {R.ok, R.exists, R.id_already_failed, R.id_must_not_be_zero}


def _check_records(
    led: Ledger, step: Step, outcomes: list[Outcome], transfers_before: dict, failed_before: dict
) -> None:
    """The ledger keeps exactly what the answers say happened: no trace of a rolled-back member."""
    created = {o.transfer.id: o.transfer for o in outcomes if o.transfer is not None}
    resolved = {o.resolved_pending.id: o.resolved_pending for o in outcomes if o.resolved_pending is not None}
    expected = {**transfers_before, **created, **resolved}
    assert led.transfers == expected
    failures = {
        o.id: o.result
        for o in outcomes
        if o.result not in _PERMANENT_ANSWERS
        and o.result not in (R.linked_event_failed, R.linked_event_chain_open)
        and not o.result.startswith("exists_with_different_")
    }
    assert led.failed == {**failed_before, **failures}


def _room(a: AccountState) -> tuple[int, int]:
    """How far each flag's constraint is exceeded (≤ 0 = kept)."""
    over_debits = a.debits_posted + a.debits_pending - a.credits_posted - a.overdraft_limit
    over_credits = a.credits_posted + a.credits_pending - a.debits_posted - a.overdraft_limit
    return over_debits, over_credits


def _check_state(led: Ledger, before: dict[UUID, AccountState]) -> None:
    sums: dict[str, list[int]] = {}
    for a in led.accounts.values():
        four = [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]
        assert all(0 <= x <= MAX_BALANCE for x in four), a
        assert a.debits_pending + a.debits_posted <= MAX_BALANCE and a.credits_pending + a.credits_posted <= MAX_BALANCE
        total = sums.setdefault(a.currency, [0, 0, 0, 0])
        for i, x in enumerate(four):
            total[i] += x
        # A constraint is never broken further. An account with a minimum balance (negative
        # limit) starts below it at zero and may only move towards it; any other always keeps it.
        over_debits, over_credits = _room(a)
        was_debits, was_credits = _room(before[a.id])
        if a.flags.debits_must_not_exceed_credits:
            assert over_debits <= max(0, was_debits), a
        if a.flags.credits_must_not_exceed_debits:
            assert over_credits <= max(0, was_credits), a
    for currency, (dp, dpo, cp, cpo) in sums.items():
        assert dpo == cpo, f"{currency}: posted debits {dpo} != credits {cpo}"
        assert dp == cp, f"{currency}: pending debits {dp} != credits {cp}"
    # Every balance equals the sum of the transfers that touched it, and production's verification
    # rule agrees that the ledger balances.
    result = ledger_oracle.verify(led.accounts.values(), led.transfers.values())
    assert result.ok, result.mismatches


def _state(led: Ledger) -> tuple[object, ...]:
    accounts = {
        a.id: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) for a in led.accounts.values()
    }
    return accounts, dict(led.transfers), dict(led.failed)


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenarios())
def test_invariants_hold_after_every_batch_and_replay_is_deterministic(s: Scenario) -> None:
    first = _fresh(s)
    history = _run(s, first)
    second = _fresh(s)
    assert _run(s, second) == history
    assert _state(second) == _state(first)


@PROPERTY
@given(scenarios())
def test_resubmitting_every_batch_changes_nothing(s: Scenario) -> None:
    led = _fresh(s)
    history = _run(s, led)
    balances_before, transfers_before, _ = _state(led)
    later = s.steps[-1].now + timedelta(seconds=1)
    for step, first in zip(s.steps, history, strict=True):
        again = create_transfers(led, step.transfers, later)
        assert all(o.result != R.ok for o in again), "nothing new happens on a retry"
        for chain in chains(step.transfers):
            _check_retry([first[i].result for i in chain], [again[i].result for i in chain])
    balances_after, transfers_after, _ = _state(led)
    assert balances_after == balances_before
    assert transfers_after == transfers_before


def _check_retry(first: list[R], again: list[R]) -> None:
    """What a retried chain answers, given what it answered the first time."""
    if first[0] == R.linked_event_chain_open:
        assert again == first
    elif len(first) == 1:
        [was], [now] = first, again
        if was == R.ok:
            assert now == R.exists
        elif records_failure(was):
            assert now == R.id_already_failed
        else:  # an answer about the id itself (exists*, id_already_failed) does not change
            assert now == was
    elif all(r == R.ok for r in first):
        # The first member now exists, which (as in TigerBeetle) fails the rest of the chain.
        assert again == [R.exists] + [R.linked_event_failed] * (len(first) - 1)
    else:
        # A failed chain is tried again member by member and fails again at one member; members
        # the first run never judged (linked_event_failed) may now fail with a code of their own.
        assert sum(r != R.linked_event_failed for r in again) == 1
        culprit = next(r for r in first if r != R.linked_event_failed)
        position = first.index(culprit)
        if again[position] != R.linked_event_failed:
            assert again[position] in (R.id_already_failed, culprit)
