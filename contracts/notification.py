"""Messages of the notification worker (banking-rules §6; issue 13).

The worker turns other workers' events into notifications from templates (Jinja2, sandboxed,
versioned, per language), under the recipient's preferences, quiet hours and daily caps, and
sends them by email (SMTP), SMS (a provider), signed webhooks and the in-app inbox. It learns
recipients' addresses from `customer.registered` / `customer.updated`.

A decision to send is a `pending` notification stored with the inbox row of the event that
caused it; a sender loop claims due ones, records every attempt in the delivery log and sends
each at most once per attempt. Statuses: `pending` → `sent` → `delivered`; `sent`/`pending` →
`retry` → `sent` | `failed`; `pending`/`retry` → `cancelled` (also 24 h unsent).

Webhook receivers verify `CBS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
with the endpoint's secret, and refuse a `t` more than 300 s from their clock (replay window).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, Field

from contracts.common import Command, Contract, Event, cursor_field, page_size
from contracts.identity import Secret

MAX_TEMPLATE_CHARS = 20_000
TEMPLATE_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
LANGUAGE_PATTERN = r"^[a-z]{2}$"
SIGNATURE_HEADER = "CBS-Signature"
SIGNATURE_TOLERANCE_S = 300  # a receiver refuses a signature older (or newer) than this: the replay window


class NotificationChannel(StrEnum):
    email = "email"
    sms = "sms"
    webhook = "webhook"
    in_app = "in_app"


class NotificationCategory(StrEnum):
    transaction = "transaction"
    account = "account"
    security = "security"
    payment = "payment"
    loan = "loan"
    system = "system"
    marketing = "marketing"
    alert = "alert"


class NotificationPriority(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class NotificationStatus(StrEnum):
    pending = "pending"
    sending = "sending"  # an attempt is under way (claimed by a sender)
    sent = "sent"
    delivered = "delivered"
    retry = "retry"
    failed = "failed"
    cancelled = "cancelled"


class NotificationError(StrEnum):
    """Stable refusal codes of the notification worker."""

    template_not_found = "template_not_found"
    template_invalid = "template_invalid"  # does not parse, or renders with a variable missing
    recipient_unknown = "recipient_unknown"  # no address learnt for the customer on that channel
    endpoint_not_found = "endpoint_not_found"
    notification_not_found = "notification_not_found"
    invalid_url = "invalid_url"


# --- views -----------------------------------------------------------------------------------


class PreferenceRule(Contract):
    channel: NotificationChannel
    category: NotificationCategory
    enabled: bool


class Preferences(Contract):
    """A customer's preferences: with no rule stored for a (channel, category) it is on, except
    marketing, which needs `marketing_consent`."""

    customer_id: UUID
    rules: list[PreferenceRule] = Field(default_factory=list, max_length=64)
    marketing_consent: bool = False
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN, description="default: the customer's")
    time_zone: str | None = Field(default=None, max_length=64, description="IANA zone; default: the bank's")
    quiet_start: str = Field(default="22:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    quiet_end: str = Field(default="07:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")


class NotificationView(Contract):
    notification_id: UUID
    customer_id: UUID | None
    channel: NotificationChannel
    category: NotificationCategory
    priority: NotificationPriority
    template: str
    subject: str
    body: str
    status: NotificationStatus
    attempts: int
    scheduled_at: datetime
    expires_at: datetime
    created_at: datetime
    read_at: datetime | None = None
    error: str | None = None


class NotificationPage(Contract):
    items: list[NotificationView]
    next_cursor: str | None = None


class TemplateView(Contract):
    key: str
    version: int
    language: str
    subject: str
    body: str
    html: str | None = None
    created_at: datetime


class TemplateList(Contract):
    items: list[TemplateView]


class WebhookEndpointView(Contract):
    endpoint_id: UUID
    url: str
    categories: list[NotificationCategory]
    customer_id: UUID | None
    owner: str
    enabled: bool
    consecutive_failures: int
    disabled_at: datetime | None = None
    secret: str | None = Field(default=None, description="the signing secret: given once, when registered")


class WebhookEndpointList(Contract):
    items: list[WebhookEndpointView]


class SentMessage(Contract):
    notification_ids: list[UUID]
    refused: dict[str, str] = Field(default_factory=dict, description="channel -> why none was made for it")


# --- commands --------------------------------------------------------------------------------


class GetPreferences(Command):
    """Result: `Preferences` (the defaults when none are stored). A customer reads only their own."""

    routing_key: ClassVar[str] = "notification.get_preferences"
    read_only: ClassVar[bool] = True

    customer_id: UUID


class SetPreferences(Command):
    """Replace a customer's preferences as a whole. Result: `Preferences`."""

    routing_key: ClassVar[str] = "notification.set_preferences"

    preferences: Preferences


class ListNotifications(Command):
    """A customer's in-app inbox, newest first. Result: `NotificationPage`."""

    routing_key: ClassVar[str] = "notification.list_notifications"
    read_only: ClassVar[bool] = True

    customer_id: UUID
    unread_only: bool = False
    limit: int = page_size(default=20, most=100)
    cursor: str | None = cursor_field()


class MarkRead(Command):
    """Mark in-app notifications read. Result: `{"marked": n}`."""

    routing_key: ClassVar[str] = "notification.mark_read"

    customer_id: UUID
    notification_ids: list[UUID] = Field(min_length=1, max_length=100)


