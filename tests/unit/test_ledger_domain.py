"""Ledger rules: every transfer result code, chains, two-phase transfers, balancing, accounts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from contracts.ledger import (
    MAX_BALANCE,
    AccountFlags,
    AccountResultCode,
    LedgerError,
    NewAccount,
    NewTransfer,
    TransferFlags,
)
from contracts.ledger import TransferResultCode as R
from tests import ledger_oracle
from workers.ledger.domain.accounts import (
    ZERO_ID,
    AccountState,
    account_view,
    available,
    balance,
    create_accounts,
    set_flags,
    verified,
)
from workers.ledger.domain.transfers import (
    Ledger,
    create_transfers,
    expire_pending,
    records_failure,
    transfer_view,
)

NOW = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
VAULT, ALICE, BOB, LOAN, DOLLARS = (UUID(int=n) for n in range(1, 6))
LIABILITY = AccountFlags(debits_must_not_exceed_credits=True)
ASSET = AccountFlags(credits_must_not_exceed_debits=True)
FLAG_NAMES = set(TransferFlags.model_fields)


def world() -> Ledger:
    """A cash vault, two customer deposits, a loan (an asset) and a USD vault; no money yet."""
    accounts = [
        AccountState(VAULT, "INR", "cash_vault", AccountFlags(), 0),
        AccountState(ALICE, "INR", "customer_deposit", LIABILITY, 0),
        AccountState(BOB, "INR", "customer_deposit", LIABILITY, 0),
        AccountState(LOAN, "INR", "loan_principal", ASSET, 0),
        AccountState(DOLLARS, "USD", "cash_vault", AccountFlags(), 0),
    ]
    return Ledger(accounts={a.id: a for a in accounts}, transfers={}, failed={})


def T(debit: UUID | None = ALICE, credit: UUID | None = BOB, amount: int = 100, **kw: object) -> NewTransfer:
    """A transfer; flag names (pending=True, …) may be passed as keywords."""
    flags = TransferFlags(**{k: kw.pop(k) for k in list(kw) if k in FLAG_NAMES})  # type: ignore[arg-type]
    kw.setdefault("id", uuid4())
    kw.setdefault("currency", "INR")
    kw.setdefault("code", "internal_transfer")
    return NewTransfer(
        debit_account_id=debit, credit_account_id=credit, amount=amount, flags=flags, **kw  # type: ignore[arg-type]
    )


def post(
    pending: NewTransfer, amount: int = 0, debit: UUID | None = None, credit: UUID | None = None, **kw: object
) -> NewTransfer:
    """Post `pending`; the accounts default to the hold's."""
    return T(debit, credit, amount, post_pending=True, pending_id=pending.id, **kw)


def void(pending: NewTransfer, amount: int = 0, **kw: object) -> NewTransfer:
    return T(None, None, amount, void_pending=True, pending_id=pending.id, **kw)


def run(led: Ledger, *transfers: NewTransfer, now: datetime = NOW) -> list[R]:
    return [o.result for o in create_transfers(led, transfers, now)]


def apply(led: Ledger, *transfers: NewTransfer, now: datetime = NOW) -> None:
    assert run(led, *transfers, now=now) == [R.ok] * len(transfers)


def funded() -> Ledger:
    """Alice holds 1,000 from the vault."""
    led = world()
    apply(led, T(VAULT, ALICE, 1000, code="deposit"))
    return led


def balances(led: Ledger) -> dict[UUID, tuple[int, int, int, int]]:
    return {
        a.id: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) for a in led.accounts.values()
    }


def bal(led: Ledger, account_id: UUID) -> tuple[int, int, int, int]:
    return balances(led)[account_id]


def assert_refused(led: Ledger, request: NewTransfer, code: R, now: datetime = NOW) -> None:
    """`request` answers `code` and changes nothing but the failure record."""
    before, transfers_before = balances(led), dict(led.transfers)
    [outcome] = create_transfers(led, [request], now)
    assert (outcome.result, outcome.transfer, outcome.resolved_pending) == (code, None, None)
    assert balances(led) == before
    assert led.transfers == transfers_before
    assert (led.failed.get(request.id) == code) == records_failure(code)


# --- one scenario per refusal code -----------------------------------------------------------
# Each builds a ledger (running what must come before) and returns it with the request to refuse.

Scenario = Callable[[], tuple[Ledger, NewTransfer]]


def _exists_with(**change: object) -> Scenario:
    def build() -> tuple[Ledger, NewTransfer]:
        led = funded()
        original = T(VAULT, ALICE, 50, reference="dep-1", user_data={"channel": "branch"})
        apply(led, original)
        return led, original.model_copy(update=change)

    return build


def _exists_with_different_pending_id() -> tuple[Ledger, NewTransfer]:
    led = funded()
    hold_1, hold_2 = T(pending=True), T(pending=True)
    posting = post(hold_1)
    apply(led, hold_1, hold_2, posting)
    return led, posting.model_copy(update={"pending_id": hold_2.id})


def _exists_with_different_timeout() -> tuple[Ledger, NewTransfer]:
    led = funded()
    hold = T(pending=True, timeout_s=60)
    apply(led, hold)
    return led, hold.model_copy(update={"timeout_s": 120})


