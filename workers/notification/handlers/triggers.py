"""Other workers' events, turned into notifications (banking-rules §6: triggers).

Each event names a customer (or, for security facts, the bank's security desk), a template, a
category and a priority. `notify` decides per channel under the recipient's preferences, quiet
hours and caps, renders the template, and stores each decision as a `pending` notification in
the transaction that records the event in the inbox: a crash after the commit loses nothing, and
a redelivered event makes nothing twice. The sender loop (handlers/sending.py) does the rest.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from bus.handling import Context
from contracts import account, audit, customer, identity, loan, payment
from contracts.notification import NotificationCategory, NotificationChannel, NotificationDelivered, NotificationFailed, NotificationStatus, NotificationPriority
from workers.notification import store
from workers.notification.domain import rules
from workers.notification.domain.templates import FALLBACK_LANGUAGE, Template, TemplateFailure, render
from workers.notification.handlers.config import CONFIG

# The templates one event looked up, by (key, language): its messages in one language share one.
Templates = dict[tuple[str, str], Template | None]

CUSTOMER_CHANNELS = (NotificationChannel.email, NotificationChannel.sms, NotificationChannel.in_app)
KIND_LABELS = {"cash_deposit": "Cash deposit", "cash_withdrawal": "Cash withdrawal", "incoming": "Incoming credit",
               "refund": "Refund", "reversal": "Reversal"}  # fmt: skip


def _time(text: str) -> dt.time:
    return dt.time.fromisoformat(text) if isinstance(text, str) else text


async def recipient_of(ctx: Context, customer_id: UUID, *, lock: bool = False) -> tuple[rules.Recipient, str]:
    """What is known of the customer, with the defaults for what is not: (recipient, name)."""
    known, pref = await store.recipient_and_preference(ctx.conn, customer_id, lock=lock)
    stored = {(NotificationChannel(r["channel"]), NotificationCategory(r["category"])): bool(r["enabled"]) for r in (pref["rules"] if pref else [])}
    return rules.Recipient(
        email=known["email"] if known else None,
        phone=known["phone"] if known else None,
        language=(pref["language"] if pref and pref["language"] else None) or (known["language"] if known else FALLBACK_LANGUAGE),
        time_zone=(pref["time_zone"] if pref and pref["time_zone"] else None) or CONFIG.bank_time_zone,
        quiet_start=pref["quiet_start"] if pref else CONFIG.quiet_start, quiet_end=pref["quiet_end"] if pref else CONFIG.quiet_end,
        marketing_consent=bool(pref and pref["marketing_consent"]), rules=stored,
    ), (known["name"] if known else "customer")  # fmt: skip


def notification_id_of(cause: str, *parts: object) -> UUID:
    """A notification's id from what caused it and where it goes: the same cause makes the same ids.
    `parts` name the recipient too: one event may notify two customers (a transfer's payer and
    payee) on the same channel, and each must get their own."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "cbs-notification:" + cause + ":" + ":".join(map(str, parts)))


async def _fail(ctx: Context, row: dict[str, Any], code: str, why: str) -> None:
    row |= {"status": NotificationStatus.failed.value, "error_code": code, "error": why}
    if await store.add_notification(ctx.conn, row):
        await ctx.emit(NotificationFailed(
            notification_id=row["notification_id"], customer_id=row["customer_id"], channel=row["channel"],
            category=row["category"], template=row["template"], attempt=0, correlation_id=ctx.correlation_id,
            occurred_at=ctx.now, error_code=code, error=why[:1000],
        ))  # fmt: skip


