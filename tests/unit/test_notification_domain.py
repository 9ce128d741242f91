"""The notification worker's pure rules (banking-rules §6): preferences, quiet hours, caps,
retries and backoff, provider rate limits, webhook signatures, sandboxed templates."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.notification import NotificationCategory, NotificationChannel, NotificationStatus, NotificationPriority
from workers.notification.domain import delivery, rules
from workers.notification.domain.templates import Template, TemplateFailure, check, render

UTC = dt.UTC
NOON = dt.datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def recipient(**changes: object) -> rules.Recipient:
    base = dict(email="a@example.com", phone="+919800000000", language="en", time_zone="UTC",
                quiet_start=dt.time(22), quiet_end=dt.time(7), marketing_consent=False, rules={})  # fmt: skip
    return rules.Recipient(**(base | changes))  # type: ignore[arg-type]


# --- preferences ------------------------------------------------------------------------------------


def test_with_no_preferences_everything_is_on_but_marketing() -> None:
    r = recipient()
    assert all(rules.allowed(r, ch, cat, NotificationPriority.medium) for ch in NotificationChannel for cat in NotificationCategory if cat is not NotificationCategory.marketing)
    assert not rules.allowed(r, NotificationChannel.email, NotificationCategory.marketing, NotificationPriority.low)
    assert rules.allowed(recipient(marketing_consent=True), NotificationChannel.email, NotificationCategory.marketing, NotificationPriority.low)


def test_a_stored_rule_decides_and_security_always_goes() -> None:
    r = recipient(rules={(NotificationChannel.sms, NotificationCategory.transaction): False, (NotificationChannel.sms, NotificationCategory.security): False})
    assert not rules.allowed(r, NotificationChannel.sms, NotificationCategory.transaction, NotificationPriority.medium)
    assert rules.allowed(r, NotificationChannel.email, NotificationCategory.transaction, NotificationPriority.medium)
    assert rules.allowed(r, NotificationChannel.sms, NotificationCategory.security, NotificationPriority.critical)
    assert rules.place(r, NotificationChannel.sms, NotificationCategory.transaction, NotificationPriority.medium, now=NOON, sent_today=0) is None


# --- quiet hours --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("local", "quiet"), [
    (dt.time(21, 59), False), (dt.time(22, 0), True), (dt.time(3, 0), True), (dt.time(6, 59), True), (dt.time(7, 0), False),
])  # fmt: skip
def test_quiet_hours_span_midnight(local: dt.time, quiet: bool) -> None:
    assert rules.in_quiet_hours(local, dt.time(22), dt.time(7)) is quiet


def test_quiet_hours_are_the_recipients_own_time_zone() -> None:
    night_in_kolkata = dt.datetime(2026, 12, 7, 18, 0, tzinfo=UTC)  # 23:30 IST
    until = rules.quiet_until(night_in_kolkata, "Asia/Kolkata", dt.time(22), dt.time(7))
    assert until == dt.datetime(2026, 12, 8, 1, 30, tzinfo=UTC)  # 07:00 IST next morning
    assert rules.quiet_until(night_in_kolkata, "Europe/London", dt.time(22), dt.time(7)) is None  # 18:00 there


def test_a_normal_sms_waits_for_quiet_hours_to_end_a_critical_one_does_not() -> None:
    night = dt.datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
    held = rules.place(recipient(), NotificationChannel.sms, NotificationCategory.transaction, NotificationPriority.high, now=night, sent_today=0)
    assert held is not None and held.scheduled_at == dt.datetime(2026, 12, 8, 7, 0, tzinfo=UTC)
    assert held.expires_at > held.scheduled_at
    urgent = rules.place(recipient(), NotificationChannel.sms, NotificationCategory.alert, NotificationPriority.critical, now=night, sent_today=0)
    assert urgent is not None and urgent.scheduled_at == night
    otp = rules.place(recipient(), NotificationChannel.sms, NotificationCategory.security, NotificationPriority.high, now=night, sent_today=0)
    assert otp is not None and otp.scheduled_at == night
    email = rules.place(recipient(), NotificationChannel.email, NotificationCategory.transaction, NotificationPriority.low, now=night, sent_today=0)
    assert email is not None and email.scheduled_at == night


# --- caps ---------------------------------------------------------------------------------------------


def test_over_the_daily_cap_a_message_goes_in_app() -> None:
    assert rules.place(recipient(), NotificationChannel.sms, NotificationCategory.transaction, NotificationPriority.medium, now=NOON, sent_today=9).channel is NotificationChannel.sms  # type: ignore[union-attr]
    moved = rules.place(recipient(), NotificationChannel.sms, NotificationCategory.transaction, NotificationPriority.medium, now=NOON, sent_today=10)
    assert moved is not None and moved.channel is NotificationChannel.in_app
    assert rules.place(recipient(), NotificationChannel.email, NotificationCategory.loan, NotificationPriority.medium, now=NOON, sent_today=19).channel is NotificationChannel.email  # type: ignore[union-attr]
    assert rules.place(recipient(), NotificationChannel.email, NotificationCategory.loan, NotificationPriority.medium, now=NOON, sent_today=20).channel is NotificationChannel.in_app  # type: ignore[union-attr]
    kept = rules.place(recipient(), NotificationChannel.sms, NotificationCategory.security, NotificationPriority.critical, now=NOON, sent_today=50)
    assert kept is not None and kept.channel is NotificationChannel.sms


def test_caps_restart_at_midnight_bank_time() -> None:
    assert rules.bank_day_start(NOON, "Asia/Kolkata") == dt.datetime(2026, 12, 6, 18, 30, tzinfo=UTC)


# --- retries, backoff, endpoints, rate limits -------------------------------------------------------------


def test_three_attempts_five_minutes_apart_or_a_later_retry_after() -> None:
    five = dt.timedelta(minutes=5)
    failed = delivery.Outcome(ok=False, error_code="smtp_unavailable")
    later = NOON + dt.timedelta(hours=24)
    first = delivery.after_attempt(NotificationChannel.email, 1, failed, now=NOON, base_delay=five, expires_at=later)
    assert first == delivery.Next(NotificationStatus.retry, NOON + five)
    slow = delivery.Outcome(ok=False, error_code="http_429", retry_after_s=900)
    assert delivery.after_attempt(NotificationChannel.sms, 2, slow, now=NOON, base_delay=five, expires_at=later).scheduled_at == NOON + dt.timedelta(minutes=15)
    assert delivery.after_attempt(NotificationChannel.email, 3, failed, now=NOON, base_delay=five, expires_at=later).status is NotificationStatus.failed
    refused = delivery.Outcome(ok=False, error_code="recipient_refused", permanent=True)
    assert delivery.after_attempt(NotificationChannel.email, 1, refused, now=NOON, base_delay=five, expires_at=later).status is NotificationStatus.failed
    soon = NOON + dt.timedelta(minutes=1)
    assert delivery.after_attempt(NotificationChannel.email, 1, failed, now=NOON, base_delay=five, expires_at=soon).status is NotificationStatus.cancelled
    ok = delivery.Outcome(ok=True, delivered=True)
    assert delivery.after_attempt(NotificationChannel.webhook, 1, ok, now=NOON, base_delay=five, expires_at=later).status is NotificationStatus.delivered


def test_webhooks_back_off_exponentially() -> None:
    base = dt.timedelta(seconds=60)
    assert [delivery.retry_delay(NotificationChannel.webhook, n, base).total_seconds() for n in (1, 2, 3)] == [60, 120, 240]
    assert delivery.retry_delay(NotificationChannel.email, 3, base) == base
    assert not delivery.endpoint_disabled(4, 5) and delivery.endpoint_disabled(5, 5)


def test_provider_rate_limits_make_the_excess_wait() -> None:
    minute, hour, day = (w for w, _ in delivery.RATE_LIMITS)
    first = NOON - dt.timedelta(seconds=40)
    assert delivery.rate_limited_until({minute: 59, hour: 59, day: 59}, {minute: first, hour: first, day: first}) is None
    assert delivery.rate_limited_until({minute: 60, hour: 60, day: 60}, {minute: first}) == first + minute
    early = NOON - dt.timedelta(minutes=50)
    assert delivery.rate_limited_until({minute: 10, hour: 1_000, day: 1_000}, {hour: early}) == early + hour


# --- signatures ---------------------------------------------------------------------------------------------


def test_a_signature_verifies_only_with_its_secret_body_and_time() -> None:
    body = b'{"id":"1"}'
    header = delivery.sign("whsec_x", 1_765_000_000, body)
    assert header.startswith("t=1765000000,v1=")
    assert delivery.verify("whsec_x", header, body, now_s=1_765_000_100)
    assert not delivery.verify("whsec_y", header, body, now_s=1_765_000_100)
    assert not delivery.verify("whsec_x", header, body + b" ", now_s=1_765_000_100)
    assert not delivery.verify("whsec_x", header, body, now_s=1_765_000_000 + 301), "outside the replay window"
    assert not delivery.verify("whsec_x", "v1=abc", body, now_s=1_765_000_000)


# --- templates ----------------------------------------------------------------------------------------------


def test_templates_render_and_a_missing_variable_fails_at_once() -> None:
    t = Template("payment_completed", 1, "en", "{{ amount | money(currency) }} in", "Hi {{ name }}, ref {{ ref }}.")
    assert render(t, {"amount": 250_000, "currency": "INR", "name": "Asha", "ref": "R1"}).subject == "INR 2,500.00 in"
    with pytest.raises(TemplateFailure, match="ref"):
        render(t, {"amount": 1, "currency": "INR", "name": "Asha"})


def test_a_template_text_is_compiled_once_and_each_render_has_its_own_data() -> None:
    from workers.notification.domain import templates

    body = "Dear {{ name }}, compiled once (a text no other test uses)."
    t = Template("once", 1, "en", "Hi {{ name }}", body)
    first = render(t, {"name": "Asha"})
    compiled = templates._compiled_text.cache_info()
    second = render(t, {"name": "Ravi"})
    after = templates._compiled_text.cache_info()
    assert (first.body, second.body) == ("Dear Asha, compiled once (a text no other test uses).",
                                         "Dear Ravi, compiled once (a text no other test uses).")  # fmt: skip
    assert after.misses == compiled.misses and after.hits == compiled.hits + 2, "subject and body came from the cache"
    with pytest.raises(TemplateFailure):
        render(Template("bad", 1, "en", "s", "{% if %}"), {})
    with pytest.raises(TemplateFailure):  # a failed compile is not cached as a success
        render(Template("bad", 1, "en", "s", "{% if %}"), {})


def test_templates_are_sandboxed_and_html_is_escaped() -> None:
    escape = Template("x", 1, "en", "s", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateFailure):
        render(escape, {})
    html = Template("x", 1, "en", "s", "b", "<p>{{ name }}</p>")
    assert render(html, {"name": "<script>"}).html == "<p>&lt;script&gt;</p>"
    assert check("s", "{% if %}", None) is not None and check("s", "{{ a }}", None) is None


def test_the_shipped_templates_parse_and_the_test_message_needs_no_note() -> None:
    from workers.notification.domain.templates import DEFAULTS

    assert all(check(t.subject, t.body, t.html) is None for t in DEFAULTS)
    assert len({(t.key, t.language, t.version) for t in DEFAULTS}) == len(DEFAULTS)
    test_message = next(t for t in DEFAULTS if t.key == "test_message")
    assert render(test_message, {}).body == "This is a test message from CBS."
    otp = next(t for t in DEFAULTS if t.key == "one_time_password")
    assert "493817" in render(otp, {"code": "493817", "valid_minutes": 5}).body
    new_device = render(next(t for t in DEFAULTS if t.key == "new_device_login"), {
        "name": "Asha", "username": "asha", "device_label": "Firefox/121.0", "client_address": "203.0.113.7",
        "occurred_at": "2026-12-06T18:00:00Z"})  # fmt: skip
    assert new_device.subject == "New sign-in to your account"
    assert all(part in new_device.body for part in ("Firefox/121.0", "203.0.113.7", "2026-12-06T18:00:00Z",
                                                     "call the bank and change your password"))  # fmt: skip


def test_each_event_names_its_recipients_in_one_place() -> None:
    """`named_by` is what the triggers notify and what a transaction locks first: a payment's
    payer and the credited account (its holder), a login's customer, a loan's customer, an
    event's own customer_id, and no one for the security desk's facts."""
    import uuid as _uuid

    from contracts import audit, customer, identity, loan, payment
    from workers.notification.handlers.triggers import Named, named_by

    payer, account, user, borrower = (_uuid.uuid4() for _ in range(4))
    assert named_by(payment.PaymentCompleted.model_construct(customer_id=payer, payee_account_id=account)) == Named(
        customers=(payer,), accounts=(account,))  # fmt: skip
    assert named_by(payment.PaymentCompleted.model_construct(customer_id=None, payee_account_id=None)) == Named()
    assert named_by(identity.LockedOut.model_construct(user_id=user)) == Named(logins=(user,))
    assert named_by(identity.NewDeviceLogin.model_construct(user_id=user)) == Named(logins=(user,))
    assert named_by(loan.LoanDisbursed.model_construct(loan=loan.LoanView.model_construct(customer_id=borrower))) == Named(
        customers=(borrower,))  # fmt: skip
    assert named_by(customer.CustomerKycStatusChanged.model_construct(customer_id=payer)) == Named(customers=(payer,))
    assert named_by(audit.SecurityEventRaised.model_construct()) == Named()
