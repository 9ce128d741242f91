"""Messages of the payment worker: payment orders, approvals, refunds, payees, standing orders,
and the clearing partner's answers (banking-rules §4).

Every command answers a `Reply`; the docstring of each command names the model its `result` holds.
Money is integer minor units of the configured currency (banking-rules §0). Formats (IFSC, VPA,
external account number) are checked by the worker, not by these models, so a malformed one is
refused with its own stable code (`invalid_ifsc`, …) rather than `invalid_message`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self
from uuid import UUID

from pydantic import Field, model_validator

from contracts.common import MAX_AMOUNT, Command, Contract, Event, Page, amount_field, currency_field, cursor_field, page_size


class PaymentKind(StrEnum):
    cash_deposit = "cash_deposit"
    cash_withdrawal = "cash_withdrawal"
    internal = "internal"
    neft = "neft"
    rtgs = "rtgs"
    imps = "imps"
    upi = "upi"
    refund = "refund"
    # Staff correction of a completed payment: principal and fee back to the payer, in full.
    reversal = "reversal"
    # Money arriving from the clearing partner (`payment.incoming_credit`).
    incoming = "incoming"


# The rails that leave the bank through the clearing partner.
EXTERNAL_KINDS = frozenset({PaymentKind.neft, PaymentKind.rtgs, PaymentKind.imps, PaymentKind.upi})


class Channel(StrEnum):
    mobile = "mobile"
    internet_banking = "internet_banking"
    atm = "atm"
    branch = "branch"
    api = "api"
    # Payments the bank makes on its own schedule (standing orders).
    scheduler = "scheduler"


class PaymentStatus(StrEnum):
    initiated = "initiated"
    # Funds held: awaiting approval or a rail window.
    pending = "pending"
    # Sent to the clearing partner.
    processing = "processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    # Refunded in full; partial refunds leave it `completed` with `refunded_amount` > 0.
    refunded = "refunded"


class FraudLevel(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class StandingOrderStatus(StrEnum):
    active = "active"
    # After 3 consecutive failures (banking-rules §4); only staff can act on it then.
    suspended = "suspended"
    cancelled = "cancelled"
    # Past its end date.
    ended = "ended"


class Frequency(StrEnum):
    # A scheduled payment: one occurrence, on the start date.
    once = "once"
    weekly = "weekly"
    monthly = "monthly"
    quarterly = "quarterly"


class PaymentError(StrEnum):
    """Stable refusal codes of the payment worker (the reply's `error.code`)."""

    payment_not_found = "payment_not_found"
    # The same payment_id was already used for a different order.
    payment_exists = "payment_exists"
    account_not_found = "account_not_found"
    payee_not_found = "payee_not_found"
    standing_order_not_found = "standing_order_not_found"
    limit_exceeded = "limit_exceeded"
    insufficient_funds = "insufficient_funds"
    invalid_ifsc = "invalid_ifsc"
    invalid_vpa = "invalid_vpa"
    invalid_account_number = "invalid_account_number"
    # The payee form does not fit the kind (e.g. a VPA on NEFT, an account number on UPI).
    invalid_payee = "invalid_payee"
    rail_amount_below_minimum = "rail_amount_below_minimum"
    rail_amount_above_maximum = "rail_amount_above_maximum"
    accounts_must_be_different = "accounts_must_be_different"
    currency_mismatch = "currency_mismatch"
    fraud_suspected = "fraud_suspected"
    approval_required = "approval_required"
    approval_expired = "approval_expired"
    maker_cannot_approve = "maker_cannot_approve"
    permission_denied = "permission_denied"
    invalid_transition = "invalid_transition"
    refund_exceeds_amount = "refund_exceeds_amount"
    refund_window_closed = "refund_window_closed"
    not_refundable = "not_refundable"
    payee_cooling_off = "payee_cooling_off"
    verification_required = "verification_required"
    # The ledger refused a transfer the payment needed (details carry its result code).
    ledger_refused = "ledger_refused"
    # An incoming credit whose partner_reference was seen with different content.
    partner_reference_conflict = "partner_reference_conflict"
    # The payee, standing order or payment id exists with different content.
    payee_exists = "payee_exists"
    standing_order_exists = "standing_order_exists"
    # The account is known but cannot pay or be paid now (frozen, closed, still opening).
    account_not_active = "account_not_active"
    account_dormant = "account_dormant"  # a customer debit from a dormant account
    deposit_account = "deposit_account"  # a fixed or recurring deposit takes no payments in or out
    # A payment that only staff may place (cash, reversal) or a customer's order for another's account.
    forbidden = "forbidden"
    not_owner = "not_owner"
    invalid_schedule = "invalid_schedule"


def _actor_field() -> Any:
    return Field(min_length=1, max_length=200, description="who asked (staff, customer or system id)")


def _reason_field() -> Any:
    return Field(min_length=1, max_length=500, description="why, recorded with the change")


def _partner_reference_field() -> Any:
    return Field(min_length=1, max_length=100, description="the clearing partner's own reference, unique per partner")


class Payee(Contract):
    """Whom a payment goes to: exactly one of an internal account, an external account, or a VPA."""

    account_id: UUID | None = Field(default=None, description="a CBS account (internal, cash, refund)")
    name: str | None = Field(default=None, min_length=1, max_length=140, description="the beneficiary's name")
    account_number: str | None = Field(
        default=None, min_length=1, max_length=40, description="external account number, 9–18 digits"
    )
    ifsc: str | None = Field(default=None, min_length=1, max_length=20, description="bank branch code, e.g. ABCD0123456")
    vpa: str | None = Field(default=None, min_length=1, max_length=320, description="UPI address, e.g. name@bank")

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        forms = [self.account_id is not None, self.account_number is not None or self.ifsc is not None, self.vpa is not None]
        if sum(forms) != 1:
            raise ValueError("give exactly one of account_id, account_number + ifsc, or vpa")
        if forms[1] and (self.account_number is None or self.ifsc is None or self.name is None):
            raise ValueError("an external account needs name, account_number and ifsc")
        return self


# --- results ---------------------------------------------------------------------------------


class PaymentView(Contract):
    payment_id: UUID = Field(description="payment id chosen by the caller")
    reference: str = Field(description="bank reference: rail prefix + yyyymmddHHMMSS (bank time) + 8 characters")
    kind: PaymentKind = Field(description="cash, internal, a rail, or refund")
    channel: Channel = Field(description="where the order was placed")
    status: PaymentStatus = Field(description="status in the payment state machine")
    payer_account_id: UUID | None = Field(default=None, description="account debited; null for cash deposits and incoming credits")
    payee: Payee | None = Field(default=None, description="whom it goes to; null for cash withdrawals")
    amount: int = amount_field("principal, minor units")
    fee: int = amount_field("fee charged with it, minor units")
    currency: str = currency_field()
    fraud_score: int = Field(ge=0, le=100, description="rule-based score, 0–100")
    fraud_level: FraudLevel = Field(description="low, medium, high or critical")
    refund_of: UUID | None = Field(default=None, description="the payment this one refunds")
    refunded_amount: int = amount_field("sum of refunds of this payment so far, minor units")
    maker: str = Field(description="who placed the order")
    approver: str | None = Field(default=None, description="who approved it, when approval was needed")
    partner_reference: str | None = Field(default=None, description="the clearing partner's reference, once known")
    failure_code: str | None = Field(default=None, description="why it failed or was cancelled")
    description: str | None = Field(default=None, description="the customer's own text")
    execute_at: datetime | None = Field(default=None, description="when a rail window lets it go out (RTGS, NEFT)")
    created_at: datetime = Field(description="UTC time of acceptance")
    updated_at: datetime = Field(description="UTC time of the last change")


PaymentPage = Page[PaymentView]


class PayeeView(Contract):
    payee_id: UUID = Field(description="payee id chosen by the caller")
    customer_id: UUID = Field(description="whose beneficiary it is")
    payee: Payee = Field(description="the beneficiary's details")
    added_at: datetime = Field(description="UTC time it was added; first use is scored within 24 h")


class StandingOrderView(Contract):
    standing_order_id: UUID = Field(description="standing order id chosen by the caller")
    payer_account_id: UUID = Field(description="account debited on each occurrence")
    payee: Payee = Field(description="whom it pays")
    kind: PaymentKind = Field(description="internal or an external rail")
    amount: int = amount_field("each occurrence, minor units")
    currency: str = currency_field()
    frequency: Frequency = Field(description="weekly, monthly or quarterly")
    start_date: date = Field(description="first due date (bank calendar)")
    end_date: date | None = Field(default=None, description="last possible due date; null = until cancelled")
    next_date: date | None = Field(default=None, description="next due date; null once ended")
    failures: int = Field(ge=0, description="consecutive failures; 3 suspend it")
    status: StandingOrderStatus = Field(description="active, suspended (3 failures), cancelled or ended")
    customer_id: UUID = Field(description="the payer account's customer")
    created_at: datetime = Field(description="UTC time it was created")


class PayeePage(Contract):
    items: list[PayeeView] = Field(description="the customer's payees, newest first")


class StandingOrderPage(Contract):
    items: list[StandingOrderView] = Field(description="the account's standing orders, newest first")


# --- commands --------------------------------------------------------------------------------


class InitiatePayment(Command):
    """Place a payment order of any kind. Result: `PaymentView`."""

    routing_key: ClassVar[str] = "payment.initiate_payment"

    payment_id: UUID = Field(description="new payment's id, chosen by the caller (makes retries safe)")
    kind: PaymentKind = Field(description="cash_deposit, cash_withdrawal, internal, neft, rtgs, imps, upi or refund")
    channel: Channel = Field(description="where the order was placed")
    payer_account_id: UUID | None = Field(
        default=None, description="account debited; required except for cash deposits"
    )
    payee: Payee | None = Field(default=None, description="whom it goes to; required except for cash withdrawals")
    payee_id: UUID | None = Field(default=None, description="a saved payee used for it (scored for cooling-off)")
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="principal, minor units, > 0")
    currency: str = currency_field()
    refund_of: UUID | None = Field(default=None, description="for kind `refund`: the completed payment refunded")
    description: str | None = Field(default=None, max_length=140, description="the customer's own reference text")
    actor: str = _actor_field()
    verified: bool = Field(default=False, description="the edge verified a one-time password for this order (§2 step-up)")