def _id_already_failed() -> tuple[Ledger, NewTransfer]:
    led = funded()
    too_much = T(ALICE, BOB, 5000)
    assert run(led, too_much) == [R.exceeds_credits]
    return led, too_much.model_copy(update={"amount": 10})  # a retry needs a new id


def _after(*priors: NewTransfer, request: Callable[[], NewTransfer]) -> Scenario:
    def build() -> tuple[Ledger, NewTransfer]:
        led = funded()
        apply(led, *priors)
        return led, request()

    return build


def _with_account(account_id: UUID, **state: object) -> Callable[[Callable[[], NewTransfer]], Scenario]:
    def wrap(request: Callable[[], NewTransfer]) -> Scenario:
        def build() -> tuple[Ledger, NewTransfer]:
            led = funded()
            for name, value in state.items():
                setattr(led.accounts[account_id], name, value)
            return led, request()

        return build

    return wrap


def _pending_then(
    resolve: Callable[[NewTransfer], list[NewTransfer]], request: Callable[[NewTransfer], NewTransfer]
) -> Scenario:
    def build() -> tuple[Ledger, NewTransfer]:
        led = funded()
        hold = T(pending=True)
        apply(led, hold, *resolve(hold))
        return led, request(hold)

    return build


def _expired() -> tuple[Ledger, NewTransfer]:
    led = funded()
    hold = T(pending=True, timeout_s=10)
    apply(led, hold)
    assert len(expire_pending(led, [hold.id], NOW + timedelta(seconds=10))) == 1
    return led, post(hold)


_single = T(VAULT, ALICE, 1)


def _hold(debit: UUID, credit: UUID) -> NewTransfer:
    return T(debit, credit, 10, pending=True)


REFUSALS: dict[R, Scenario] = {
    R.id_must_not_be_zero: lambda: (funded(), T(id=ZERO_ID)),
    R.exists_with_different_flags: _exists_with(flags=TransferFlags(pending=True)),
    R.exists_with_different_pending_id: _exists_with_different_pending_id,
    R.exists_with_different_timeout: _exists_with_different_timeout,
    R.exists_with_different_debit_account_id: _exists_with(debit_account_id=BOB),
    R.exists_with_different_credit_account_id: _exists_with(credit_account_id=BOB),
    R.exists_with_different_amount: _exists_with(amount=51),
    R.exists_with_different_currency: _exists_with(currency="USD"),
    R.exists_with_different_code: _exists_with(code="fee"),
    R.exists_with_different_reference: _exists_with(reference="dep-2"),
    R.exists_with_different_user_data: _exists_with(user_data={"channel": "atm"}),
    R.id_already_failed: _id_already_failed,
    R.flags_are_mutually_exclusive: lambda: (funded(), T(pending=True, post_pending=True, pending_id=uuid4())),
    R.debit_account_id_required: lambda: (funded(), T(None, BOB)),
    R.credit_account_id_required: lambda: (funded(), T(ALICE, None)),
    R.accounts_must_be_different: lambda: (funded(), T(ALICE, ALICE)),
    R.pending_id_must_be_zero: lambda: (funded(), T(pending_id=uuid4())),
    R.pending_id_required: lambda: (funded(), T(None, None, 0, post_pending=True)),
    R.timeout_reserved_for_pending_transfer: lambda: (funded(), T(timeout_s=30)),
    R.amount_must_not_be_zero: lambda: (funded(), T(amount=0)),
    R.debit_account_not_found: lambda: (funded(), T(uuid4(), BOB)),
    R.credit_account_not_found: lambda: (funded(), T(ALICE, uuid4())),
    R.currency_mismatch: lambda: (funded(), T(VAULT, DOLLARS, 10)),
    R.pending_transfer_not_found: lambda: (funded(), T(None, None, 0, post_pending=True, pending_id=uuid4())),
    R.pending_transfer_not_pending: _after(_single, request=lambda: post(_single)),
    R.pending_transfer_has_different_debit_account_id: _pending_then(lambda h: [], lambda h: post(h, debit=VAULT)),
    R.pending_transfer_has_different_credit_account_id: _pending_then(lambda h: [], lambda h: post(h, credit=VAULT)),
    R.exceeds_pending_transfer_amount: _pending_then(lambda h: [], lambda h: post(h, 101)),
    R.pending_transfer_has_different_amount: _pending_then(lambda h: [], lambda h: void(h, 40)),
    R.pending_transfer_already_posted: _pending_then(lambda h: [post(h)], lambda h: post(h)),
    R.pending_transfer_already_voided: _pending_then(lambda h: [void(h)], lambda h: post(h)),
    R.pending_transfer_expired: _expired,
    R.debit_account_frozen: _with_account(ALICE, frozen=True)(lambda: T(ALICE, BOB, 10)),
    R.credit_account_frozen: _with_account(BOB, frozen=True)(lambda: T(ALICE, BOB, 10)),
    R.debit_account_already_closed: _with_account(ALICE, closed=True)(lambda: T(ALICE, BOB, 10)),
    R.credit_account_already_closed: _with_account(BOB, closed=True)(lambda: T(ALICE, BOB, 10)),
    R.overflows_debits_pending: _with_account(VAULT, debits_pending=MAX_BALANCE - 5)(lambda: _hold(VAULT, BOB)),
    R.overflows_credits_pending: _with_account(BOB, credits_pending=MAX_BALANCE - 5)(lambda: _hold(VAULT, BOB)),
    R.overflows_debits_posted: _with_account(VAULT, debits_posted=MAX_BALANCE - 5)(lambda: T(VAULT, BOB, 10)),
    R.overflows_credits_posted: _with_account(BOB, credits_posted=MAX_BALANCE - 5)(lambda: T(VAULT, BOB, 10)),
    R.overflows_debits: _with_account(VAULT, debits_pending=MAX_BALANCE - 5)(lambda: T(VAULT, BOB, 10)),
    R.overflows_credits: _with_account(BOB, credits_pending=MAX_BALANCE - 5)(lambda: T(VAULT, BOB, 10)),
    R.exceeds_credits: lambda: (funded(), T(ALICE, BOB, 1001)),
    R.exceeds_debits: lambda: (funded(), T(VAULT, LOAN, 1)),
}