async def store_one(ctx: Context, *, notification_id: UUID, customer_id: UUID | None, channel: NotificationChannel, address: str | None,
                    endpoint_id: UUID | None, category: NotificationCategory, priority: NotificationPriority, template_key: str, language: str,
                    data: Mapping[str, Any], scheduled_at: dt.datetime, expires_at: dt.datetime,
                    secret_data: Mapping[str, str] | None = None, templates: Templates | None = None) -> UUID | None:  # fmt: skip
    """Render and store one notification (in-app: delivered at once). A missing template or a
    missing variable fails it at once: it is a bug, not an outage. `secret_data` (a one-time
    password) is rendered into the message but not kept with its data. `templates`: those one
    event looked up already (each of its messages in one language renders the same template)."""
    row: dict[str, Any] = {
        "notification_id": notification_id, "customer_id": customer_id, "endpoint_id": endpoint_id, "address": address,
        "channel": channel.value, "category": category.value, "priority": priority.value, "template": template_key,
        "language": language, "payload": dict(data), "scheduled_at": scheduled_at, "expires_at": expires_at,
        "created_at": ctx.now, "updated_at": ctx.now, "correlation_id": ctx.correlation_id, "cause": ctx.message_id,
    }  # fmt: skip
    template = await _template(ctx, template_key, language, {} if templates is None else templates)
    if template is None:
        await _fail(ctx, row, "template_not_found", f"no template {template_key!r}")
        return None
    row["template_version"] = template.version
    try:
        text = render(template, {**data, **(secret_data or {})})
    except TemplateFailure as exc:
        await _fail(ctx, row, "template_invalid", str(exc))
        return None
    row |= {"subject": text.subject, "body": text.body, "html": text.html, "status": NotificationStatus.pending.value}
    if channel is NotificationChannel.in_app:
        row["status"] = NotificationStatus.delivered.value
    added = await store.add_notification(ctx.conn, row)
    if added and channel is NotificationChannel.in_app:  # the inbox holds it now: delivered
        await ctx.emit(NotificationDelivered(
            notification_id=notification_id, customer_id=customer_id, channel=channel, category=category,
            template=template_key, attempt=0, correlation_id=ctx.correlation_id, occurred_at=ctx.now, provider="in_app",
        ))  # fmt: skip
    return notification_id


async def _template(ctx: Context, key: str, language: str, templates: Templates) -> Template | None:
    if (key, language) not in templates:
        templates[key, language] = await store.template(ctx.conn, key, language, FALLBACK_LANGUAGE)
    return templates[key, language]


async def notify(ctx: Context, customer_id: UUID | None, template_key: str, category: NotificationCategory, priority: NotificationPriority,
                 data: Mapping[str, Any], *, channels: tuple[NotificationChannel, ...] = CUSTOMER_CHANNELS,
                 expires_in: dt.timedelta = rules.EXPIRY, webhooks: bool = True, templates: Templates | None = None) -> list[UUID]:  # fmt: skip
    """The customer's channels under their preferences, and every webhook endpoint of the category.
    `templates`: those the event looked up already, shared by every customer it notifies."""
    templates = {} if templates is None else templates
    made: list[UUID] = []
    language = FALLBACK_LANGUAGE
    if customer_id is not None:
        recipient, name = await recipient_of(ctx, customer_id, lock=True)
        language = recipient.language
        data = {"name": name, **data}
        addresses = {NotificationChannel.email: recipient.email, NotificationChannel.sms: recipient.phone}
        reachable = [ch for ch in channels if ch is NotificationChannel.in_app or addresses.get(ch)]
        # Only capped channels are counted, all in one query. Placing one of this event's messages
        # cannot change another capped channel's count: one past its cap falls back to in-app, uncapped.
        capped = [ch.value for ch in reachable if ch in rules.DAILY_CAPS]
        sent = await store.sent_today(ctx.conn, customer_id, capped, rules.bank_day_start(ctx.now, CONFIG.bank_time_zone)) if capped else {}
        for channel in reachable:
            address = addresses.get(channel)
            placed = rules.place(recipient, channel, category, priority, now=ctx.now, sent_today=sent.get(channel.value, 0),
                                 expires_in=expires_in)  # fmt: skip
            if placed is None or (placed.channel is not channel and placed.channel in channels):
                continue  # kept back, or over the cap onto a channel (in-app) that has it already
            made_id = await store_one(
                ctx, notification_id=notification_id_of(ctx.message_id, channel, customer_id), customer_id=customer_id, channel=placed.channel,
                address=address if placed.channel is channel else None, endpoint_id=None, category=category,
                priority=priority, template_key=template_key, language=language, data=data,
                scheduled_at=placed.scheduled_at, expires_at=placed.expires_at, templates=templates,
            )  # fmt: skip
            made += [made_id] if made_id else []
    for endpoint in await store.endpoints_for(ctx.conn, category.value, customer_id) if webhooks else []:
        made_id = await store_one(
            ctx, notification_id=notification_id_of(ctx.message_id, "webhook", endpoint["endpoint_id"], customer_id),
            customer_id=customer_id,
            channel=NotificationChannel.webhook, address=None, endpoint_id=endpoint["endpoint_id"], category=category,
            priority=priority, template_key=template_key, language=language, data=data, scheduled_at=ctx.now,
            expires_at=ctx.now + expires_in, templates=templates,
        )  # fmt: skip
        made += [made_id] if made_id else []
    return made


