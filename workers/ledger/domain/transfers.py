"""Transfers: TigerBeetle's create_transfers semantics over in-memory state, and hold expiry.

Pure: the store loads a `Ledger` with every account and transfer a batch may touch, the engine
decides and mutates it, the store writes back what changed. Refusals are result codes; a state
the store should never hand over (a hold larger than its account's pending balance) fails an
assertion.

Decisions a caller should know (banking-rules §3 leaves them open):
- Voids and expiries only release a hold, so they succeed on frozen and closed accounts: a
  freeze must never trap money that was held before it. Posting a hold still needs both
  accounts open and unfrozen.
- A hold is over once `now >= expires_at`, even before `expire_pending` has swept it: posting or
  voiding it answers `pending_transfer_expired`. The store should sweep the due holds of a batch
  (expire_pending) before applying it, so their amounts are released promptly.
- Balancing flags clamp only where the account's flag sets a limit: `balancing_debit` on a debit
  account without `debits_must_not_exceed_credits` moves the full amount. A clamp to 0 is still
  `ok` with amount 0 (the transfer is recorded, so a retry answers `exists`).
- An id is recorded as failed (`id_already_failed` on retry) for every failure of a new id: not
  for linked_event_*, whose chain may succeed on a retry, nor for answers about an id that is
  zero or already taken (id_must_not_be_zero, exists*, id_already_failed).
- A void transfer is final: it is stored with state `posted` and the pending amount it released.
- The zero UUID given as an account id or pending_id counts as absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from uuid import UUID

from contracts.ledger import MAX_BALANCE, BalancesAfter, NewTransfer, TransferFlags, TransferView
from contracts.ledger import TransferResultCode as R
from workers.ledger.domain.accounts import ZERO_ID, AccountState, balances_after, credit_room, debit_room

# States of a stored transfer; the TransferView status carries the same words.
POSTED, PENDING = "posted", "pending"
PENDING_POSTED, PENDING_VOIDED, PENDING_EXPIRED = "pending_posted", "pending_voided", "pending_expired"
STATES = frozenset({POSTED, PENDING, PENDING_POSTED, PENDING_VOIDED, PENDING_EXPIRED})

# Answers about an id that is zero or owned by another record, or about a chain: never recorded
# as failures of the id (see the module docstring).
_NOT_RECORDED = frozenset(
    {R.ok, R.linked_event_failed, R.linked_event_chain_open, R.id_must_not_be_zero, R.exists, R.id_already_failed}
    | {code for code in R if code.startswith("exists_with_different_")}
)


@dataclass(frozen=True, slots=True)
class StoredTransfer:  # a transfer already in the ledger (as loaded by the store, or produced by the engine)
    id: UUID
    debit_account_id: UUID
    credit_account_id: UUID
    amount: int  # what moved, was held or (for a void) was released
    requested_amount: int  # as the caller sent it; `exists` compares this one
    currency: str
    code: str
    flags: TransferFlags
    pending_id: UUID | None
    timeout_s: int
    reference: str | None
    user_data: dict | None
    timestamp: datetime
    expires_at: datetime | None
    state: str  # "posted" | "pending" | "pending_posted" | "pending_voided" | "pending_expired"
    narration: str | None = None  # words only: never compared by `exists`, never read by the engine
    counterparty: str | None = None

    def __post_init__(self) -> None:
        assert self.state in STATES, f"unknown transfer state {self.state!r}"


@dataclass(frozen=True, slots=True)
class Outcome:  # result of one requested transfer (or one expiry)
    index: int
    id: UUID
    result: R
    transfer: StoredTransfer | None  # the new transfer when ok
    resolved_pending: StoredTransfer | None  # the pending transfer with its new state, when this resolved one
    existing: StoredTransfer | None = None  # the stored transfer, when the answer is `exists`
    # (debit, credit) balances right after this transfer, for history and events; None unless ok.
    after: tuple[BalancesAfter, BalancesAfter] | None = None


@dataclass
class Ledger:  # what one batch may see and change; the store fills it for the ids involved
    accounts: dict[UUID, AccountState]  # every account named by a request or by a referenced pending transfer
    transfers: dict[UUID, StoredTransfer]  # existing transfers with the ids requested AND every pending_id referenced
    failed: dict[UUID, R] = field(default_factory=dict)  # ids that failed before (id_already_failed)


def records_failure(code: R) -> bool:
    """Whether `code` makes the id failed for good (the store keeps it for `id_already_failed`)."""
    return code not in _NOT_RECORDED


def transfer_view(t: StoredTransfer) -> TransferView:
    return TransferView(
        id=t.id,
        debit_account_id=t.debit_account_id,
        credit_account_id=t.credit_account_id,
        amount=t.amount,
        currency=t.currency,
        code=t.code,
        flags=t.flags,
        pending_id=t.pending_id,
        timeout_s=t.timeout_s,
        reference=t.reference,
        narration=t.narration,
        counterparty=t.counterparty,
        user_data=t.user_data,
        timestamp=t.timestamp,
        status=t.state,  # type: ignore[arg-type]
    )


# --- one transfer ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Effect:
    """What an accepted transfer does: balance deltas and the records it writes."""

    transfer: StoredTransfer
    resolved: StoredTransfer | None
    # (account, debits_pending, debits_posted, credits_pending, credits_posted) deltas
    deltas: tuple[tuple[AccountState, int, int, int, int], ...]


def _given(value: UUID | None) -> UUID | None:
    return None if value is None or value == ZERO_ID else value


def _compare_existing(t: NewTransfer, e: StoredTransfer) -> R:
    resolves = e.flags.post_pending or e.flags.void_pending
    if t.flags != e.flags:
        return R.exists_with_different_flags
    if _given(t.pending_id) != e.pending_id:
        return R.exists_with_different_pending_id
    if t.timeout_s != e.timeout_s:
        return R.exists_with_different_timeout
    # A post or void may leave the accounts out: they defaulted to the pending transfer's.
    if t.debit_account_id != e.debit_account_id and not (resolves and _given(t.debit_account_id) is None):
        return R.exists_with_different_debit_account_id
    if t.credit_account_id != e.credit_account_id and not (resolves and _given(t.credit_account_id) is None):
        return R.exists_with_different_credit_account_id
    if t.amount != e.requested_amount:
        return R.exists_with_different_amount
    if t.currency != e.currency:
        return R.exists_with_different_currency
    if t.code != e.code:
        return R.exists_with_different_code
    if t.reference != e.reference:
        return R.exists_with_different_reference
    if t.user_data != e.user_data:
        return R.exists_with_different_user_data
    return R.exists


def _flags_conflict(f: TransferFlags) -> bool:
    phases = f.pending + f.post_pending + f.void_pending
    return phases > 1 or ((f.post_pending or f.void_pending) and (f.balancing_debit or f.balancing_credit))


def _validate(t: NewTransfer) -> R | None:
    """Checks on the request alone, in result-code order."""
    f = t.flags
    resolves = f.post_pending or f.void_pending
    if _flags_conflict(f):
        return R.flags_are_mutually_exclusive
    debit_id, credit_id = _given(t.debit_account_id), _given(t.credit_account_id)
    if not resolves and debit_id is None:
        return R.debit_account_id_required
    if not resolves and credit_id is None:
        return R.credit_account_id_required
    if debit_id is not None and debit_id == credit_id:
        return R.accounts_must_be_different
    if not resolves and _given(t.pending_id) is not None:
        return R.pending_id_must_be_zero
    if resolves and _given(t.pending_id) is None:
        return R.pending_id_required
    if t.timeout_s != 0 and not f.pending:
        return R.timeout_reserved_for_pending_transfer
    if t.amount == 0 and not resolves:
        return R.amount_must_not_be_zero
    return None


def _open_checks(dr: AccountState, cr: AccountState) -> R | None:
    if dr.frozen:
        return R.debit_account_frozen
    if cr.frozen:
        return R.credit_account_frozen
    if dr.closed:
        return R.debit_account_already_closed
    if cr.closed:
        return R.credit_account_already_closed
    return None


def _new_record(
    t: NewTransfer, dr: AccountState, cr: AccountState, amount: int, ts: datetime,
    hold: StoredTransfer | None = None, **kw: object,
) -> StoredTransfer:  # fmt: skip
    """The record of an accepted transfer; a post or void (`hold` given) keeps the hold's words
    where it brings none of its own."""
    return StoredTransfer(
        id=t.id,
        debit_account_id=dr.id,
        credit_account_id=cr.id,
        amount=amount,
        requested_amount=t.amount,
        currency=t.currency,
        code=t.code,
        flags=t.flags,
        pending_id=_given(t.pending_id),
        timeout_s=t.timeout_s,
        reference=t.reference,
        user_data=dict(t.user_data) if t.user_data is not None else None,
        timestamp=ts,
        narration=t.narration or (hold.narration if hold else None),
        counterparty=t.counterparty or (hold.counterparty if hold else None),
        **kw,  # type: ignore[arg-type]
    )


def _movement(ledger: Ledger, t: NewTransfer, ts: datetime, now: datetime) -> R | _Effect:
    """A single-phase transfer or a new hold."""
    dr = ledger.accounts.get(t.debit_account_id)  # type: ignore[arg-type]
    cr = ledger.accounts.get(t.credit_account_id)  # type: ignore[arg-type]
    if dr is None:
        return R.debit_account_not_found
    if cr is None:
        return R.credit_account_not_found
    if dr.currency != t.currency or cr.currency != t.currency:
        return R.currency_mismatch
    if (refused := _open_checks(dr, cr)) is not None:
        return refused
    f, amount = t.flags, t.amount
    if f.balancing_debit and dr.flags.debits_must_not_exceed_credits:
        amount = max(0, min(amount, debit_room(dr)))
    if f.balancing_credit and cr.flags.credits_must_not_exceed_debits:
        amount = max(0, min(amount, credit_room(cr)))
    if f.pending and dr.debits_pending + amount > MAX_BALANCE:
        return R.overflows_debits_pending
    if f.pending and cr.credits_pending + amount > MAX_BALANCE:
        return R.overflows_credits_pending
    if not f.pending and dr.debits_posted + amount > MAX_BALANCE:
        return R.overflows_debits_posted
    if not f.pending and cr.credits_posted + amount > MAX_BALANCE:
        return R.overflows_credits_posted
    if dr.debits_pending + dr.debits_posted + amount > MAX_BALANCE:
        return R.overflows_debits
    if cr.credits_pending + cr.credits_posted + amount > MAX_BALANCE:
        return R.overflows_credits
    expires_at = None
    if f.pending and t.timeout_s > 0:
        try:
            expires_at = now + timedelta(seconds=t.timeout_s)
        except OverflowError:
            return R.overflows_timeout
    # max(0, …): moving nothing never breaks a limit further, so a fee balanced down to 0 on an
    # account already below its minimum balance is still ok (fees are never refused, §2).
    if dr.flags.debits_must_not_exceed_credits and amount > max(0, debit_room(dr)):
        return R.exceeds_credits
    if cr.flags.credits_must_not_exceed_debits and amount > max(0, credit_room(cr)):
        return R.exceeds_debits
    record = _new_record(t, dr, cr, amount, ts, expires_at=expires_at, state=PENDING if f.pending else POSTED)
    if f.pending:
        return _Effect(record, None, ((dr, amount, 0, 0, 0), (cr, 0, 0, amount, 0)))
    return _Effect(record, None, ((dr, 0, amount, 0, 0), (cr, 0, 0, 0, amount)))


def _resolution(ledger: Ledger, t: NewTransfer, ts: datetime, now: datetime) -> R | _Effect:
    """A post or void of a hold; the accounts default to the hold's."""
    pending = ledger.transfers.get(t.pending_id)  # type: ignore[arg-type]
    debit_id = _given(t.debit_account_id) or (pending.debit_account_id if pending else None)
    credit_id = _given(t.credit_account_id) or (pending.credit_account_id if pending else None)
    dr = ledger.accounts.get(debit_id) if debit_id is not None else None
    cr = ledger.accounts.get(credit_id) if credit_id is not None else None
    if debit_id is not None and dr is None:
        return R.debit_account_not_found
    if credit_id is not None and cr is None:
        return R.credit_account_not_found
    currencies = {a.currency for a in (dr, cr) if a is not None} | ({pending.currency} if pending else set())
    if currencies - {t.currency}:
        return R.currency_mismatch
    if pending is None:
        return R.pending_transfer_not_found
    if not pending.flags.pending:
        return R.pending_transfer_not_pending
    if debit_id != pending.debit_account_id:
        return R.pending_transfer_has_different_debit_account_id
    if credit_id != pending.credit_account_id:
        return R.pending_transfer_has_different_credit_account_id
    assert dr is not None and cr is not None
    post = t.flags.post_pending
    if post and t.amount > pending.amount:
        return R.exceeds_pending_transfer_amount
    if not post and t.amount not in (0, pending.amount):
        return R.pending_transfer_has_different_amount
    if pending.state == PENDING_POSTED:
        return R.pending_transfer_already_posted
    if pending.state == PENDING_VOIDED:
        return R.pending_transfer_already_voided
    if pending.state == PENDING_EXPIRED or (pending.expires_at is not None and now >= pending.expires_at):
        return R.pending_transfer_expired
    assert pending.state == PENDING, f"hold {pending.id} in state {pending.state}"
    held = pending.amount
    assert dr.debits_pending >= held and cr.credits_pending >= held, f"hold {pending.id} exceeds pending balances"
    if not post:
        # Releasing never breaks a limit, so frozen or closed accounts do not stop it.
        record = _new_record(t, dr, cr, held, ts, pending, expires_at=None, state=POSTED)
        resolved = replace(pending, state=PENDING_VOIDED)
        return _Effect(record, resolved, ((dr, -held, 0, 0, 0), (cr, 0, 0, -held, 0)))
    if (refused := _open_checks(dr, cr)) is not None:
        return refused
    amount = t.amount or held  # 0 = the full hold; a smaller amount posts partly, the rest is released
    if dr.debits_posted + amount > MAX_BALANCE:
        return R.overflows_debits_posted
    if cr.credits_posted + amount > MAX_BALANCE:
        return R.overflows_credits_posted
    # No limit check: posting at most the hold leaves pending + posted no larger than before.
    record = _new_record(t, dr, cr, amount, ts, pending, expires_at=None, state=POSTED)
    resolved = replace(pending, state=PENDING_POSTED)
    return _Effect(record, resolved, ((dr, -held, amount, 0, 0), (cr, 0, 0, -held, amount)))