@pytest.mark.parametrize("code", list(REFUSALS), ids=str)
def test_refusal_answers_its_code_and_changes_no_balance(code: R) -> None:
    led, request = REFUSALS[code]()
    assert_refused(led, request, code)


def test_overflows_timeout_when_the_expiry_is_past_the_calendar() -> None:
    end_of_time = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    led = funded()
    assert_refused(led, T(pending=True, timeout_s=3600), R.overflows_timeout, now=end_of_time)


def test_every_result_code_has_a_test() -> None:
    elsewhere = {R.ok, R.exists, R.linked_event_failed, R.linked_event_chain_open, R.overflows_timeout}
    assert set(R) == set(REFUSALS) | elsewhere


# banking-rules §3, "Results, first applicable wins" (exists_with_different_<field> stands for its family).
RULES_ORDER = """linked_event_failed linked_event_chain_open id_must_not_be_zero exists_with_different_flags exists
id_already_failed flags_are_mutually_exclusive accounts_must_be_different amount_must_not_be_zero
debit_account_not_found credit_account_not_found currency_mismatch pending_transfer_not_found
exceeds_pending_transfer_amount pending_transfer_already_posted pending_transfer_already_voided
pending_transfer_expired debit_account_frozen credit_account_frozen debit_account_already_closed
credit_account_already_closed overflows_debits_pending exceeds_credits exceeds_debits""".split()


def test_result_codes_are_declared_in_the_banking_rules_order() -> None:
    declared = [code.value for code in R]
    positions = [declared.index(name) for name in RULES_ORDER]
    assert positions == sorted(positions)
    family = [i for i, name in enumerate(declared) if name.startswith("exists_with_different_")]
    assert family == list(range(family[0], family[0] + len(family)))
    assert declared.index("exists") == family[-1] + 1


# --- the first applicable code wins ----------------------------------------------------------


def test_frozen_wins_over_exceeds_credits() -> None:
    led = funded()
    led.accounts[ALICE].frozen = True
    assert_refused(led, T(ALICE, BOB, 5000), R.debit_account_frozen)


def test_exists_wins_over_every_validation() -> None:
    led = funded()
    original = T(VAULT, ALICE, 5)
    apply(led, original)
    led.accounts[ALICE].closed = True
    [outcome] = create_transfers(led, [original], NOW)
    assert outcome.result == R.exists and outcome.existing == led.transfers[original.id]


def test_currency_of_the_transfer_must_match_both_accounts() -> None:
    assert_refused(funded(), T(VAULT, ALICE, 10, currency="USD"), R.currency_mismatch)


# --- single-phase transfers ------------------------------------------------------------------


def test_transfer_moves_posted_balances_and_is_stamped_by_the_ledger() -> None:
    led = funded()
    t = T(ALICE, BOB, 300)
    [outcome] = create_transfers(led, [t], NOW)
    assert outcome.result == R.ok and outcome.transfer is not None
    assert (outcome.transfer.amount, outcome.transfer.state, outcome.transfer.timestamp) == (300, "posted", NOW)
    assert bal(led, ALICE) == (0, 300, 0, 1000) and bal(led, BOB) == (0, 0, 0, 300)
    assert (balance(led.accounts[ALICE]), available(led.accounts[ALICE])) == (700, 700)
    assert led.transfers[t.id] == outcome.transfer


def test_timestamps_strictly_increase_within_a_batch() -> None:
    led = funded()
    outcomes = create_transfers(led, [T(ALICE, BOB, 1), T(VAULT, BOB, 1), T(BOB, ALICE, 1)], NOW)
    stamps = [o.transfer.timestamp for o in outcomes if o.transfer]
    assert stamps == [NOW + timedelta(microseconds=i) for i in range(3)]


def test_debit_up_to_credits_plus_overdraft_limit_is_inclusive() -> None:
    led = funded()
    led.accounts[ALICE].overdraft_limit = 200
    assert_refused(led, T(ALICE, BOB, 1201), R.exceeds_credits)
    apply(led, T(ALICE, BOB, 1200))
    assert balance(led.accounts[ALICE]) == -200


def test_negative_overdraft_limit_is_a_minimum_balance() -> None:
    led = funded()
    led.accounts[ALICE].overdraft_limit = -100
    assert_refused(led, T(ALICE, BOB, 901), R.exceeds_credits)
    apply(led, T(ALICE, BOB, 900))