@dataclass(frozen=True, slots=True)
class Named:
    """Whom an event may notify or teach the worker about, as the event names them: customers
    directly, accounts (their holders) and logins (their customers)."""

    customers: tuple[UUID, ...] = ()
    accounts: tuple[UUID, ...] = ()
    logins: tuple[UUID, ...] = ()


def named_by(event: Any) -> Named:
    """The one place that says whom each event names: the triggers notify these customers
    (`customers_named`) and the transaction locks them first (`lock_recipients`), so a trigger
    that names someone new is locked in order as soon as it notifies them. An event's own
    `customer_id` is the rule; the exceptions follow."""
    if isinstance(event, payment.PaymentCompleted):  # the payer's customer, and the credited account's holder
        return Named(customers=(event.customer_id,) if event.customer_id else (),
                     accounts=(event.payee_account_id,) if event.payee_account_id else ())  # fmt: skip
    if isinstance(event, loan.LoanDisbursed):
        return Named(customers=(event.loan.customer_id,))
    if isinstance(event, (identity.LockedOut, identity.NewDeviceLogin)):  # a staff login has no customer
        return Named(logins=(event.user_id,))
    customer_id = getattr(event, "customer_id", None)
    return Named(customers=(customer_id,)) if isinstance(customer_id, UUID) else Named()


async def customers_named(ctx: Context, event: Any) -> list[UUID]:
    """The customers `named_by` the event, each once, in the order it names them."""
    named = named_by(event)
    found: list[UUID | None] = list(named.customers)
    found += [await store.account_holder(ctx.conn, account_id) for account_id in named.accounts]
    found += [await store.customer_of_login(ctx.conn, user_id) for user_id in named.logins]
    return [c for c in dict.fromkeys(found) if c is not None]


async def lock_recipients(conn: asyncpg.Connection, events: Sequence[Any]) -> None:
    """Every recipient a transaction's events name (`named_by`), locked at once in one order
    (`Routes.lock_for_events`). Locked event by event (`notify` locks each recipient it decides
    for), two replicas' batches crossed: a bench on two of each worker saw 33 deadlocks in two
    minutes, each a one-second wait and the batch done again. `notify` still locks each one:
    held already, that costs no wait."""
    named = [named_by(event) for event in events]
    customers = {c for n in named for c in n.customers}
    accounts = {a for n in named for a in n.accounts}
    logins = {u for n in named for u in n.logins}
    if customers or accounts or logins:
        await store.lock_recipients(conn, customers, accounts, logins)


def _data(event: Any, *drop: str) -> dict[str, Any]:
    return {k: v for k, v in event.model_dump(mode="json").items() if k not in drop}


# --- what the worker learns ---------------------------------------------------------------------


async def on_customer_registered(ctx: Context, event: customer.CustomerRegistered) -> None:
    await store.learn_recipient(ctx.conn, event.customer_id, event.name, event.email or None, event.phone or None,
                                event.language, event.occurred_at)  # fmt: skip


async def on_customer_updated(ctx: Context, event: customer.CustomerUpdated) -> None:
    await store.learn_recipient(ctx.conn, event.customer_id, event.name, event.email or None, event.phone or None,
                                event.language, event.occurred_at)  # fmt: skip


async def on_account_opened(ctx: Context, event: account.AccountOpened) -> None:
    await store.learn_account(ctx.conn, event.account_id, event.customer_id, event.number)


# --- triggers -----------------------------------------------------------------------------------


async def on_payment_completed(ctx: Context, event: payment.PaymentCompleted) -> None:
    """A transaction alert to the payer's customer and to the credited account's holder."""
    data = _data(event) | {"kind_label": KIND_LABELS.get(event.kind.value, "Payment")}
    templates: Templates = {}  # both sides read it once (per language)
    for customer_id in await customers_named(ctx, event):
        await notify(ctx, customer_id, "payment_completed", NotificationCategory.transaction, NotificationPriority.medium, data,
                     templates=templates)  # fmt: skip


