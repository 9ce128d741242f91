"""Step-up one-time passwords (banking-rules §2): the pure rules of identity (issue, judge a code)
and of the payment worker (which orders need one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.identity import OTP_MAX_ATTEMPTS, IdentityError
from contracts.payment import Channel, PaymentError, PaymentKind
from workers.identity import domain
from workers.identity.domain import OtpOutcome, OtpState
from workers.payment.domain.orders import STEP_UP_THRESHOLD, step_up_refusal

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
PURPOSE = "payment:" + "a" * 64


def _otp(code: str = "042317", **changes: object) -> OtpState:
    salt, code_hash = domain.new_otp(code)
    fields = {"user_id": "u-1", "purpose": PURPOSE, "salt": salt, "code_hash": code_hash, "attempts": 0,
              "max_attempts": OTP_MAX_ATTEMPTS, "expires_at": NOW + timedelta(minutes=5), "locked": False,
              "consumed_by": None} | changes  # fmt: skip
    return OtpState(**fields)  # type: ignore[arg-type]


def _judge(otp: OtpState, code: str = "042317", **changes: object) -> tuple[OtpOutcome, str | None]:
    args = {"user_id": "u-1", "code": code, "purpose": PURPOSE, "consumed_by": "pay-1", "now": NOW} | changes
    outcome, refusal = domain.judge_otp(otp, **args)  # type: ignore[arg-type]
    return outcome, refusal.code if refusal else None


def test_a_code_is_six_digits_leading_zeros_kept_and_only_its_salted_hmac_is_kept() -> None:
    codes = {domain.new_otp_code() for _ in range(2000)}
    assert all(len(code) == 6 and code.isdigit() for code in codes)
    assert len(codes) > 1500  # drawn, not fixed
    assert any(code.startswith("0") for code in codes)
    salt_a, hash_a = domain.new_otp("123456")
    salt_b, hash_b = domain.new_otp("123456")
    assert len(salt_a) == 16 and len(hash_a) == 32
    assert salt_a != salt_b and hash_a != hash_b  # per-OTP salt: equal codes, unequal hashes
    assert b"123456" not in hash_a and hash_a == domain.otp_digest(salt_a, "123456")


def test_the_right_code_for_the_right_operation_verifies() -> None:
    assert _judge(_otp()) == (OtpOutcome.verified, None)


def test_a_wrong_code_counts_a_try_and_the_last_try_locks() -> None:
    assert _judge(_otp(), code="000000") == (OtpOutcome.wrong, None)
    assert not domain.otp_locks_now(_otp(attempts=OTP_MAX_ATTEMPTS - 2))
    assert domain.otp_locks_now(_otp(attempts=OTP_MAX_ATTEMPTS - 1))
    # Locked: even the right code is refused, and says nothing about the code.
    assert _judge(_otp(locked=True, attempts=3)) == (OtpOutcome.refused, IdentityError.otp_locked)


def test_expired_at_exactly_five_minutes() -> None:
    assert _judge(_otp(), now=NOW + timedelta(minutes=5) - timedelta(microseconds=1))[0] is OtpOutcome.verified
    assert _judge(_otp(), now=NOW + timedelta(minutes=5)) == (OtpOutcome.refused, IdentityError.otp_expired)


def test_another_operation_is_refused_without_burning_a_try() -> None:
    other = "payment:" + "b" * 64
    assert _judge(_otp(), purpose=other) == (OtpOutcome.refused, IdentityError.otp_mismatch)
    assert _judge(_otp(), code="999999", purpose=other) == (OtpOutcome.refused, IdentityError.otp_mismatch)


def test_another_login_learns_nothing() -> None:
    assert _judge(_otp(), user_id="u-2") == (OtpOutcome.refused, IdentityError.otp_not_found)


def test_consumed_once_and_a_repeat_of_the_same_payment_verifies_again() -> None:
    used = _otp(consumed_by="pay-1")
    assert _judge(used) == (OtpOutcome.again, None)
    assert _judge(used, consumed_by="pay-2") == (OtpOutcome.refused, IdentityError.otp_used)
    assert _judge(used, code="111111") == (OtpOutcome.refused, IdentityError.otp_used)
    # A repeat after the five minutes is still the same request: answered the same.
    assert _judge(used, now=NOW + timedelta(hours=1)) == (OtpOutcome.again, None)


K, CH = PaymentKind, Channel


CUSTOMER, PARTNER, STAFF = "customer", "partner", "staff"  # staff: the edge's staff logins and the bank's services


@pytest.mark.parametrize(
    ("kind", "channel", "amount", "who", "verified", "needed"),
    [
        (K.internal, CH.mobile, STEP_UP_THRESHOLD, CUSTOMER, False, True),  # at the threshold: inclusive
        (K.internal, CH.mobile, STEP_UP_THRESHOLD - 1, CUSTOMER, False, False),  # below it
        (K.neft, CH.internet_banking, 15_000_00, CUSTOMER, False, True),
        (K.imps, CH.mobile, 15_000_00, CUSTOMER, True, False),  # verified by the edge
        (K.internal, CH.branch, 15_000_00, CUSTOMER, False, True),  # a customer whose body says `branch`
        (K.internal, CH.api, 15_000_00, CUSTOMER, False, True),
        (K.internal, CH.mobile, 15_000_00, PARTNER, False, True),  # a partner's app relaying a customer
        (K.internal, CH.api, 15_000_00, PARTNER, False, False),  # a partner's own channel
        (K.internal, CH.branch, 15_000_00, STAFF, False, False),  # the back office
        (K.internal, CH.mobile, 15_000_00, STAFF, False, False),  # staff keying a customer's request
        (K.cash_withdrawal, CH.atm, 15_000_00, STAFF, False, False),  # a card at an ATM
        (K.internal, CH.scheduler, 15_000_00, STAFF, False, False),  # the bank's standing orders
        (K.cash_deposit, CH.mobile, 15_000_00, CUSTOMER, False, False),  # not a debit
        (K.refund, CH.mobile, 15_000_00, CUSTOMER, False, True),  # a customer giving back what they received
        (K.refund, CH.branch, 15_000_00, STAFF, False, False),
    ],
)  # fmt: skip
def test_which_orders_need_a_verified_one_time_password(kind: PaymentKind, channel: Channel, amount: int, who: str,
                                                        verified: bool, needed: bool) -> None:  # fmt: skip
    refusal = step_up_refusal(kind, channel, amount, by_customer=who == CUSTOMER, by_partner=who == PARTNER,
                              verified=verified, threshold=STEP_UP_THRESHOLD)  # fmt: skip
    assert (refusal is not None) == needed
    if refusal is not None:
        assert refusal.code == PaymentError.verification_required and refusal.details == {"threshold": 1_000_000}


def test_the_threshold_is_a_setting() -> None:
    from workers.payment.handlers.lifecycle import PaymentConfig

    assert PaymentConfig.from_env({}).step_up_threshold == 1_000_000
    assert PaymentConfig.from_env({"CBS_STEP_UP_THRESHOLD_MINOR": "500000"}).step_up_threshold == 500_000


def test_the_code_travels_to_the_notification_worker_as_a_secret_redacted_for_audit() -> None:
    import uuid

    from contracts.notification import SendMessage

    send = SendMessage(send_id=uuid.uuid4(), channels=["sms"], customer_id=uuid.uuid4(), template="one_time_password",
                       data={"valid_minutes": 5}, secret_data={"code": "123456"})  # fmt: skip
    assert "123456" in send.model_dump_json()  # it must cross the wire
    redacted = send.model_dump(mode="json", context={"redact": True})  # what audit chains and logs print
    assert "123456" not in str(redacted) and "123456" not in repr(send)
    assert redacted["data"] == {"valid_minutes": 5}