class GetPayment(Command):
    """Result: `PaymentView`."""

    routing_key: ClassVar[str] = "payment.get_payment"
    read_only: ClassVar[bool] = True

    payment_id: UUID = Field(description="the payment to read")


class ListAccountPayments(Command):
    """Result: `Page[PaymentView]`, newest first, payments the account pays or receives."""

    routing_key: ClassVar[str] = "payment.list_account_payments"
    read_only: ClassVar[bool] = True

    account_id: UUID = Field(description="whose payments")
    limit: int = page_size(default=50, most=100)
    cursor: str | None = cursor_field()


class ApprovePayment(Command):
    """The checker approves a payment waiting for approval. Result: `PaymentView`."""

    routing_key: ClassVar[str] = "payment.approve_payment"

    payment_id: UUID = Field(description="the payment")
    actor: str = _actor_field()
    permissions: list[str] = Field(default_factory=list, description="the actor's permissions as the edge verified them")


class RejectPayment(Command):
    """The checker rejects a payment waiting for approval; the hold is voided. Result: `PaymentView`."""

    routing_key: ClassVar[str] = "payment.reject_payment"

    payment_id: UUID = Field(description="the payment")
    actor: str = _actor_field()
    permissions: list[str] = Field(default_factory=list, description="the actor's permissions as the edge verified them")
    reason: str = _reason_field()


