"""Payment rules: references, formats, rails and windows, fees, limits, fraud, the status machine,
refunds, maker-checker and the ledger transfers a payment needs (banking-rules §4, §9)."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.ledger import NewTransfer, bank_account_id
from contracts.payment import FraudLevel, Payee, PaymentError, PaymentKind, PaymentStatus
from workers.payment.domain.orders import (
    BANK_TZ,
    TRANSITIONS,
    BankCalendar,
    Refusal,
    RefundTarget,
    Step,
    branch_withdrawal_fee,
    check_account_number,
    check_approver,
    check_different_accounts,
    check_ifsc,
    check_limits,
    check_rail_amount,
    check_refund,
    execute_at,
    is_full_refund,
    next_neft_batch,
    normalize_vpa,
    payment_fee,
    reference,
    rtgs_window,
    transition,
)
from workers.payment.domain.screening import Screening, screen
from workers.payment.domain.transfers import (
    Words,
    cash_transfers,
    hold_transfers,
    incoming_transfers,
    internal_transfers,
    post_transfers,
    refund_transfers,
    void_transfers,
)

K, S, E = PaymentKind, PaymentStatus, PaymentError
PID = uuid.UUID("0190f0f0-0000-7000-8000-000000000001")
PAYER, PAYEE = uuid.uuid4(), uuid.uuid4()


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=BANK_TZ)


def code(r: object) -> PaymentError | None:
    return r.code if isinstance(r, Refusal) else None


# --- reference and formats -------------------------------------------------------------------


def test_reference_is_prefix_bank_time_and_random_part() -> None:
    now = datetime(2024, 3, 5, 4, 30, 15, tzinfo=timezone.utc)  # 10:00:15 in Kolkata
    assert reference(K.neft, now, "AB12CD34") == "NEFT20240305100015AB12CD34"
    assert reference(K.internal, now, "ZZZZ9999").startswith("INT20240305100015")
    assert reference(K.upi, now, "A1B2C3D4").startswith("UPI")
    with pytest.raises(AssertionError):
        reference(K.rtgs, now, "abc12345")


def test_ifsc_reference_values() -> None:
    assert check_ifsc("ABCD0123456") is None
    assert code(check_ifsc("ABCD1123456")) == E.invalid_ifsc
    assert code(check_ifsc("abcd0123456")) == E.invalid_ifsc
    assert code(check_ifsc("ABCD012345")) == E.invalid_ifsc


@pytest.mark.parametrize("number,ok", [("123456789", True), ("1" * 18, True), ("12345678", False), ("1" * 19, False),
                                       ("12345678A", False)])
def test_external_account_number_is_9_to_18_digits(number: str, ok: bool) -> None:
    assert (check_account_number(number) is None) is ok
    if not ok:
        assert code(check_account_number(number)) == E.invalid_account_number


def test_vpa_is_lower_cased_and_checked_against_providers_and_reserved_names() -> None:
    assert normalize_vpa("Ravi.Kumar@OKSBI") == "ravi.kumar@oksbi"
    assert code(normalize_vpa("ravi@unknownbank")) == E.invalid_vpa
    assert code(normalize_vpa("admin@oksbi")) == E.invalid_vpa
    assert code(normalize_vpa("no-at-sign")) == E.invalid_vpa
    assert code(normalize_vpa("r@oksbi")) == E.invalid_vpa  # username needs 2+ characters
    assert normalize_vpa("shop@mybank", providers={"mybank"}, reserved=set()) == "shop@mybank"
    assert code(normalize_vpa("shop@mybank", providers={"mybank"}, reserved={"shop"})) == E.invalid_vpa


def test_payee_contract_takes_exactly_one_form() -> None:
    Payee(account_id=PAYEE)
    Payee(name="R", account_number="123456789", ifsc="ABCD0123456")
    Payee(vpa="r@oksbi")
    with pytest.raises(ValueError):
        Payee()
    with pytest.raises(ValueError):
        Payee(account_id=PAYEE, vpa="r@oksbi")
    with pytest.raises(ValueError):
        Payee(account_number="123456789")


# --- rail amounts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,amount,expected",
    [
        (K.rtgs, 19_999_999, E.rail_amount_below_minimum),
        (K.rtgs, 20_000_000, None),
        (K.rtgs, 100_000_000_000, None),
        (K.rtgs, 100_000_000_001, E.rail_amount_above_maximum),
        (K.neft, 1_000_000_000, None),
        (K.neft, 1_000_000_001, E.rail_amount_above_maximum),
        (K.upi, 2_500_000, None),
        (K.upi, 2_500_001, E.rail_amount_above_maximum),
        (K.imps, 50_000_000, None),
        (K.imps, 50_000_001, E.rail_amount_above_maximum),
        (K.internal, 10**15, None),
    ],
)
def test_rail_boundaries(kind: PaymentKind, amount: int, expected: PaymentError | None) -> None:
    assert code(check_rail_amount(kind, amount)) == expected


def test_upi_daily_cap_is_inclusive_per_payer() -> None:
    assert check_rail_amount(K.upi, 2_500_000, upi_used_today=7_500_000) is None
    r = check_rail_amount(K.upi, 1, upi_used_today=10_000_000)
    assert code(r) == E.limit_exceeded and r.details == {"limit": "upi_daily", "remaining": 0}


# --- windows ---------------------------------------------------------------------------------

HOLI = date(2024, 3, 25)  # a Monday
CAL = BankCalendar(holidays=frozenset({HOLI}))


@pytest.mark.parametrize(
    "accepted,batch",
    [
        (at(2024, 3, 20, 10, 19), at(2024, 3, 20, 10, 30)),  # exactly 11 minutes before
        (at(2024, 3, 20, 10, 20), at(2024, 3, 20, 10, 30)),  # exactly 10 minutes: joins
        (at(2024, 3, 20, 10, 21), at(2024, 3, 20, 13, 30)),
        (at(2024, 3, 20, 16, 25), at(2024, 3, 21, 0, 30)),  # last batch missed: next day's first
        (at(2024, 3, 23, 12, 0), at(2024, 3, 23, 13, 30)),  # Saturday: NEFT batches run daily
        (at(2024, 3, 24, 23, 59), at(2024, 3, 25, 0, 30)),  # into the holiday: still runs
    ],
)
def test_neft_joins_first_batch_at_least_10_minutes_after_acceptance(accepted: datetime, batch: datetime) -> None:
    assert next_neft_batch(accepted, CAL) == batch


def test_neft_batch_is_computed_in_bank_time_from_utc() -> None:
    accepted = datetime(2024, 3, 20, 4, 55, tzinfo=timezone.utc)  # 10:25 IST
    assert next_neft_batch(accepted) == at(2024, 3, 20, 13, 30)


@pytest.mark.parametrize(
    "accepted,window",
    [
        (at(2024, 3, 20, 8, 0), at(2024, 3, 20, 9, 0)),  # before opening: same day 09:00
        (at(2024, 3, 20, 9, 0), at(2024, 3, 20, 9, 0)),
        (at(2024, 3, 20, 15, 59, 59), at(2024, 3, 20, 15, 59, 59)),  # before cut-off: at once
        (at(2024, 3, 20, 16, 0), at(2024, 3, 21, 9, 0)),  # cut-off: next business day
        (at(2024, 3, 22, 17, 0), at(2024, 3, 26, 9, 0)),  # Friday evening → over weekend and Monday holiday
        (at(2024, 3, 23, 11, 0), at(2024, 3, 26, 9, 0)),  # Saturday
        (at(2024, 3, 25, 10, 0), at(2024, 3, 26, 9, 0)),  # on the holiday itself
    ],
)
def test_rtgs_window_with_cut_off_weekend_and_holiday(accepted: datetime, window: datetime) -> None:
    assert rtgs_window(accepted, CAL) == window


def test_without_the_holiday_rtgs_resumes_on_monday() -> None:
    assert rtgs_window(at(2024, 3, 22, 17, 0)) == at(2024, 3, 25, 9, 0)


def test_immediate_rails_go_at_acceptance_24x7() -> None:
    sunday_night = at(2024, 3, 24, 23, 0)
    for kind in (K.imps, K.upi, K.internal):
        assert execute_at(kind, sunday_night, CAL) == sunday_night
    assert execute_at(K.rtgs, sunday_night, CAL) == at(2024, 3, 26, 9, 0)
    assert execute_at(K.neft, sunday_night, CAL) == at(2024, 3, 25, 0, 30)


# --- fees ------------------------------------------------------------------------------------


def test_external_fee_reference_values() -> None:
    assert payment_fee(K.neft, 5_000_000) == 10_000
    assert payment_fee(K.imps, 1_234_567) == 2_469
    assert payment_fee(K.upi, 250) == 1  # 0.5 rounds half-up
    assert payment_fee(K.rtgs, 249) == 0  # 0.498 rounds down


@pytest.mark.parametrize("kind", [K.internal, K.cash_deposit, K.cash_withdrawal, K.refund])
def test_internal_kinds_are_free(kind: PaymentKind) -> None:
    assert payment_fee(kind, 5_000_000) == 0


@pytest.mark.parametrize("amount,fee", [(99_999, 0), (100_000, 2_500), (999_999, 2_500), (1_000_000, 3_000),
                                        (2_500_000, 7_500)])
def test_branch_withdrawal_fee_reference_values(amount: int, fee: int) -> None:
    assert branch_withdrawal_fee(amount) == fee


# --- limits ----------------------------------------------------------------------------------

SAVINGS = {"daily_limit": 10_000_000, "monthly_limit": 100_000_000}


def test_limits_are_inclusive() -> None:
    assert check_limits(4_000_000, used_daily=6_000_000, used_monthly=0, **SAVINGS) is None
    r = check_limits(4_000_001, used_daily=6_000_000, used_monthly=0, **SAVINGS)
    assert code(r) == E.limit_exceeded and r.details == {"limit": "daily", "remaining": 4_000_000}


def test_lowest_remaining_limit_wins() -> None:
    r = check_limits(3_000_000, used_daily=0, used_monthly=98_000_000, **SAVINGS)
    assert r.details == {"limit": "monthly", "remaining": 2_000_000}
    assert check_limits(2_000_000, used_daily=0, used_monthly=98_000_000, **SAVINGS) is None
    r = check_limits(600, used_daily=0, used_monthly=0, per_payment_limit=500, **SAVINGS)
    assert r.details == {"limit": "per_payment", "remaining": 500}


def test_overused_limit_reports_zero_remaining() -> None:
    r = check_limits(1, used_daily=11_000_000, used_monthly=0, **SAVINGS)
    assert r.details == {"limit": "daily", "remaining": 0}


# --- fraud and approval ----------------------------------------------------------------------

NOW = at(2024, 3, 20, 12, 0)


def test_fraud_reference_value_needs_approval() -> None:
    s = screen(6_000_000, now=NOW, payee_added_at=NOW - timedelta(hours=2))
    assert s == Screening(70, FraudLevel.high, ("large_amount", "new_payee"), approval_required=True)


def test_small_payment_to_an_old_payee_is_low_and_needs_no_approval() -> None:
    s = screen(100_000, now=NOW, payee_added_at=NOW - timedelta(hours=24))
    assert (s.score, s.level, s.approval_required) == (10, FraudLevel.low, False)


def test_approval_threshold_is_inclusive() -> None:
    assert screen(9_999_999, now=NOW).approval_required is False  # medium (40) below the amount
    s = screen(10_000_000, now=NOW)
    assert (s.score, s.level, s.approval_required) == (40, FraudLevel.medium, True)


def test_velocity_counts_more_than_five() -> None:
    assert screen(100, now=NOW, payments_last_hour=5).score == 10
    assert screen(100, now=NOW, payments_last_hour=6).score == 30


def test_critical_fails_at_once() -> None:
    r = screen(6_000_000, now=NOW, payee_added_at=NOW - timedelta(minutes=5), payments_last_hour=9)
    assert code(r) == E.fraud_suspected and r.details["score"] == 90


def test_maker_checker() -> None:
    assert check_approver("maker", "checker", ["payments:approve"]) is None
    assert code(check_approver("maker", "maker", ["payments:approve"])) == E.maker_cannot_approve
    assert code(check_approver("maker", "checker", ["accounts:read"])) == E.permission_denied


def test_payer_and_payee_must_differ() -> None:
    assert code(check_different_accounts(PAYER, PAYER)) == E.accounts_must_be_different
    assert check_different_accounts(PAYER, PAYEE) is None
    assert check_different_accounts(PAYER, None) is None


# --- status machine --------------------------------------------------------------------------

LEGAL = {
    (S.initiated, Step.hold): S.pending,
    (S.initiated, Step.submit): S.processing,
    (S.pending, Step.submit): S.processing,
    (S.initiated, Step.complete): S.completed,
    (S.pending, Step.complete): S.completed,
    (S.processing, Step.complete): S.completed,
    (S.initiated, Step.fail): S.failed,
    (S.pending, Step.fail): S.failed,
    (S.processing, Step.fail): S.failed,
    (S.initiated, Step.cancel): S.cancelled,
    (S.pending, Step.cancel): S.cancelled,
    (S.completed, Step.refund_in_full): S.refunded,
}


@pytest.mark.parametrize("status,step", list(itertools.product(S, Step)))
def test_every_transition_legal_or_refused(status: PaymentStatus, step: Step) -> None:
    result = transition(status, step)
    if (status, step) in LEGAL:
        assert result == LEGAL[(status, step)]
    else:
        assert code(result) == E.invalid_transition


def test_table_is_the_documented_machine() -> None:
    assert TRANSITIONS == LEGAL
    for terminal in (S.failed, S.cancelled, S.refunded):
        assert all(isinstance(transition(terminal, step), Refusal) for step in Step)


# --- refunds ---------------------------------------------------------------------------------


def original(kind: PaymentKind = K.internal, status: PaymentStatus = S.completed, refunded: int = 0) -> RefundTarget:
    return RefundTarget(kind, status, 1_000_000, "INR", refunded, NOW - timedelta(hours=1))


def test_partial_refunds_up_to_the_amount() -> None:
    assert check_refund(original(), 400_000, "INR", NOW) is None
    assert not is_full_refund(original(), 400_000)
    assert check_refund(original(refunded=400_000), 600_000, "INR", NOW) is None
    assert is_full_refund(original(refunded=400_000), 600_000)
    r = check_refund(original(refunded=400_000), 600_001, "INR", NOW)
    assert code(r) == E.refund_exceeds_amount and r.details == {"remaining": 600_000}


@pytest.mark.parametrize("status", [s for s in S if s != S.completed])
def test_only_completed_payments_are_refunded(status: PaymentStatus) -> None:
    assert code(check_refund(original(status=status), 1, "INR", NOW)) == E.invalid_transition


def test_refund_currency_must_match() -> None:
    assert code(check_refund(original(), 1, "USD", NOW)) == E.currency_mismatch


@pytest.mark.parametrize("kind", [K.refund, K.cash_deposit, K.cash_withdrawal])
def test_cash_and_refunds_are_not_refundable(kind: PaymentKind) -> None:
    assert code(check_refund(original(kind), 1, "INR", NOW)) == E.not_refundable


def test_upi_refund_only_within_24_hours_of_completion() -> None:
    done = original(K.upi)
    assert check_refund(done, 1, "INR", done.completed_at + timedelta(hours=24)) is None
    late = done.completed_at + timedelta(hours=24, seconds=1)
    assert code(check_refund(done, 1, "INR", late)) == E.refund_window_closed
    assert check_refund(original(K.neft), 1, "INR", late + timedelta(days=30)) is None


# --- ledger transfers ------------------------------------------------------------------------

WORDS = Words("INT1", "Transfer")
FEE_INCOME = bank_account_id("fee_income", "INR")
VAULT = bank_account_id("cash_vault", "INR")
CLEARING_NEFT = bank_account_id("clearing_neft", "INR")


def test_internal_without_fee_is_one_single_phase_transfer() -> None:
    [t] = internal_transfers(PID, WORDS, "INR", payer=PAYER, payee=PAYEE, amount=500)
    assert (t.debit_account_id, t.credit_account_id, t.amount, t.code) == (PAYER, PAYEE, 500, "internal_transfer")
    assert not t.flags.linked and not t.flags.pending


def test_fee_travels_in_a_linked_chain_with_the_principal() -> None:
    principal, fee = internal_transfers(PID, WORDS, "INR", payer=PAYER, payee=PAYEE, amount=500, fee=25)
    assert principal.flags.linked and not fee.flags.linked  # chain closed by the last
    assert (fee.debit_account_id, fee.credit_account_id, fee.amount, fee.code) == (PAYER, FEE_INCOME, 25, "fee")


def test_transfer_ids_are_deterministic_per_payment() -> None:
    a = internal_transfers(PID, WORDS, "INR", payer=PAYER, payee=PAYEE, amount=500, fee=25)
    b = internal_transfers(PID, WORDS, "INR", payer=PAYER, payee=PAYEE, amount=500, fee=25)
    assert [t.id for t in a] == [t.id for t in b] and len({t.id for t in a}) == 2


def test_external_holds_to_clearing_then_posts_or_voids() -> None:
    holds = hold_transfers(PID, WORDS, "INR", kind=K.neft, payer=PAYER, payee=None, amount=5_000_000,
                           fee=10_000, timeout_s=86_400)
    assert [(t.credit_account_id, t.amount, t.flags.pending, t.flags.linked) for t in holds] == [
        (CLEARING_NEFT, 5_000_000, True, True), (FEE_INCOME, 10_000, True, False)]
    assert all(t.timeout_s == 86_400 and t.code in ("payment_out", "fee") for t in holds)
    posts = post_transfers(holds)
    assert [(p.pending_id, p.flags.post_pending, p.flags.linked) for p in posts] == [
        (holds[0].id, True, True), (holds[1].id, True, False)]
    voids = void_transfers(holds)
    assert [(v.pending_id, v.flags.void_pending, v.amount) for v in voids] == [(holds[0].id, True, 0), (holds[1].id, True, 0)]
    assert len({t.id for t in holds + posts + voids}) == 6


def test_internal_hold_waits_on_the_payee() -> None:
    [h] = hold_transfers(PID, WORDS, "INR", kind=K.internal, payer=PAYER, payee=PAYEE, amount=10_000_000, fee=0)
    assert (h.credit_account_id, h.flags.pending) == (PAYEE, True)


def test_cash_incoming_and_refund_legs() -> None:
    [d] = cash_transfers(PID, WORDS, "INR", kind=K.cash_deposit, account=PAYER, amount=100)
    assert (d.debit_account_id, d.credit_account_id, d.code) == (VAULT, PAYER, "deposit")
    w, f = cash_transfers(PID, WORDS, "INR", kind=K.cash_withdrawal, account=PAYER, amount=1_000_000, fee=3_000)
    assert (w.debit_account_id, w.credit_account_id, w.flags.linked) == (PAYER, VAULT, True)
    assert (f.credit_account_id, f.amount) == (FEE_INCOME, 3_000)
    [i] = incoming_transfers(PID, WORDS, "INR", rail=K.neft, account=PAYEE, amount=700)
    assert (i.debit_account_id, i.credit_account_id, i.code) == (CLEARING_NEFT, PAYEE, "payment_in")
    [r] = refund_transfers(PID, WORDS, "INR", original_kind=K.internal, original_payer=PAYER,
                           original_payee=PAYEE, amount=50)
    assert (r.debit_account_id, r.credit_account_id, r.code) == (PAYEE, PAYER, "refund")
    [r] = refund_transfers(PID, WORDS, "INR", original_kind=K.neft, original_payer=PAYER, original_payee=None, amount=50)
    assert r.debit_account_id == CLEARING_NEFT


# --- properties ------------------------------------------------------------------------------


def net(transfers: list[NewTransfer]) -> Counter[uuid.UUID]:
    moves: Counter[uuid.UUID] = Counter()
    for t in transfers:
        assert t.amount > 0 and t.debit_account_id != t.credit_account_id
        moves[t.debit_account_id] -= t.amount
        moves[t.credit_account_id] += t.amount
    return moves


@given(st.sampled_from(list(K)), st.integers(min_value=1, max_value=100_000_000_000))
def test_fee_is_never_negative_nor_more_than_the_amount_and_transfers_balance(kind: PaymentKind, amount: int) -> None:
    fee = payment_fee(kind, amount)
    assert 0 <= fee <= amount
    if kind in (K.cash_deposit, K.cash_withdrawal):
        transfers = cash_transfers(PID, WORDS, "INR", kind=kind, account=PAYER, amount=amount)
    elif kind in (K.internal, K.refund, K.reversal, K.incoming):
        transfers = internal_transfers(PID, WORDS, "INR", payer=PAYER, payee=PAYEE, amount=amount, fee=fee)
    else:
        transfers = hold_transfers(PID, WORDS, "INR", kind=kind, payer=PAYER, payee=None, amount=amount, fee=fee)
    moves = net(transfers)
    assert sum(moves.values()) == 0
    if kind != K.cash_deposit:
        assert moves[PAYER] == -(amount + fee)
    assert [t.flags.linked for t in transfers] == [True] * (len(transfers) - 1) + [False]


# --- words: what a payment's transfers say on statements --------------------------------------------


def _view(kind: PaymentKind, payee: Payee | None, description: str | None = None, **kw: object) -> Any:
    from contracts.payment import Channel, PaymentView

    now = datetime(2026, 12, 7, 10, tzinfo=timezone.utc)
    fields = dict(payment_id=PID, reference="NEFT20261207153000ABCD1234", kind=kind, channel=Channel.api,
                  status=PaymentStatus.initiated, payer_account_id=PAYER, payee=payee, amount=500_000, fee=250,
                  currency="INR", fraud_score=0, fraud_level=FraudLevel.low, refunded_amount=0, maker="m",
                  description=description, created_at=now, updated_at=now)  # fmt: skip
    return PaymentView(**{**fields, **kw})  # type: ignore[arg-type]


def test_a_rail_payment_names_its_beneficiary_and_says_what_it_is_for() -> None:
    from workers.payment.domain.transfers import words_of

    payee = Payee(name="Asha Rao", account_number="50100012345678", ifsc="HDFC0001234")
    words = words_of(_view(K.neft, payee, "rent\nDecember"))
    assert words == Words("NEFT20261207153000ABCD1234", "NEFT to Asha Rao: rent December",
                          "Asha Rao · HDFC0001234 · 50100012345678")  # fmt: skip
    principal, fee = hold_transfers(PID, words, "INR", kind=K.neft, payer=PAYER, payee=None, amount=500_000, fee=250)
    assert (principal.narration, principal.counterparty, principal.reference) == (words.narration, words.counterparty, words.reference)
    # The fee's other side is the bank's fee income, which the ledger names: no outside party.
    assert (fee.narration, fee.counterparty) == ("Fee: NEFT to Asha Rao: rent December", None)


def test_inside_the_bank_the_ledger_names_the_account() -> None:
    from workers.payment.domain.transfers import incoming_words, refund_words, words_of

    internal = _view(K.internal, Payee(account_id=PAYEE), "dinner")
    assert words_of(internal) == Words(internal.reference, "Transfer: dinner", None)
    assert words_of(_view(K.cash_withdrawal, None)).narration == "Cash withdrawal"
    incoming = incoming_words("INC1", K.imps, payer_name="Ravi Kumar", payer_ifsc="SBIN0000001", payer_account=None,
                              description="invoice 42")  # fmt: skip
    assert incoming == Words("INC1", "IMPS from Ravi Kumar: invoice 42", "Ravi Kumar · SBIN0000001")
    refund = _view(K.refund, Payee(account_id=PAYER), "duplicate", reference="RFD1")
    original = _view(K.neft, Payee(name="Asha Rao", vpa="asha@bank"))
    assert refund_words(refund, original) == Words("RFD1", "Refund of NEFT20261207153000ABCD1234: duplicate", "Asha Rao · asha@bank")


def test_atm_withdrawals_beyond_the_free_ones_a_month_pay_the_products_fee() -> None:
    from workers.payment.domain.orders import ATM_MONTH, atm_period, atm_withdrawal_fee

    assert [atm_withdrawal_fee(5, 2_000, n) for n in range(7)] == [0, 0, 0, 0, 0, 2_000, 2_000]  # savings: 5, then 20.00
    assert atm_withdrawal_fee(None, None, 40) == 0  # terms not known: free
    assert atm_withdrawal_fee(0, 1_000, 0) == 1_000 and atm_withdrawal_fee(3, 0, 9) == 0
    # The month is the bank's: 31 January 23:00 UTC is 1 February in Kolkata.
    assert atm_period(datetime(2027, 1, 31, 23, 0, tzinfo=timezone.utc)) == {ATM_MONTH: date(2027, 2, 1)}