def test_pending_debits_count_against_credits() -> None:
    led = funded()
    apply(led, T(ALICE, BOB, 600, pending=True))
    assert available(led.accounts[ALICE]) == 400
    assert_refused(led, T(ALICE, BOB, 401), R.exceeds_credits)


def test_pending_credits_count_against_debits() -> None:
    led = funded()
    apply(led, T(LOAN, ALICE, 500, code="loan_disbursement"))
    apply(led, T(ALICE, LOAN, 300, pending=True))
    assert_refused(led, T(ALICE, LOAN, 201), R.exceeds_debits)


def test_credit_limit_mirrors_for_debit_normal_accounts() -> None:
    led = funded()
    apply(led, T(LOAN, ALICE, 500, code="loan_disbursement"))
    led.accounts[LOAN].overdraft_limit = 10
    assert_refused(led, T(ALICE, LOAN, 511, code="loan_repayment"), R.exceeds_debits)
    apply(led, T(ALICE, LOAN, 510, code="loan_repayment"))


# --- idempotency -----------------------------------------------------------------------------


def test_same_id_and_fields_answers_exists_and_moves_nothing() -> None:
    led = funded()
    t = T(ALICE, BOB, 100)
    apply(led, t)
    before = balances(led)
    [outcome] = create_transfers(led, [t], NOW + timedelta(seconds=5))
    assert outcome.result == R.exists and outcome.transfer is None
    assert outcome.existing is not None and outcome.existing.timestamp == NOW
    assert balances(led) == before
    assert t.id not in led.failed


def test_repeated_id_within_a_batch() -> None:
    led = funded()
    t = T(ALICE, BOB, 100)
    assert run(led, t, t, t.model_copy(update={"amount": 7})) == [R.ok, R.exists, R.exists_with_different_amount]
    assert bal(led, BOB) == (0, 0, 0, 100)


def test_post_of_the_full_amount_retried_compares_the_requested_amount() -> None:
    led = funded()
    hold = T(pending=True)
    posting = post(hold)  # amount 0 = everything held
    apply(led, hold, posting)
    assert led.transfers[posting.id].amount == 100
    assert run(led, posting) == [R.exists]
    assert run(led, posting.model_copy(update={"debit_account_id": ALICE})) == [R.exists]
    assert run(led, posting.model_copy(update={"amount": 100})) == [R.exists_with_different_amount]


def test_failed_id_stays_failed_even_when_the_cause_is_gone() -> None:
    led = funded()
    t = T(ALICE, BOB, 1500)
    assert run(led, t) == [R.exceeds_credits]
    apply(led, T(VAULT, ALICE, 1000))
    assert run(led, t) == [R.id_already_failed]
    assert led.failed[t.id] == R.exceeds_credits  # the first cause is kept


def test_which_codes_are_recorded_as_failures() -> None:
    assert records_failure(R.exceeds_credits) and records_failure(R.debit_account_not_found)
    kept_out = [R.ok, R.exists, R.exists_with_different_amount, R.id_already_failed, R.id_must_not_be_zero]
    for code in [*kept_out, R.linked_event_failed, R.linked_event_chain_open]:
        assert not records_failure(code)


# --- linked chains ---------------------------------------------------------------------------


def test_linked_chain_succeeds_as_a_whole_and_members_see_earlier_effects() -> None:
    led = world()
    # Alice has nothing until the first member credits her; the second spends it.
    chain = [T(VAULT, ALICE, 500, linked=True), T(ALICE, BOB, 450, linked=True), T(ALICE, VAULT, 50)]
    assert run(led, *chain) == [R.ok] * 3
    assert bal(led, ALICE) == (0, 500, 0, 500) and bal(led, BOB) == (0, 0, 0, 450)


def test_failing_middle_member_rolls_back_the_whole_chain() -> None:
    led = funded()
    before = balances(led)
    first, middle, last = T(VAULT, ALICE, 500, linked=True), T(ALICE, BOB, 5000, linked=True), T(BOB, VAULT, 1)
    single = T(VAULT, BOB, 7)
    outcomes = create_transfers(led, [first, middle, last, single], NOW)
    assert [o.result for o in outcomes] == [R.linked_event_failed, R.exceeds_credits, R.linked_event_failed, R.ok]
    assert all(o.transfer is None for o in outcomes[:3])
    before[VAULT] = (0, before[VAULT][1] + 7, 0, 0)
    before[BOB] = (0, 0, 0, 7)
    assert balances(led) == before
    assert first.id not in led.transfers and last.id not in led.transfers
    assert led.failed == {middle.id: R.exceeds_credits}


def test_chain_rollback_restores_a_pending_transfer_it_posted() -> None:
    led = funded()
    hold = T(ALICE, BOB, 300, pending=True)
    apply(led, hold)
    before, stored_hold = balances(led), led.transfers[hold.id]
    assert run(led, post(hold, linked=True), T(ALICE, BOB, 5000)) == [R.linked_event_failed, R.exceeds_credits]
    assert balances(led) == before and led.transfers[hold.id] == stored_hold
    assert run(led, post(hold)) == [R.ok]