class CancelPayment(Command):
    """Cancel an `initiated` or `pending` payment; the hold is voided. Result: `PaymentView`."""

    routing_key: ClassVar[str] = "payment.cancel_payment"

    payment_id: UUID = Field(description="the payment")
    actor: str = _actor_field()
    reason: str = _reason_field()


class RefundPayment(Command):
    """Refund a completed payment in full or in part, as a new payment. Result: `PaymentView` of the refund."""

    routing_key: ClassVar[str] = "payment.refund_payment"

    refund_id: UUID = Field(description="the refund payment's id, chosen by the caller")
    payment_id: UUID = Field(description="the completed payment to refund")
    amount: int | None = Field(default=None, gt=0, le=MAX_AMOUNT, description="minor units; null = what is left to refund")
    actor: str = _actor_field()
    reason: str = _reason_field()
    verified: bool = Field(default=False, description="the edge verified a one-time password for this refund (§2 step-up)")


class AddPayee(Command):
    """Save a beneficiary for a customer. Result: `PayeeView`."""

    routing_key: ClassVar[str] = "payment.add_payee"

    payee_id: UUID = Field(description="new payee's id, chosen by the caller")
    customer_id: UUID = Field(description="whose beneficiary")
    payee: Payee = Field(description="the beneficiary's details")
    actor: str = _actor_field()