def _evaluate(ledger: Ledger, t: NewTransfer, ts: datetime, now: datetime) -> R | _Effect:
    if t.id == ZERO_ID:
        return R.id_must_not_be_zero
    existing = ledger.transfers.get(t.id)
    if existing is not None:
        return _compare_existing(t, existing)
    if t.id in ledger.failed:
        return R.id_already_failed
    if (invalid := _validate(t)) is not None:
        return invalid
    if t.flags.post_pending or t.flags.void_pending:
        return _resolution(ledger, t, ts, now)
    return _movement(ledger, t, ts, now)


# --- chains ----------------------------------------------------------------------------------

_ABSENT = object()


def _four(a: AccountState) -> tuple[int, int, int, int]:
    return a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted


class _Undo:
    """Remembers the state before a chain's effects so a failing member can undo them all."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.balances: dict[UUID, tuple[AccountState, tuple[int, int, int, int]]] = {}
        self.transfers: dict[UUID, object] = {}

    def apply(self, effect: _Effect) -> None:
        for account, dp, dpo, cp, cpo in effect.deltas:
            if account.id not in self.balances:
                self.balances[account.id] = (account, _four(account))
            account.debits_pending += dp
            account.debits_posted += dpo
            account.credits_pending += cp
            account.credits_posted += cpo
            assert min(_four(account)) >= 0, f"negative balance on {account.id}"
        for record in (effect.transfer, effect.resolved):
            if record is not None:
                self.transfers.setdefault(record.id, self.ledger.transfers.get(record.id, _ABSENT))
                self.ledger.transfers[record.id] = record

    def rollback(self) -> None:
        for account, (dp, dpo, cp, cpo) in self.balances.values():
            account.debits_pending, account.debits_posted = dp, dpo
            account.credits_pending, account.credits_posted = cp, cpo
        for transfer_id, before in self.transfers.items():
            if before is _ABSENT:
                del self.ledger.transfers[transfer_id]
            else:
                self.ledger.transfers[transfer_id] = before  # type: ignore[assignment]


def chains(requests: Sequence[NewTransfer]) -> list[range]:
    """Index ranges of the chains: a linked transfer joins the next; the last chain may be open."""
    found, start = [], 0
    for i, t in enumerate(requests):
        if not t.flags.linked:
            found.append(range(start, i + 1))
            start = i + 1
    if start < len(requests):
        found.append(range(start, len(requests)))
    return found


def _run_chain(ledger: Ledger, requests: Sequence[NewTransfer], chain: range, now: datetime) -> list[Outcome]:
    undo = _Undo(ledger)
    effects: list[tuple[_Effect, tuple[BalancesAfter, BalancesAfter]]] = []
    for i in chain:
        t = requests[i]
        decision = _evaluate(ledger, t, now + timedelta(microseconds=i), now)
        if isinstance(decision, _Effect):
            undo.apply(decision)
            effects.append((decision, _snapshot(ledger, decision.transfer)))
            continue
        undo.rollback()
        if records_failure(decision):
            ledger.failed[t.id] = decision
        existing = ledger.transfers.get(t.id) if decision == R.exists else None
        return [
            Outcome(j, requests[j].id, decision, None, None, existing) if j == i
            else Outcome(j, requests[j].id, R.linked_event_failed, None, None)
            for j in chain
        ]
    return [
        Outcome(j, requests[j].id, R.ok, e.transfer, e.resolved, after=after)
        for j, (e, after) in zip(chain, effects, strict=True)
    ]


def _snapshot(ledger: Ledger, t: StoredTransfer) -> tuple[BalancesAfter, BalancesAfter]:
    return balances_after(ledger.accounts[t.debit_account_id]), balances_after(ledger.accounts[t.credit_account_id])


def create_transfers(ledger: Ledger, requests: Sequence[NewTransfer], now: datetime) -> list[Outcome]:
    """Apply a batch in order; one Outcome per request. Mutates `ledger` (see module docstring)."""
    outcomes: list[Outcome] = []
    for chain in chains(requests):
        if requests[chain[-1]].flags.linked:
            # The batch ended inside a chain: nothing of it is tried, so nothing is recorded.
            outcomes += [Outcome(j, requests[j].id, R.linked_event_chain_open, None, None) for j in chain]
        else:
            outcomes += _run_chain(ledger, requests, chain, now)
    assert [o.index for o in outcomes] == list(range(len(requests)))
    return outcomes


def expire_pending(ledger: Ledger, pending_ids: Sequence[UUID], now: datetime) -> list[Outcome]:
    """Release every hold among `pending_ids` that is still pending and due (`expires_at <= now`).

    Others (unknown, resolved, not yet due, never expiring) are skipped; `index` is the position
    in `pending_ids`. Expiry releases only, so frozen or closed accounts do not stop it.
    """
    outcomes = []
    for index, pending_id in enumerate(pending_ids):
        p = ledger.transfers.get(pending_id)
        if p is None or p.state != PENDING or p.expires_at is None or p.expires_at > now:
            continue
        dr, cr = ledger.accounts[p.debit_account_id], ledger.accounts[p.credit_account_id]
        assert dr.debits_pending >= p.amount and cr.credits_pending >= p.amount, f"hold {p.id} exceeds pending balances"
        dr.debits_pending -= p.amount
        cr.credits_pending -= p.amount
        resolved = replace(p, state=PENDING_EXPIRED)
        ledger.transfers[pending_id] = resolved
        outcomes.append(Outcome(index, pending_id, R.ok, None, resolved, after=_snapshot(ledger, resolved)))
    return outcomes