def test_chain_still_open_at_the_end_of_the_batch_is_not_tried() -> None:
    led = funded()
    single, open_1, open_2 = T(ALICE, BOB, 1), T(ALICE, BOB, 2, linked=True), T(ALICE, BOB, 3, linked=True)
    assert run(led, single, open_1, open_2) == [R.ok, R.linked_event_chain_open, R.linked_event_chain_open]
    assert bal(led, BOB) == (0, 0, 0, 1)
    assert open_1.id not in led.failed and open_1.id not in led.transfers
    # Nothing was recorded, so the same ids may go through once the chain is closed.
    assert run(led, open_1, open_2.model_copy(update={"flags": TransferFlags()})) == [R.ok, R.ok]


def test_retried_chain_fails_again_and_its_innocent_members_stay_usable() -> None:
    led = funded()
    first, bad = T(ALICE, BOB, 10, linked=True), T(ALICE, BOB, 5000)
    assert run(led, first, bad) == [R.linked_event_failed, R.exceeds_credits]
    assert run(led, first, bad) == [R.linked_event_failed, R.id_already_failed]
    assert run(led, first, T(ALICE, BOB, 20)) == [R.ok, R.ok]


def test_resubmitted_successful_chain_answers_exists_then_linked_event_failed() -> None:
    led = funded()
    chain = [T(ALICE, BOB, 10, linked=True), T(BOB, ALICE, 5)]
    apply(led, *chain)
    before = balances(led)
    assert run(led, *chain) == [R.exists, R.linked_event_failed]
    assert balances(led) == before


# --- two-phase transfers ---------------------------------------------------------------------


def test_pending_holds_on_both_sides_and_expires_at_now_plus_timeout() -> None:
    led = funded()
    hold = T(ALICE, BOB, 300, pending=True, timeout_s=60)
    [outcome] = create_transfers(led, [hold], NOW)
    assert outcome.transfer is not None and outcome.transfer.state == "pending"
    assert outcome.transfer.expires_at == NOW + timedelta(seconds=60)
    assert bal(led, ALICE) == (300, 0, 0, 1000) and bal(led, BOB) == (0, 0, 300, 0)
    assert balance(led.accounts[ALICE]) == 1000 and available(led.accounts[ALICE]) == 700


def test_post_of_the_full_amount() -> None:
    led = funded()
    hold = T(ALICE, BOB, 300, pending=True)
    apply(led, hold)
    posting = post(hold)
    [outcome] = create_transfers(led, [posting], NOW)
    assert outcome.transfer is not None and outcome.resolved_pending is not None
    moved = outcome.transfer
    assert (moved.amount, moved.debit_account_id, moved.credit_account_id) == (300, ALICE, BOB)
    assert outcome.resolved_pending.state == "pending_posted" == led.transfers[hold.id].state
    assert bal(led, ALICE) == (0, 300, 0, 1000) and bal(led, BOB) == (0, 0, 0, 300)


def test_partial_post_releases_the_rest() -> None:
    led = funded()
    hold = T(ALICE, BOB, 300, pending=True)
    apply(led, hold, post(hold, 120, debit=ALICE, credit=BOB))
    assert bal(led, ALICE) == (0, 120, 0, 1000) and bal(led, BOB) == (0, 0, 0, 120)
    assert led.transfers[hold.id].amount == 300  # the hold keeps what it held


def test_void_releases_the_hold() -> None:
    led = funded()
    hold = T(ALICE, BOB, 300, pending=True)
    apply(led, hold)
    voiding = void(hold, 300)
    [outcome] = create_transfers(led, [voiding], NOW)
    assert outcome.transfer is not None and outcome.transfer.amount == 300 and outcome.transfer.state == "posted"
    assert led.transfers[hold.id].state == "pending_voided"
    assert bal(led, ALICE) == (0, 0, 0, 1000) and bal(led, BOB) == (0, 0, 0, 0)


def test_hold_and_post_in_the_same_batch() -> None:
    led = funded()
    hold = T(ALICE, BOB, 300, pending=True)
    assert run(led, hold, post(hold, 100)) == [R.ok, R.ok]
    assert bal(led, ALICE) == (0, 100, 0, 1000)


def test_void_and_expiry_release_even_on_frozen_or_closed_accounts() -> None:
    # decision: releasing never breaks a limit, so a freeze must not trap a held amount.
    led = funded()
    hold, lapsing = T(ALICE, BOB, 300, pending=True), T(ALICE, BOB, 200, pending=True, timeout_s=5)
    apply(led, hold, lapsing)
    led.accounts[ALICE].frozen = True
    led.accounts[BOB].closed = True
    assert run(led, post(hold)) == [R.debit_account_frozen]
    assert run(led, void(hold)) == [R.ok]
    assert len(expire_pending(led, [lapsing.id], NOW + timedelta(seconds=5))) == 1
    assert bal(led, ALICE) == (0, 0, 0, 1000) and bal(led, BOB) == (0, 0, 0, 0)


def test_expiry_releases_only_due_holds() -> None:
    led = funded()
    due, later, never, posted = (T(ALICE, BOB, 10, pending=True, timeout_s=s) for s in (10, 100, 0, 10))
    apply(led, due, later, never, posted, post(posted))
    ids = [due.id, later.id, never.id, posted.id, uuid4(), due.id]
    outcomes = expire_pending(led, ids, NOW + timedelta(seconds=10))
    assert [(o.index, o.id, o.result) for o in outcomes] == [(0, due.id, R.ok)]
    assert outcomes[0].resolved_pending == led.transfers[due.id] and led.transfers[due.id].state == "pending_expired"
    assert bal(led, ALICE) == (20, 10, 0, 1000)