class CreateStandingOrder(Command):
    """Pay the same payee the same amount on a schedule. Result: `StandingOrderView`."""

    routing_key: ClassVar[str] = "payment.create_standing_order"

    standing_order_id: UUID = Field(description="new standing order's id, chosen by the caller")
    payer_account_id: UUID = Field(description="account debited")
    payee: Payee = Field(description="whom it pays")
    kind: PaymentKind = Field(description="internal or an external rail")
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="each occurrence, minor units")
    currency: str = currency_field()
    frequency: Frequency = Field(description="weekly, monthly or quarterly")
    start_date: date = Field(description="first due date")
    end_date: date | None = Field(default=None, description="last possible due date")
    actor: str = _actor_field()


class ListPayees(Command):
    """Result: `PayeePage`, newest first (at most 500 payees a customer)."""

    routing_key: ClassVar[str] = "payment.list_payees"
    read_only: ClassVar[bool] = True

    customer_id: UUID = Field(description="whose payees")


class GetStandingOrder(Command):
    """Result: `StandingOrderView`."""

    routing_key: ClassVar[str] = "payment.get_standing_order"
    read_only: ClassVar[bool] = True

    standing_order_id: UUID = Field(description="the standing order")


class ListStandingOrders(Command):
    """Result: `StandingOrderPage`, the account's standing orders (at most 500), newest first."""

    routing_key: ClassVar[str] = "payment.list_standing_orders"
    read_only: ClassVar[bool] = True

    account_id: UUID = Field(description="the payer account")


class CancelStandingOrder(Command):
    """Stop a standing order; occurrences already placed are not touched. Result: `StandingOrderView`."""

    routing_key: ClassVar[str] = "payment.cancel_standing_order"

    standing_order_id: UUID = Field(description="the standing order")
    actor: str = _actor_field()
    reason: str = _reason_field()


class ReversePayment(Command):
    """Staff correction: give back a completed payment's principal and fee in full, as a new payment
    of kind `reversal`; the original becomes `refunded`. Refused once any refund was made.
    Result: `PaymentView` of the reversal."""

    routing_key: ClassVar[str] = "payment.reverse_payment"

    reversal_id: UUID = Field(description="the reversal payment's id, chosen by the caller")
    payment_id: UUID = Field(description="the completed payment to reverse")
    actor: str = _actor_field()
    reason: str = _reason_field()


# --- the clearing partner's messages ----------------------------------------------------------


class SettlePayment(Command):
    """From the clearing partner: an outgoing payment settled; the hold is posted. Result: `PaymentView`."""

    routing_key: ClassVar[str] = "payment.settle_payment"

    payment_id: UUID = Field(description="the payment the partner was sent")
    partner_reference: str = _partner_reference_field()
    settled_at: datetime = Field(description="the partner's settlement time, UTC")


class RejectExternalPayment(Command):
    """From the clearing partner: an outgoing payment was refused; the hold is voided. Result: `PaymentView`."""

    routing_key: ClassVar[str] = "payment.reject_external_payment"

    payment_id: UUID = Field(description="the payment the partner was sent")
    partner_reference: str = _partner_reference_field()
    reason: str = _reason_field()


class IncomingCredit(Command):
    """From the clearing partner: money arriving for a CBS account; credited once per partner_reference.

    Result: `PaymentView` of the incoming payment.
    """

    routing_key: ClassVar[str] = "payment.incoming_credit"

    partner_reference: str = _partner_reference_field()
    rail: PaymentKind = Field(description="neft, rtgs, imps or upi")
    payee_account_number: str = Field(min_length=1, max_length=40, description="the CBS account number credited")
    payer_name: str = Field(min_length=1, max_length=140, description="the remitter's name")
    payer_account_number: str | None = Field(default=None, max_length=40, description="the remitter's account number")
    payer_ifsc: str | None = Field(default=None, max_length=20, description="the remitter's bank branch code")
    payer_vpa: str | None = Field(default=None, max_length=320, description="the remitter's UPI address")
    amount: int = Field(gt=0, le=MAX_AMOUNT, description="minor units, > 0")
    currency: str = currency_field()
    description: str | None = Field(default=None, max_length=140, description="the remitter's text")


# --- events ----------------------------------------------------------------------------------


class _PaymentFact(Event):
    """Fields every payment event carries, so a consumer can act without asking back."""

    payment_id: UUID = Field(description="the payment")
    reference: str = Field(description="bank reference")
    kind: PaymentKind = Field(description="cash, internal, a rail, or refund")
    payer_account_id: UUID | None = Field(default=None, description="account debited")
    payee_account_id: UUID | None = Field(default=None, description="CBS account credited, when internal")
    customer_id: UUID | None = Field(default=None, description="the payer's customer, where known")
    amount: int = amount_field("principal, minor units")
    currency: str = currency_field()
    status: PaymentStatus = Field(description="status after the event")
    occurred_at: datetime = Field(description="UTC time the change was committed")


