"""Payment order rules (banking-rules §4): references, formats, rails and their windows, fees,
limits, maker-checker, the status machine, refunds, and which limits an order uses. The fraud score
and the watch list are in `screening.py`; the ledger transfers a payment asks for in `transfers.py`.

Pure: no I/O, no clock, no random. `now` is an aware datetime; random characters and payment ids
come in as arguments. Refusals are returned as `Refusal` values; a broken precondition the caller
controls (a naive datetime, a negative amount) is a bug and fails an assertion.

Decisions the rules leave open:
- Cash, refund and incoming-credit references use the `INT` prefix (they never leave the bank on a rail).
- Status machine: immediate rails (IMPS, UPI) hold and send in one step (`initiated → processing`);
  a held internal payment posts on approval (`pending → completed`), it has no partner to wait for.
- RTGS cut-off is exclusive: an order at 16:00:00 waits for the next business day 09:00.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from contracts.day import BANK_TIME_ZONE
from contracts.payment import EXTERNAL_KINDS, Channel, PaymentError, PaymentKind, PaymentStatus

K, S, E = PaymentKind, PaymentStatus, PaymentError

BANK_TZ = BANK_TIME_ZONE
APPROVE_PERMISSION = "payments:approve"  # contracts.identity Permission.payments_approve


@dataclass(frozen=True, slots=True)
class Refusal:
    code: PaymentError
    message: str
    details: dict[str, Any] | None = None


# --- reference -------------------------------------------------------------------------------

REFERENCE_PREFIX: dict[PaymentKind, str] = {
    K.internal: "INT", K.cash_deposit: "INT", K.cash_withdrawal: "INT", K.refund: "INT", K.reversal: "INT",
    K.incoming: "INT",
    K.neft: "NEFT", K.rtgs: "RTGS", K.imps: "IMPS", K.upi: "UPI",
}  # fmt: skip
_RANDOM8 = re.compile(r"^[A-Z0-9]{8}$")


def reference(kind: PaymentKind, now: datetime, random8: str, tz: ZoneInfo = BANK_TZ) -> str:
    """Prefix + yyyymmddHHMMSS in bank time + 8 random uppercase alphanumerics."""
    assert now.tzinfo is not None, "now must be aware"
    assert _RANDOM8.match(random8), "random8 must be 8 uppercase alphanumerics"
    return f"{REFERENCE_PREFIX[kind]}{now.astimezone(tz):%Y%m%d%H%M%S}{random8}"


# --- formats ---------------------------------------------------------------------------------

IFSC_RE = re.compile(r"^[A-Z]{4}0[A-Z0-9]{6}$")
ACCOUNT_NUMBER_RE = re.compile(r"^[0-9]{9,18}$")
VPA_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,255}@[a-z][a-z0-9]{1,63}$")
DEFAULT_VPA_PROVIDERS = frozenset({"okaxis", "okhdfcbank", "okicici", "oksbi", "ybl", "paytm", "upi", "cbs"})
DEFAULT_RESERVED_VPA_NAMES = frozenset({"admin", "root", "support", "test", "bank", "system", "null"})


def check_ifsc(ifsc: str) -> Refusal | None:
    if IFSC_RE.match(ifsc) is None:
        return Refusal(E.invalid_ifsc, "IFSC is 4 letters, 0, then 6 letters or digits")
    return None


def check_account_number(number: str) -> Refusal | None:
    if ACCOUNT_NUMBER_RE.match(number) is None:
        return Refusal(E.invalid_account_number, "an external account number is 9 to 18 digits")
    return None


def normalize_vpa(
    vpa: str,
    providers: Collection[str] = DEFAULT_VPA_PROVIDERS,
    reserved: Collection[str] = DEFAULT_RESERVED_VPA_NAMES,
) -> str | Refusal:
    """The VPA lower-cased, or a refusal: bad shape, unknown provider handle, reserved username."""
    v = vpa.strip().lower()
    if VPA_RE.match(v) is None:
        return Refusal(E.invalid_vpa, "a VPA is name@handle in letters, digits, '.', '_' and '-'")
    name, handle = v.split("@")
    if handle not in providers:
        return Refusal(E.invalid_vpa, f"unknown UPI handle @{handle}")
    if name in reserved:
        return Refusal(E.invalid_vpa, f"{name!r} is a reserved username")
    return v


# --- calendar and rail windows ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BankCalendar:
    """Business days are Monday–Friday minus holidays, in the bank time zone (§0)."""

    holidays: frozenset[date] = frozenset()
    tz: ZoneInfo = BANK_TZ

    def is_business_day(self, d: date) -> bool:
        return d.weekday() < 5 and d not in self.holidays

    def next_business_day(self, d: date) -> date:
        """The first business day strictly after `d`."""
        d += timedelta(days=1)
        while not self.is_business_day(d):
            d += timedelta(days=1)
        return d


NEFT_BATCHES = (time(0, 30), time(10, 30), time(13, 30), time(16, 30))
NEFT_MIN_WAIT = timedelta(minutes=10)
RTGS_OPEN, RTGS_CUTOFF = time(9, 0), time(16, 0)


def next_neft_batch(accepted_at: datetime, calendar: BankCalendar = BankCalendar()) -> datetime:
    """The first daily batch ≥ 10 minutes after acceptance (batches run every day, §4)."""
    assert accepted_at.tzinfo is not None, "accepted_at must be aware"
    earliest = accepted_at.astimezone(calendar.tz) + NEFT_MIN_WAIT
    day = earliest.date()
    while True:
        for t in NEFT_BATCHES:
            batch = datetime.combine(day, t, calendar.tz)
            if batch >= earliest:
                return batch
        day += timedelta(days=1)


def rtgs_window(accepted_at: datetime, calendar: BankCalendar = BankCalendar()) -> datetime:
    """`accepted_at` itself within business hours before the cut-off, else the next opening 09:00."""
    assert accepted_at.tzinfo is not None, "accepted_at must be aware"
    local = accepted_at.astimezone(calendar.tz)
    day = local.date()
    if calendar.is_business_day(day):
        if local.time() < RTGS_OPEN:
            return datetime.combine(day, RTGS_OPEN, calendar.tz)
        if local.time() < RTGS_CUTOFF:
            return local
    return datetime.combine(calendar.next_business_day(day), RTGS_OPEN, calendar.tz)


def execute_at(kind: PaymentKind, accepted_at: datetime, calendar: BankCalendar = BankCalendar()) -> datetime:
    """When the payment may go out: NEFT at its batch, RTGS in its window, everything else at once."""
    if kind == K.neft:
        return next_neft_batch(accepted_at, calendar)
    if kind == K.rtgs:
        return rtgs_window(accepted_at, calendar)
    return accepted_at


# --- rail amounts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RailLimits:
    """Per-payment minimum and maximum, minor units at exponent 2 (§4)."""

    minimum: int = 1
    maximum: int | None = None


RAIL_LIMITS: dict[PaymentKind, RailLimits] = {
    K.neft: RailLimits(maximum=1_000_000_000),
    K.rtgs: RailLimits(minimum=20_000_000, maximum=100_000_000_000),
    K.imps: RailLimits(maximum=50_000_000),
    K.upi: RailLimits(maximum=2_500_000),
}
UPI_DAILY_CAP = 10_000_000  # per payer account, a bank day


def check_rail_amount(
    kind: PaymentKind,
    amount: int,
    *,
    upi_used_today: int = 0,
    limits: dict[PaymentKind, RailLimits] = RAIL_LIMITS,
    upi_daily_cap: int = UPI_DAILY_CAP,
) -> Refusal | None:
    """The rail's per-payment bounds (inclusive) and UPI's daily cap; other kinds have none."""
    assert amount > 0 and upi_used_today >= 0
    rail = limits.get(kind)
    if rail is None:
        return None
    if amount < rail.minimum:
        return Refusal(E.rail_amount_below_minimum, f"{kind} needs at least {rail.minimum}", {"minimum": rail.minimum})
    if rail.maximum is not None and amount > rail.maximum:
        return Refusal(E.rail_amount_above_maximum, f"{kind} allows at most {rail.maximum}", {"maximum": rail.maximum})
    if kind == K.upi and upi_used_today + amount > upi_daily_cap:
        remaining = max(upi_daily_cap - upi_used_today, 0)
        return Refusal(E.limit_exceeded, "UPI daily cap reached", {"limit": "upi_daily", "remaining": remaining})
    return None


# --- fees ------------------------------------------------------------------------------------

EXTERNAL_FEE_BPS = 20  # 0.2 %


def _bps_of(amount: int, bps: int) -> int:
    return int((Decimal(amount) * bps / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def payment_fee(kind: PaymentKind, amount: int, fee_bps: int = EXTERNAL_FEE_BPS) -> int:
    """0.2 % on external rails, half-up to the minor unit; internal, cash and refunds free."""
    assert amount >= 0
    return _bps_of(amount, fee_bps) if kind in EXTERNAL_KINDS else 0


def atm_withdrawal_fee(free_a_month: int | None, fee: int | None, withdrawn_this_month: int) -> int:
    """§2: the product's free ATM withdrawals a calendar month, then its fee each (savings 5, then
    20.00; current 10, then 10.00). Terms not known (an account learnt before they were sent): free."""
    assert withdrawn_this_month >= 0
    if free_a_month is None or not fee:
        return 0
    return fee if withdrawn_this_month >= free_a_month else 0


def branch_withdrawal_fee(amount: int) -> int:
    """§2 branch cash withdrawal: < 1,000.00 free; < 10,000.00 flat 25.00; else 0.3 % (exponent 2)."""
    assert amount >= 0
    if amount < 100_000:
        return 0
    if amount < 1_000_000:
        return 2_500
    return _bps_of(amount, 30)


# --- limits ----------------------------------------------------------------------------------


def check_limits(
    amount: int,
    *,
    used_daily: int,
    used_monthly: int,
    daily_limit: int,
    monthly_limit: int,
    per_payment_limit: int | None = None,
) -> Refusal | None:
    """Inclusive (used + amount ≤ limit); when several are exceeded the lowest remaining is named."""
    assert amount > 0 and used_daily >= 0 and used_monthly >= 0
    remaining = {"daily": daily_limit - used_daily, "monthly": monthly_limit - used_monthly}
    if per_payment_limit is not None:
        remaining["per_payment"] = per_payment_limit
    name, left = min(remaining.items(), key=lambda kv: kv[1])
    if amount > left:
        return Refusal(E.limit_exceeded, f"{name} limit: {max(left, 0)} left", {"limit": name, "remaining": max(left, 0)})
    return None


# --- maker-checker ---------------------------------------------------------------------------


def check_approver(maker: str, approver: str, permissions: Iterable[str]) -> Refusal | None:
    """Maker-checker: the approver holds the approval permission and is not the maker."""
    if APPROVE_PERMISSION not in set(permissions):
        return Refusal(E.permission_denied, f"approving needs {APPROVE_PERMISSION}")
    if approver == maker:
        return Refusal(E.maker_cannot_approve, "the maker of a payment cannot approve it")
    return None


def check_different_accounts(payer_account_id: UUID | None, payee_account_id: UUID | None) -> Refusal | None:
    if payer_account_id is not None and payer_account_id == payee_account_id:
        return Refusal(E.accounts_must_be_different, "payer and payee are the same account")
    return None


# --- status machine --------------------------------------------------------------------------


class Step(StrEnum):
    """What happens to a payment; `transition` says which status it leads to."""

    hold = "hold"  # funds held, waiting for approval or a rail window
    submit = "submit"  # sent to the clearing partner
    complete = "complete"
    fail = "fail"  # includes a checker's rejection, approval expiry and the partner's rejection
    cancel = "cancel"
    refund_in_full = "refund_in_full"


TRANSITIONS: dict[tuple[PaymentStatus, Step], PaymentStatus] = {
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


def transition(status: PaymentStatus, step: Step) -> PaymentStatus | Refusal:
    new = TRANSITIONS.get((status, step))
    if new is None:
        return Refusal(E.invalid_transition, f"cannot {step} a payment that is {status}")
    return new


# --- refunds ---------------------------------------------------------------------------------

UPI_REFUND_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RefundTarget:
    """The facts of the original payment a refund needs."""

    kind: PaymentKind
    status: PaymentStatus
    amount: int
    currency: str
    refunded_amount: int
    completed_at: datetime | None


def check_refund(original: RefundTarget, amount: int, currency: str, now: datetime) -> Refusal | None:
    """Only completed payments, cumulative ≤ the amount, UPI within 24 h of completion."""
    assert amount > 0
    if original.kind in (K.refund, K.cash_deposit, K.cash_withdrawal):
        return Refusal(E.not_refundable, f"a {original.kind} payment cannot be refunded")
    if original.status != S.completed:
        return Refusal(E.invalid_transition, f"only a completed payment can be refunded, not {original.status}")
    if currency != original.currency:
        return Refusal(E.currency_mismatch, f"the payment is in {original.currency}")
    left = original.amount - original.refunded_amount
    if amount > left:
        return Refusal(E.refund_exceeds_amount, f"at most {left} is left to refund", {"remaining": left})
    if original.kind == K.upi:
        assert original.completed_at is not None, "a completed payment has its completion time"
        if now - original.completed_at > UPI_REFUND_WINDOW:
            return Refusal(E.refund_window_closed, "UPI payments are refundable within 24 h of completion")
    return None


def is_full_refund(original: RefundTarget, amount: int) -> bool:
    """True when this refund brings the refunded total to the whole amount (the original → refunded)."""
    return original.refunded_amount + amount == original.amount


# --- admission: the order's shape, and which limits it uses ----------------------------------


def bank_date(now: datetime, tz: ZoneInfo = BANK_TZ) -> date:
    assert now.tzinfo is not None, "now must be aware"
    return now.astimezone(tz).date()


DEBIT_KINDS = frozenset({K.internal, K.cash_withdrawal}) | EXTERNAL_KINDS


def limit_periods(kind: PaymentKind, now: datetime, tz: ZoneInfo = BANK_TZ) -> dict[str, date]:
    """The usage periods a payment of this kind charges (§0: days and months in bank time).

    Every customer debit counts against the month; payments out against the day, cash
    withdrawals against the cash day instead; UPI also against its own daily cap.
    Deposits, refunds, reversals and incoming credits charge nothing.
    """
    if kind not in DEBIT_KINDS:
        return {}
    today = bank_date(now, tz)
    periods = {"month": today.replace(day=1)}
    periods["cash_day" if kind == K.cash_withdrawal else "day"] = today
    if kind == K.upi:
        periods["upi_day"] = today
    return periods


ATM_MONTH = "atm_month"  # a usage period that counts ATM withdrawals, one each, not money


def atm_period(now: datetime, tz: ZoneInfo = BANK_TZ) -> dict[str, date]:
    """The calendar month (bank time) an ATM withdrawal counts in."""
    return {ATM_MONTH: bank_date(now, tz).replace(day=1)}


def check_order_shape(kind: PaymentKind, payer_account_id: UUID | None, payee: Any) -> Refusal | None:
    """Who pays and who is paid must fit the kind: cash has one side, internal two CBS accounts,
    NEFT/RTGS/IMPS an external account with IFSC, UPI a VPA."""
    has_payer, has_payee = payer_account_id is not None, payee is not None
    internal_payee = has_payee and payee.account_id is not None
    if kind == K.cash_deposit:
        ok, need = (not has_payer and internal_payee), "a cash deposit names the credited account as payee.account_id, no payer"
    elif kind == K.cash_withdrawal:
        ok, need = (has_payer and not has_payee), "a cash withdrawal names the payer account and no payee"
    elif kind == K.internal:
        ok, need = (has_payer and internal_payee), "an internal transfer names the payer account and payee.account_id"
    elif kind == K.upi:
        ok, need = (has_payer and has_payee and payee.vpa is not None), "a UPI payment names the payer account and payee.vpa"
    elif kind in EXTERNAL_KINDS:
        ok, need = (has_payer and has_payee and payee.account_number is not None), (
            f"a {kind} payment names the payer account and payee name, account_number and ifsc"
        )
    else:
        ok, need = False, f"{kind} payments are not placed with payment.initiate_payment"
    return None if ok else Refusal(E.invalid_payee, need)


def normalize_payee(payee: Any) -> Any | Refusal:
    """The payee with a lower-cased VPA, or the refusal for a malformed IFSC, account number or VPA."""
    if payee is None or payee.account_id is not None:
        return payee
    if payee.vpa is not None:
        vpa = normalize_vpa(payee.vpa)
        return vpa if isinstance(vpa, Refusal) else payee.model_copy(update={"vpa": vpa})
    return check_ifsc(payee.ifsc) or check_account_number(payee.account_number) or payee


# --- step-up (banking-rules §2) ----------------------------------------------------------------

STEP_UP_THRESHOLD = 1_000_000  # 10,000.00 at exponent 2; CBS_STEP_UP_THRESHOLD_MINOR overrides it
# The channels where a customer places orders themselves (a partner's app relays them as such).
CUSTOMER_CHANNELS = frozenset({Channel.mobile, Channel.internet_banking})
# A customer's refund of what they received is a debit of their account too.
STEP_UP_KINDS = DEBIT_KINDS | {K.refund}


def step_up_refusal(kind: PaymentKind, channel: Channel, amount: int, *, by_customer: bool, by_partner: bool,
                    verified: bool, threshold: int) -> Refusal | None:  # fmt: skip
    """A customer-channel debit of at least `threshold` needs a verified one-time password.

    Customer-channel: placed by a customer (through the edge), whatever channel their body names
    (a body may lie: `branch` would otherwise dodge the rule); or relayed by a partner from a
    customer channel (mobile, internet banking). Staff and the bank's own services are the back
    office: their orders never need one. `verified` is what the caller may be believed to have
    verified (the edge, after identity checked the code), never a body's claim."""
    if kind not in STEP_UP_KINDS or amount < threshold or verified:
        return None
    if not (by_customer or (by_partner and channel in CUSTOMER_CHANNELS)):
        return None
    return Refusal(PaymentError.verification_required,
                   "a payment of this size from a customer channel needs a one-time password: POST /v1/otp, then "
                   "place it again with the X-OTP-Id and X-OTP-Code headers", {"threshold": threshold})  # fmt: skip