def test_hold_past_its_expiry_cannot_be_posted_or_voided_before_the_sweep() -> None:
    led = funded()
    hold = T(ALICE, BOB, 300, pending=True, timeout_s=10)
    apply(led, hold)
    later = NOW + timedelta(seconds=10)
    assert_refused(led, post(hold), R.pending_transfer_expired, now=later)
    assert_refused(led, void(hold), R.pending_transfer_expired, now=later)
    assert run(led, post(hold), now=later - timedelta(microseconds=1)) == [R.ok]


# --- balancing -------------------------------------------------------------------------------


def _amount_moved(led: Ledger, t: NewTransfer) -> int:
    [outcome] = create_transfers(led, [t], NOW)
    assert outcome.result == R.ok and outcome.transfer is not None
    return outcome.transfer.amount


def test_balancing_debit_moves_at_most_what_the_floor_allows() -> None:
    led = funded()
    led.accounts[ALICE].overdraft_limit = -100  # minimum balance 100
    fee = T(ALICE, VAULT, 1500, code="fee", balancing_debit=True)
    assert _amount_moved(led, fee) == 900
    assert led.transfers[fee.id].requested_amount == 1500
    assert balance(led.accounts[ALICE]) == 100


def test_balancing_debit_counts_pending_debits() -> None:
    led = funded()
    apply(led, T(ALICE, BOB, 600, pending=True))
    assert _amount_moved(led, T(ALICE, VAULT, 1000, balancing_debit=True)) == 400


def test_balancing_to_zero_is_ok_with_amount_zero() -> None:
    # decision: recorded like any other transfer, so a retry answers exists, not a second fee.
    led = world()
    led.accounts[ALICE].overdraft_limit = -100  # already below its minimum: no room, never negative
    fee = T(ALICE, VAULT, 25, code="fee", balancing_debit=True)
    assert _amount_moved(led, fee) == 0
    assert run(led, fee) == [R.exists]
    assert bal(led, ALICE) == (0, 0, 0, 0)


def test_balancing_debit_without_a_limit_moves_everything() -> None:
    led = world()
    assert _amount_moved(led, T(VAULT, ALICE, 10**15, balancing_debit=True)) == 10**15


def test_balancing_credit_moves_at_most_what_the_asset_owes() -> None:
    led = funded()
    apply(led, T(LOAN, BOB, 300, code="loan_disbursement"))
    assert _amount_moved(led, T(ALICE, LOAN, 1000, code="loan_repayment", balancing_credit=True)) == 300
    assert balance(led.accounts[LOAN]) == 0


def test_both_balancing_flags_take_the_smaller_room() -> None:
    led = funded()
    apply(led, T(LOAN, BOB, 300))
    both = T(ALICE, LOAN, 5000, balancing_debit=True, balancing_credit=True)
    assert _amount_moved(led, both) == 300
    led.accounts[LOAN].overdraft_limit = 10_000
    assert _amount_moved(led, T(ALICE, LOAN, 5000, balancing_debit=True, balancing_credit=True)) == 700


def test_balancing_debit_still_respects_the_credit_side_limit() -> None:
    led = funded()
    assert_refused(led, T(ALICE, LOAN, 50, balancing_debit=True), R.exceeds_debits)


# --- accounts --------------------------------------------------------------------------------


def _new(id: UUID, **kw: object) -> NewAccount:
    kw.setdefault("currency", "INR")
    kw.setdefault("code", "customer_deposit")
    return NewAccount(id=id, **kw)  # type: ignore[arg-type]


def test_create_accounts_answers_each_code() -> None:
    existing: dict[UUID, AccountState] = {}
    owner, a = uuid4(), uuid4()
    first = _new(a, flags=LIABILITY, overdraft_limit=-100, owner_id=owner)
    requests = [
        first,
        first,
        first.model_copy(update={"user_data": {"note": "ignored"}}),
        first.model_copy(update={"currency": "USD"}),
        first.model_copy(update={"code": "suspense"}),
        first.model_copy(update={"flags": AccountFlags(debits_must_not_exceed_credits=True, history=True)}),
        first.model_copy(update={"overdraft_limit": 0}),
        first.model_copy(update={"owner_id": uuid4()}),
        _new(ZERO_ID),
        _new(uuid4(), flags=AccountFlags(debits_must_not_exceed_credits=True, credits_must_not_exceed_debits=True)),
    ]
    codes = [code for _, code in create_accounts(existing, requests)]
    C = AccountResultCode
    assert codes == [
        C.ok,
        C.exists,
        C.exists,
        C.exists_with_different_currency,
        C.exists_with_different_code,
        C.exists_with_different_flags,
        C.exists_with_different_overdraft_limit,
        C.exists_with_different_owner_id,
        C.id_must_not_be_zero,
        C.flags_are_mutually_exclusive,
    ]
    assert list(existing) == [a]
    assert existing[a] == AccountState(a, "INR", "customer_deposit", LIABILITY, -100, owner_id=owner)


def test_freeze_unfreeze_and_close() -> None:
    a = AccountState(ALICE, "INR", "customer_deposit", LIABILITY, 0)
    assert set_flags(a, "freeze") is None and a.frozen
    assert set_flags(a, "freeze") is None and a.frozen  # a repeat is harmless
    assert set_flags(a, "unfreeze") is None and not a.frozen
    assert set_flags(a, "close") is None and a.closed
    for action in ("freeze", "unfreeze", "close"):
        assert set_flags(a, action) == LedgerError.account_already_closed


