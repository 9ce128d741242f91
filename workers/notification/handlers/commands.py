"""Commands of the notification worker: preferences, the in-app inbox, templates, webhook
endpoints, one-off messages (one-time passwords, an operator's test) and statistics."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bus.actor import PARTNER, owner_only
from bus.handling import Context
from bus.paging import cursor_or_refusal, decode_time_id, page_of
from contracts.common import Reply
from contracts.notification import (
    NotificationCategory, NotificationChannel, DefineTemplate, EnableWebhookEndpoint, GetNotification, GetPreferences, GetStatistics, ListNotifications,
    ListTemplates, ListWebhookEndpoints, MarkRead, NotificationError, NotificationPage, NotificationView, PreferenceRule,
    Preferences, RegisterWebhookEndpoint, SendMessage, SentMessage, SetPreferences, TemplateList, TemplateView,
    WebhookEndpointList, WebhookEndpointView,
)  # fmt: skip
from workers.notification import store
from workers.notification.domain import rules, templates
from workers.notification.handlers import channels, triggers
from workers.notification.handlers.config import CONFIG

# --- preferences ----------------------------------------------------------------------------------


def _preferences(customer_id: UUID, row: Any) -> Preferences:
    if row is None:
        return Preferences(customer_id=customer_id)
    return Preferences(
        customer_id=customer_id, rules=[PreferenceRule(**r) for r in row["rules"]],
        marketing_consent=row["marketing_consent"], language=row["language"], time_zone=row["time_zone"],
        quiet_start=row["quiet_start"].strftime("%H:%M"), quiet_end=row["quiet_end"].strftime("%H:%M"),
    )  # fmt: skip


async def get_preferences(ctx: Context, cmd: GetPreferences) -> Reply:
    return Reply.success(_preferences(cmd.customer_id, await store.preference(ctx.conn, cmd.customer_id)))


async def set_preferences(ctx: Context, cmd: SetPreferences) -> Reply:
    p = cmd.preferences
    if p.time_zone is not None:
        try:
            ZoneInfo(p.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            return Reply.refusal("invalid_message", f"unknown time zone {p.time_zone!r}")
    kept = {(r.channel, r.category): r for r in p.rules}  # the last rule of a pair wins
    await store.set_preference(ctx.conn, p.customer_id, [r.model_dump(mode="json") for r in kept.values()],
                               p.marketing_consent, p.language, p.time_zone, dt.time.fromisoformat(p.quiet_start),
                               dt.time.fromisoformat(p.quiet_end), ctx.now)  # fmt: skip
    return Reply.success(_preferences(p.customer_id, await store.preference(ctx.conn, p.customer_id)))


# --- the in-app inbox -----------------------------------------------------------------------------


def view(row: Any) -> NotificationView:
    return NotificationView(
        notification_id=row["notification_id"], customer_id=row["customer_id"], channel=row["channel"],
        category=row["category"], priority=row["priority"], template=row["template"], subject=row["subject"],
        body=row["body"], status=row["status"], attempts=row["attempts"], scheduled_at=row["scheduled_at"],
        expires_at=row["expires_at"], created_at=row["created_at"], read_at=row["read_at"], error=row["error"],
    )  # fmt: skip


async def list_notifications(ctx: Context, cmd: ListNotifications) -> Reply:
    after, refused = cursor_or_refusal(cmd.cursor, decode_time_id)
    if refused is not None:
        return refused
    found = await store.inbox(ctx.conn, cmd.customer_id, cmd.unread_only, after, cmd.limit + 1)
    page, cursor = page_of(found, cmd.limit, lambda r: (r["created_at"].isoformat(), r["notification_id"]))
    return Reply.success(NotificationPage(items=[view(r) for r in page], next_cursor=cursor))


async def mark_read(ctx: Context, cmd: MarkRead) -> Reply:
    return Reply.success({"marked": await store.mark_read(ctx.conn, cmd.customer_id, list(cmd.notification_ids), ctx.now)})


# --- templates ------------------------------------------------------------------------------------


def _template_view(row: Any) -> TemplateView:
    return TemplateView(key=row["key"], version=row["version"], language=row["language"], subject=row["subject"],
                        body=row["body"], html=row["html"], created_at=row["created_at"])  # fmt: skip


async def list_templates(ctx: Context, cmd: ListTemplates) -> Reply:
    return Reply.success(TemplateList(items=[_template_view(r) for r in await store.latest_templates(ctx.conn, cmd.key)]))


async def define_template(ctx: Context, cmd: DefineTemplate) -> Reply:
    why = templates.check(cmd.subject, cmd.body, cmd.html)
    if why is not None:
        return Reply.refusal(NotificationError.template_invalid, why)
    by = ctx.actor.subject if ctx.actor else "unknown"
    row = await store.add_template(ctx.conn, cmd.key, cmd.language, cmd.subject, cmd.body, cmd.html, by, ctx.now)
    return Reply.success(_template_view(row))


async def seed_templates(ctx: Context) -> None:
    """Start-up: the shipped templates' first versions, where missing."""
    await store.seed_templates(ctx.conn, templates.DEFAULTS, ctx.now)