class PaymentInitiated(_PaymentFact):
    routing_key: ClassVar[str] = "payment.initiated"

    fee: int = amount_field("fee charged with it")
    fraud_score: int = Field(ge=0, le=100, description="rule-based score")
    fraud_level: FraudLevel = Field(description="low, medium, high or critical")


class PaymentApprovalRequired(_PaymentFact):
    routing_key: ClassVar[str] = "payment.approval_required"

    maker: str = Field(description="who placed the order; may not approve it")
    expires_at: datetime = Field(description="the hold times out then and the payment fails (approval_expired)")


class PaymentApproved(_PaymentFact):
    routing_key: ClassVar[str] = "payment.approved"

    approver: str = _actor_field()


class PaymentSubmitted(_PaymentFact):
    """The instruction to the clearing partner: everything it needs to settle or reject."""

    routing_key: ClassVar[str] = "payment.submitted"

    payee: Payee = Field(description="the external beneficiary")
    fee: int = amount_field("fee held with it")


class PaymentCompleted(_PaymentFact):
    routing_key: ClassVar[str] = "payment.completed"

    fee: int = amount_field("fee posted with it")
    partner_reference: str | None = Field(default=None, description="the partner's reference, for external rails")


class PaymentFailed(_PaymentFact):
    routing_key: ClassVar[str] = "payment.failed"

    code: str = Field(description="why: a `PaymentError`, a ledger result or the partner's reason code")
    reason: str = Field(description="human-readable explanation")


class PaymentCancelled(_PaymentFact):
    routing_key: ClassVar[str] = "payment.cancelled"

    actor: str = _actor_field()
    reason: str = _reason_field()


class PaymentRefunded(_PaymentFact):
    """A refund completed; `payment_id` is the original, `refund_id` the refund payment."""

    routing_key: ClassVar[str] = "payment.refunded"

    refund_id: UUID = Field(description="the refund payment")
    refund_amount: int = amount_field("this refund, minor units")
    refunded_amount: int = amount_field("all refunds of the original so far")


class PayeeAdded(Event):
    routing_key: ClassVar[str] = "payment.payee_added"

    payee_id: UUID = Field(description="the payee")
    customer_id: UUID = Field(description="whose beneficiary")
    payee: Payee = Field(description="the beneficiary's details")
    occurred_at: datetime = Field(description="UTC time it was added")


class StandingOrderFailed(Event):
    routing_key: ClassVar[str] = "payment.standing_order_failed"

    standing_order_id: UUID = Field(description="the standing order")
    payer_account_id: UUID = Field(description="account it debits")
    due_date: date = Field(description="the occurrence that failed")
    amount: int = amount_field("the occurrence's amount")
    currency: str = currency_field()
    code: str = Field(description="why it failed")
    failures: int = Field(ge=1, description="consecutive failures including this one")
    suspended: bool = Field(description="true when this failure suspended it (3 in a row)")
    payment_id: UUID | None = Field(default=None, description="the occurrence's payment, when one was placed")
    occurred_at: datetime = Field(description="UTC time of the failure")


class ScreeningHit(_PaymentFact):
    """A screening rule matched; the order may be held for review or refused."""

    routing_key: ClassVar[str] = "payment.screening_hit"

    rules: list[str] = Field(description="the rules that matched, e.g. `large_amount`, `new_payee`, `velocity`, `watch_list`")
    fraud_score: int = Field(ge=0, le=100, description="rule-based score")
    fraud_level: FraudLevel = Field(description="low, medium, high or critical")


COMMANDS: tuple[type[Command], ...] = (
    InitiatePayment,
    GetPayment,
    ListAccountPayments,
    ApprovePayment,
    RejectPayment,
    CancelPayment,
    RefundPayment,
    AddPayee,
    CreateStandingOrder,
    ListPayees,
    GetStandingOrder,
    ListStandingOrders,
    CancelStandingOrder,
    ReversePayment,
    SettlePayment,
    RejectExternalPayment,
    IncomingCredit,
)
EVENTS: tuple[type[Event], ...] = (
    PaymentInitiated,
    PaymentApprovalRequired,
    PaymentApproved,
    PaymentSubmitted,
    PaymentCompleted,
    PaymentFailed,
    PaymentCancelled,
    PaymentRefunded,
    PayeeAdded,
    StandingOrderFailed,
    ScreeningHit,
)