def test_close_refused_with_a_balance_or_pending_amounts() -> None:
    with_balance = AccountState(ALICE, "INR", "customer_deposit", LIABILITY, 0, debits_posted=5, credits_posted=10)
    assert set_flags(with_balance, "close") == LedgerError.close_refused_nonzero_balance
    for held in ({"debits_pending": 1}, {"credits_pending": 1}):
        with_hold = AccountState(ALICE, "INR", "customer_deposit", LIABILITY, 0, debits_posted=5, credits_posted=5)
        for name, value in held.items():
            setattr(with_hold, name, value)
        assert set_flags(with_hold, "close") == LedgerError.close_refused_pending_transfers
        assert not with_hold.closed


def test_views_carry_the_balances() -> None:
    led = funded()
    hold = T(ALICE, BOB, 300, pending=True)
    apply(led, hold)
    view = account_view(led.accounts[ALICE], NOW, {"k": 1})
    assert (view.balance, view.available, view.debits_pending) == (1000, 700, 300)
    assert transfer_view(led.transfers[hold.id]).status == "pending"


def test_the_oracle_recomputes_balances_from_transfers() -> None:
    led = funded()
    hold = T(ALICE, BOB, 300, pending=True)
    apply(led, hold, post(hold, 100), T(ALICE, BOB, 5, pending=True))
    result = ledger_oracle.verify(led.accounts.values(), led.transfers.values())
    assert result.ok and result.accounts_checked == 5 and result.transfers_checked == 4
    inr = next(t for t in result.totals if t["currency"] == "INR")
    assert inr["debits_posted"] == inr["credits_posted"] == 1100 and inr["debits_pending"] == 5
    led.accounts[BOB].credits_posted += 1
    broken = ledger_oracle.verify(led.accounts.values(), led.transfers.values())
    assert not broken.ok
    [bob, inr] = broken.mismatches
    assert bob["id"] == str(BOB) and (bob["credits_posted"], bob["expected_credits_posted"]) == (101, 100)
    assert bob["debits_posted"] == bob["expected_debits_posted"]
    assert inr == {"currency": "INR", "field": "debits_posted", "stored": 1100, "expected": 1101}


def test_verification_is_ok_only_when_every_account_and_currency_balances() -> None:
    def totals(currency: str, dpo: int, cpo: int, dp: int = 0, cp: int = 0) -> dict[str, object]:
        return {"currency": currency, "debits_posted": dpo, "credits_posted": cpo, "debits_pending": dp,
                "credits_pending": cp}  # fmt: skip

    fine = verified([], [totals("INR", 7, 7, 2, 2), totals("USD", 0, 0)], accounts_checked=3, transfers_checked=4)
    assert fine.ok and fine.mismatches == [] and (fine.accounts_checked, fine.transfers_checked) == (3, 4)
    assert fine.totals == [totals("INR", 7, 7, 2, 2), totals("USD", 0, 0)]
    account = {"id": str(ALICE), "debits_posted": 1, "expected_debits_posted": 0}
    broken = verified([account], [totals("INR", 7, 6, 2, 3), totals("USD", 5, 5)], accounts_checked=1,
                      transfers_checked=1)  # fmt: skip
    assert not broken.ok
    # The accounts the store found come first, then each currency's posted, then pending, pair.
    assert broken.mismatches == [
        account,
        {"currency": "INR", "field": "debits_posted", "stored": 7, "expected": 6},
        {"currency": "INR", "field": "debits_pending", "stored": 2, "expected": 3},
    ]
    assert not verified([account], [], accounts_checked=1, transfers_checked=0).ok


def test_available_is_the_room_above_the_floor_the_ledger_enforces() -> None:
    """A savings account keeps 100.00 in (overdraft_limit −10,000): of 2,500.00 deposited, 2,400.00
    is available, as the ledger's own debit rule says (a user was told 2,500.00 and refused)."""
    savings = AccountState(ALICE, "INR", "customer_deposit", LIABILITY, -10_000, credits_posted=250_000)
    assert (balance(savings), available(savings)) == (250_000, 240_000)
    savings.debits_pending = 5_000
    assert available(savings) == 235_000
    led = Ledger({VAULT: AccountState(VAULT, "INR", "cash_vault", AccountFlags(), 0), ALICE: savings}, {}, {})
    savings.debits_pending = 0
    over = create_transfers(led, [NewTransfer(id=uuid4(), debit_account_id=ALICE, credit_account_id=VAULT,
                                              amount=240_001, currency="INR", code="withdrawal")], NOW)  # fmt: skip
    assert over[0].result == R.exceeds_credits
    exact = create_transfers(led, [NewTransfer(id=uuid4(), debit_account_id=ALICE, credit_account_id=VAULT,
                                               amount=240_000, currency="INR", code="withdrawal")], NOW)  # fmt: skip
    assert exact[0].result == R.ok and available(savings) == 0 and balance(savings) == 10_000
    current = AccountState(BOB, "INR", "customer_deposit", AccountFlags(), 0, credits_posted=100, debits_pending=30)
    assert available(current) == 70  # no floor flag: the balance less what is held