async def on_payment_failed(ctx: Context, event: payment.PaymentFailed) -> None:
    await notify(ctx, event.customer_id, "payment_failed", NotificationCategory.payment, NotificationPriority.high, _data(event))


async def on_kyc_status_changed(ctx: Context, event: customer.CustomerKycStatusChanged) -> None:
    await notify(ctx, event.customer_id, "kyc_status_changed", NotificationCategory.account, NotificationPriority.medium, _data(event))


async def on_document_expiring(ctx: Context, event: customer.CustomerDocumentExpiring) -> None:
    await notify(ctx, event.customer_id, "document_expiring", NotificationCategory.account, NotificationPriority.medium, _data(event))


async def on_account_frozen(ctx: Context, event: account.AccountFrozen) -> None:
    await notify(ctx, event.customer_id, "account_frozen", NotificationCategory.alert, NotificationPriority.high, _data(event))


async def on_account_dormant(ctx: Context, event: account.AccountDormant) -> None:
    await notify(ctx, event.customer_id, "account_dormant", NotificationCategory.account, NotificationPriority.medium, _data(event))


async def on_instalment_due(ctx: Context, event: loan.InstalmentDue) -> None:
    await notify(ctx, event.customer_id, "loan_instalment_due", NotificationCategory.loan, NotificationPriority.medium,
                 _data(event) | {"currency": CONFIG.default_currency})  # instalments are in the bank's currency


async def on_payment_overdue(ctx: Context, event: loan.LoanPaymentOverdue) -> None:
    await notify(ctx, event.customer_id, "loan_payment_overdue", NotificationCategory.alert, NotificationPriority.high, _data(event))


async def on_loan_disbursed(ctx: Context, event: loan.LoanDisbursed) -> None:
    view = event.loan.model_dump(mode="json")
    data = {"number": view.get("number"), "amount": view.get("principal", 0), "currency": view.get("currency", "INR"),
            "loan_id": view.get("loan_id")}  # fmt: skip
    for customer_id in await customers_named(ctx, event):
        await notify(ctx, customer_id, "loan_disbursed", NotificationCategory.loan, NotificationPriority.medium, data)


async def _security_desk(ctx: Context, template_key: str, data: dict[str, Any]) -> None:
    """Facts for the bank's security desk: its webhooks, and its mailbox when one is configured."""
    await notify(ctx, None, template_key, NotificationCategory.security, NotificationPriority.critical, data)
    if CONFIG.security_email:
        now = ctx.now
        await store_one(ctx, notification_id=notification_id_of(ctx.message_id, "security-desk"), customer_id=None, channel=NotificationChannel.email,
                        address=CONFIG.security_email, endpoint_id=None, category=NotificationCategory.security,
                        priority=NotificationPriority.critical, template_key=template_key, language=FALLBACK_LANGUAGE, data=data,
                        scheduled_at=now, expires_at=now + rules.EXPIRY)  # fmt: skip


async def on_security_event(ctx: Context, event: audit.SecurityEventRaised) -> None:
    await _security_desk(ctx, "security_alert", _data(event))


async def on_user_created(ctx: Context, event: identity.UserCreated) -> None:
    if event.customer_id is not None:
        await store.learn_login(ctx.conn, event.user_id, event.customer_id)


async def on_locked_out(ctx: Context, event: identity.LockedOut) -> None:
    """The security desk, and the customer whose login it is (a security message: always sent)."""
    await _security_desk(ctx, "locked_out", _data(event))
    for customer_id in await customers_named(ctx, event):
        await notify(ctx, customer_id, "login_locked", NotificationCategory.security, NotificationPriority.critical,
                     _data(event), channels=(NotificationChannel.email, NotificationChannel.sms, NotificationChannel.in_app),
                     webhooks=False)  # fmt: skip


async def on_new_device_login(ctx: Context, event: identity.NewDeviceLogin) -> None:
    """The customer whose login it is, on every channel they have (a security message: always
    sent, quiet hours and caps or not), so a stolen password shows at once. A staff login has no
    customer: nothing here (audit records the event)."""
    for customer_id in await customers_named(ctx, event):
        data = _data(event) | {"client_address": event.client_address or "an unknown address"}
        await notify(ctx, customer_id, "new_device_login", NotificationCategory.security, NotificationPriority.high, data,
                     channels=CUSTOMER_CHANNELS, webhooks=False)  # fmt: skip