# --- webhook endpoints ----------------------------------------------------------------------------


def _endpoint_view(row: Any, *, with_secret: bool = False) -> WebhookEndpointView:
    return WebhookEndpointView(
        endpoint_id=row["endpoint_id"], url=row["url"], categories=row["categories"], customer_id=row["customer_id"],
        owner=row["owner"], enabled=row["enabled"], consecutive_failures=row["consecutive_failures"],
        disabled_at=row["disabled_at"], secret=row["secret"] if with_secret else None,
    )  # fmt: skip


def _partner(ctx: Context) -> bool:
    """A partner on its own broker user, or a partner's login or API key through the edge."""
    return ctx.actor is not None and (ctx.actor.via == PARTNER or "partner" in ctx.actor.roles)


def _owner(ctx: Context) -> str:
    return ctx.actor.subject if ctx.actor else "unknown"


# A partner's endpoint gets the bank's system notices only: every other category carries customers'
# data, which a partner's own grant does not reach (staff register endpoints for those).
PARTNER_CATEGORIES = frozenset({NotificationCategory.system})


def _url_refusal(url: str) -> Reply | None:
    """An http(s) URL with a host; a literal loopback, private or link-local address only when
    CBS_NOTIFY_WEBHOOK_ALLOW_PRIVATE=1 (development), so an endpoint cannot aim the worker inward.
    Host names are not resolved here: a network policy on the worker's egress is the real fence."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return Reply.refusal(NotificationError.invalid_url, "an endpoint is an http(s) URL with a host")
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        address = None
    inward = parts.hostname == "localhost" or (address is not None and not address.is_global)
    if inward and not CONFIG.webhook_allow_private:
        return Reply.refusal(NotificationError.invalid_url, "a loopback, private or link-local address")
    return None


async def list_webhook_endpoints(ctx: Context, cmd: ListWebhookEndpoints) -> Reply:
    rows = await store.endpoints(ctx.conn, _owner(ctx) if _partner(ctx) else None)
    return Reply.success(WebhookEndpointList(items=[_endpoint_view(r) for r in rows]))


async def register_webhook_endpoint(ctx: Context, cmd: RegisterWebhookEndpoint) -> Reply:
    refused = _url_refusal(cmd.url)
    if refused is not None:
        return refused
    if _partner(ctx) and not set(cmd.categories) <= PARTNER_CATEGORIES:
        return Reply.refusal("forbidden", "a partner's endpoint receives system notices only")
    row = await store.add_endpoint(ctx.conn, cmd.endpoint_id, cmd.url, channels.new_secret(),
                                   [c.value for c in cmd.categories], cmd.customer_id, _owner(ctx), ctx.now)  # fmt: skip
    if row is None:
        return Reply.refusal("endpoint_exists", "an endpoint with this id exists")
    return Reply.success(_endpoint_view(row, with_secret=True))


async def enable_webhook_endpoint(ctx: Context, cmd: EnableWebhookEndpoint) -> Reply:
    row = await store.endpoint(ctx.conn, cmd.endpoint_id, lock=True)
    if row is None or (_partner(ctx) and row["owner"] != _owner(ctx)):
        return Reply.refusal(NotificationError.endpoint_not_found, "no such endpoint")
    return Reply.success(_endpoint_view(await store.enable_endpoint(ctx.conn, cmd.endpoint_id)))


# --- one-off messages -----------------------------------------------------------------------------


def _is_phone(to: str) -> bool:
    return to.startswith("+") and to[1:].isdigit() and 8 <= len(to) <= 16


async def send_message(ctx: Context, cmd: SendMessage) -> Reply:
    """One message now, by the recipient's learnt address or `to`. Security and critical go past
    quiet hours and caps (rules.place); the id of each is derived from `send_id`."""
    if cmd.customer_id is None and cmd.to is None:
        return Reply.refusal(NotificationError.recipient_unknown, "name a customer_id or a `to` address")
    if await store.template(ctx.conn, cmd.template, cmd.language or "en", "en") is None:
        return Reply.refusal(NotificationError.template_not_found, f"no template {cmd.template!r}")
    refused: dict[str, str] = {}
    made = []
    expires_in = dt.timedelta(seconds=cmd.expires_in_s)
    cause = f"send:{cmd.send_id}"
    for channel in cmd.channels:
        if channel not in (NotificationChannel.email, NotificationChannel.sms):
            refused[channel.value] = "only email and sms"
            continue
        scheduled_at, expires_at = ctx.now, ctx.now + expires_in
        if cmd.to is not None:
            address = cmd.to if (channel is NotificationChannel.sms) == _is_phone(cmd.to) else None
            language, data = cmd.language or "en", cmd.data
        else:
            assert cmd.customer_id is not None
            recipient, name = await triggers.recipient_of(ctx, cmd.customer_id)
            address = recipient.phone if channel is NotificationChannel.sms else recipient.email
            language, data = cmd.language or recipient.language, {"name": name, **cmd.data}
            placed = rules.place(recipient, channel, cmd.category, cmd.priority, now=ctx.now, sent_today=0,
                                 expires_in=expires_in)  # fmt: skip
            if placed is None:
                refused[channel.value] = "the customer's preferences keep it back"
                continue
            # A marketing or other non-urgent message waits for the recipient's quiet hours to end.
            scheduled_at, expires_at = placed.scheduled_at, placed.expires_at
        if not address:
            refused[channel.value] = "no address for this channel"
            continue
        made_id = await triggers.store_one(
            ctx, notification_id=triggers.notification_id_of(cause, channel), customer_id=cmd.customer_id, channel=channel,
            address=address, endpoint_id=None, category=cmd.category, priority=cmd.priority, template_key=cmd.template,
            language=language, data=data, scheduled_at=scheduled_at, expires_at=expires_at,
            secret_data={k: v.get_secret_value() for k, v in cmd.secret_data.items()},
        )  # fmt: skip
        if made_id is None:
            refused[channel.value] = "template_invalid"
        else:
            made.append(made_id)
    if not made and refused and all(v == "template_invalid" for v in refused.values()):
        return Reply.refusal(NotificationError.template_invalid, "the template does not render with this data")
    if not made:
        return Reply.refusal(NotificationError.recipient_unknown, "no channel could take it", refused)
    return Reply.success(SentMessage(notification_ids=made, refused=refused))


async def get_notification(ctx: Context, cmd: GetNotification) -> Reply:
    row = await store.notification(ctx.conn, cmd.notification_id)
    if row is None:
        return Reply.refusal(NotificationError.notification_not_found, "no such notification")
    refused = owner_only(ctx.actor, row["customer_id"])
    if refused is not None:
        return Reply.refusal(NotificationError.notification_not_found, "no such notification")
    return Reply.success(view(row))


# --- statistics -----------------------------------------------------------------------------------


async def get_statistics(ctx: Context, cmd: GetStatistics) -> Reply:
    since = ctx.now - dt.timedelta(days=cmd.days)
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for r in await store.statistics(ctx.conn, since):
        entry = table.setdefault((r["day"].isoformat(), r["channel"]), {"day": r["day"].isoformat(), "channel": r["channel"],
                                                                         "total": 0, "by_status": {}})  # fmt: skip
        entry["total"] += r["n"]
        entry["by_status"][r["status"]] = r["n"]
    return Reply.success({"items": list(table.values())})