class ListTemplates(Command):
    """The latest version of every template per language. Result: `TemplateList`."""

    routing_key: ClassVar[str] = "notification.list_templates"
    read_only: ClassVar[bool] = True

    key: str | None = Field(default=None, pattern=TEMPLATE_KEY_PATTERN)


class DefineTemplate(Command):
    """A template's next version in a language (Jinja2, sandboxed; every variable must be given
    when it renders). Result: `TemplateView`. Refusals: template_invalid."""

    routing_key: ClassVar[str] = "notification.define_template"

    key: str = Field(pattern=TEMPLATE_KEY_PATTERN)
    language: str = Field(default="en", pattern=LANGUAGE_PATTERN)
    subject: str = Field(min_length=1, max_length=500)
    body: str = Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)
    html: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)


class ListWebhookEndpoints(Command):
    """Result: `WebhookEndpointList`; a partner sees only its own."""

    routing_key: ClassVar[str] = "notification.list_webhook_endpoints"
    read_only: ClassVar[bool] = True


class RegisterWebhookEndpoint(Command):
    """An endpoint that receives the notifications of its categories (and, with `customer_id`, of
    that customer only), signed with a secret made here and returned once. Result:
    `WebhookEndpointView`. Refusals: invalid_url."""

    routing_key: ClassVar[str] = "notification.register_webhook_endpoint"

    endpoint_id: UUID = Field(description="caller-chosen id")
    url: str = Field(min_length=8, max_length=2_000)
    categories: list[NotificationCategory] = Field(min_length=1, max_length=8)
    customer_id: UUID | None = None


class EnableWebhookEndpoint(Command):
    """Re-enable an endpoint disabled after repeated failures (its failure count restarts).
    Result: `WebhookEndpointView`. Refusals: endpoint_not_found."""

    routing_key: ClassVar[str] = "notification.enable_webhook_endpoint"

    endpoint_id: UUID


class SendMessage(Command):
    """Send one message now from a template: a one-time password (category security, priority
    critical: past quiet hours and caps), or an operator's test. To a customer by their learnt
    address, or to `to` (an email address or an E.164 number). Result: `SentMessage`. Refusals:
    template_not_found, template_invalid, recipient_unknown."""

    routing_key: ClassVar[str] = "notification.send_message"

    send_id: UUID = Field(description="caller-chosen id of the message (idempotent)")
    channels: list[NotificationChannel] = Field(min_length=1, max_length=2, description="email and/or sms")
    customer_id: UUID | None = None
    to: str | None = Field(default=None, max_length=320)
    template: str = Field(pattern=TEMPLATE_KEY_PATTERN)
    data: dict[str, Any] = Field(default_factory=dict)
    secret_data: dict[str, Secret] = Field(
        default_factory=dict, max_length=8,
        description="template variables that are secrets (a one-time password's `code`): rendered into the message, "
        "never kept in the notification's data, redacted in audit",
    )  # fmt: skip
    category: NotificationCategory = NotificationCategory.security
    priority: NotificationPriority = NotificationPriority.critical
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)
    expires_in_s: int = Field(default=300, ge=30, le=86_400, description="unsent by then: cancelled (an OTP: 5 min)")


class GetNotification(Command):
    """One notification with its status and delivery attempts so far. Result: `NotificationView`
    (a customer: their own). Refusals: notification_not_found."""

    routing_key: ClassVar[str] = "notification.get_notification"
    read_only: ClassVar[bool] = True

    notification_id: UUID


class GetStatistics(Command):
    """Notifications per channel per day by status. Result: `{"items": [...]}`."""

    routing_key: ClassVar[str] = "notification.get_statistics"
    read_only: ClassVar[bool] = True

    days: int = Field(default=7, ge=1, le=90)


# --- events ----------------------------------------------------------------------------------


class _NotificationFact(Event):
    notification_id: UUID
    customer_id: UUID | None
    channel: NotificationChannel
    category: NotificationCategory
    template: str
    attempt: int = Field(ge=0)
    correlation_id: str | None = Field(default=None, description="of the event or command that caused it")
    occurred_at: AwareDatetime


class NotificationSent(_NotificationFact):
    """Handed to the provider (SMTP accepted it, the SMS provider took it)."""

    routing_key: ClassVar[str] = "notification.sent"

    provider: str
    provider_message_id: str | None = None


class NotificationDelivered(_NotificationFact):
    """Known delivered: the webhook receiver answered 2xx, the in-app inbox holds it."""

    routing_key: ClassVar[str] = "notification.delivered"

    provider: str


class NotificationFailed(_NotificationFact):
    """Given up (status failed): attempts used, a template variable missing, an endpoint disabled; or
    cancelled unsent (`error_code` expired: past its expiry, 24 h by default)."""

    routing_key: ClassVar[str] = "notification.failed"

    error_code: str
    error: str


COMMANDS: tuple[type[Command], ...] = (
    GetPreferences, SetPreferences, ListNotifications, MarkRead, ListTemplates, DefineTemplate,
    ListWebhookEndpoints, RegisterWebhookEndpoint, EnableWebhookEndpoint, SendMessage, GetNotification, GetStatistics,
)  # fmt: skip
EVENTS: tuple[type[Event], ...] = (NotificationSent, NotificationDelivered, NotificationFailed)