def test_a_closing_payout_lifts_the_floor_only_while_it_runs() -> None:
    from workers.ledger.domain.accounts import closure_refusal, floor_lifted

    savings = AccountState(ALICE, "INR", "customer_deposit", LIABILITY, -10_000, credits_posted=10_000)
    assert closure_refusal(savings, paying_out=True) is None and closure_refusal(savings) == "close_refused_nonzero_balance"
    with floor_lifted(savings):
        assert savings.overdraft_limit == 0 and available(savings) == 10_000
    assert savings.overdraft_limit == -10_000 and available(savings) == 0
    overdraft = AccountState(BOB, "INR", "customer_deposit", LIABILITY, 500, debits_posted=200)
    with floor_lifted(overdraft):
        assert overdraft.overdraft_limit == 0, "a closing neither pays out nor charges into the red"
    assert overdraft.overdraft_limit == 500
    assert closure_refusal(overdraft, paying_out=True) == "close_refused_nonzero_balance"
    held = AccountState(BOB, "INR", "customer_deposit", LIABILITY, 0, credits_posted=50, debits_pending=10)
    assert closure_refusal(held, paying_out=True) == "close_refused_pending_transfers"


def test_an_overdraft_limit_is_lowered_only_as_far_as_what_the_account_uses() -> None:
    from contracts.ledger import AccountFlags, LedgerError
    from workers.ledger.domain.accounts import AccountState, set_overdraft_limit

    def deposit(**balances: int) -> AccountState:
        return AccountState(id=uuid4(), currency="INR", code="customer_deposit", overdraft_limit=100_000,
                            flags=AccountFlags(debits_must_not_exceed_credits=True), **balances)  # fmt: skip

    overdrawn = deposit(debits_posted=60_000, credits_posted=10_000)  # 500.00 into a 1,000.00 overdraft
    assert set_overdraft_limit(overdrawn, 49_999) == LedgerError.overdraft_in_use and overdrawn.overdraft_limit == 100_000
    assert set_overdraft_limit(overdrawn, 50_000) is None and overdrawn.overdraft_limit == 50_000
    empty = deposit()
    assert set_overdraft_limit(empty, -10_000) is None  # a minimum balance above what it holds: legal, debits stop
    closed = deposit()
    closed.closed = True
    assert set_overdraft_limit(closed, 0) == LedgerError.account_already_closed


# --- words: narration and counterparty ----------------------------------------------------------


def test_a_post_or_void_keeps_its_holds_words_unless_it_brings_its_own() -> None:
    led = funded()
    hold = T(ALICE, BOB, 300, pending=True, reference="NEFT1", narration="NEFT to Asha Rao: rent",
             counterparty="Asha Rao · HDFC0001234 · 5010")  # fmt: skip
    other = T(ALICE, BOB, 100, pending=True, narration="Lien: court order")
    apply(led, hold, other)
    [posted] = create_transfers(led, [post(hold)], NOW)
    [voided] = create_transfers(led, [void(other, narration="Lien released: order lifted")], NOW)
    assert posted.transfer is not None and voided.transfer is not None
    assert (posted.transfer.narration, posted.transfer.counterparty) == ("NEFT to Asha Rao: rent", "Asha Rao · HDFC0001234 · 5010")
    assert (voided.transfer.narration, voided.transfer.counterparty) == ("Lien released: order lifted", None)
    view = transfer_view(posted.transfer)
    assert (view.narration, view.counterparty) == ("NEFT to Asha Rao: rent", "Asha Rao · HDFC0001234 · 5010")


def test_words_are_not_part_of_a_transfers_identity() -> None:
    """A retry with other words is the same transfer: `exists`, and the first words stay."""
    led = funded()
    first = T(ALICE, BOB, 100, narration="Transfer: rent")
    apply(led, first)
    assert run(led, first.model_copy(update={"narration": "Transfer: something else"})) == [R.exists]
    assert led.transfers[first.id].narration == "Transfer: rent"


def test_a_history_line_names_the_other_side() -> None:
    from contracts.ledger import bank_account_id
    from workers.ledger.domain.lines import counterparty_name

    vault = bank_account_id("cash_vault", "INR")
    neft = bank_account_id("clearing_neft", "INR")
    assert counterparty_name(account_id=vault, code="cash_vault", owner_id=None, title=None, outside_party=None) == "Cash in vault"
    assert counterparty_name(account_id=neft, code="clearing_neft", owner_id=None, title=None,
                             outside_party="Asha Rao · HDFC0001234") == "Asha Rao · HDFC0001234"  # fmt: skip
    # A customer's account: its number, never a name; the outside party is not its.
    assert counterparty_name(account_id=BOB, code="customer_deposit", owner_id=ALICE, title="10000042",
                             outside_party="ignored") == "10000042"  # fmt: skip
    assert counterparty_name(account_id=BOB, code="customer_deposit", owner_id=ALICE, title=None, outside_party=None) == str(BOB)


@pytest.mark.parametrize("text", ["a\nb", "tab\there", "x" * 141, ""])
def test_words_are_one_short_line(text: str) -> None:
    from pydantic import ValidationError

    from contracts.ledger import one_line

    with pytest.raises(ValidationError):
        T(narration=text)
    cleaned = one_line(text)
    assert 1 <= len(cleaned) <= 140 and T(narration=cleaned).narration == cleaned
