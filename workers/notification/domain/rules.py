"""Whether, where and when a notification goes (banking-rules §6), decided without I/O.

- Preferences: with no rule stored for (channel, category) it is on, except marketing, which needs
  the customer's consent; security messages and one-time passwords always go.
- Quiet hours (22:00–07:00 in the recipient's zone): SMS below `critical` waits until they end;
  email, in-app and webhook are unaffected.
- Daily caps per recipient (SMS 10, email 20): over the cap the message goes in-app instead.
- `security` and `critical` bypass quiet hours and caps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from contracts.notification import NotificationCategory, NotificationChannel, NotificationPriority

DAILY_CAPS: Mapping[NotificationChannel, int] = {NotificationChannel.sms: 10, NotificationChannel.email: 20}
QUIET_CHANNELS = frozenset({NotificationChannel.sms})
EXPIRY = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Recipient:
    """What the worker knows of a customer: addresses learnt from events, preferences stored."""

    email: str | None
    phone: str | None
    language: str
    time_zone: str
    quiet_start: dt.time
    quiet_end: dt.time
    marketing_consent: bool
    rules: Mapping[tuple[NotificationChannel, NotificationCategory], bool]


def urgent(category: NotificationCategory, priority: NotificationPriority) -> bool:
    """Security and critical messages go whatever the hour and the day's count."""
    return category is NotificationCategory.security or priority is NotificationPriority.critical


def allowed(recipient: Recipient, channel: NotificationChannel, category: NotificationCategory, priority: NotificationPriority) -> bool:
    """Preferences: a stored rule decides; none stored, all is on but marketing (needs consent)."""
    if category is NotificationCategory.security:
        return True
    if category is NotificationCategory.marketing and not recipient.marketing_consent:
        return False
    return recipient.rules.get((channel, category), True)


def in_quiet_hours(local: dt.time, start: dt.time, end: dt.time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # across midnight, e.g. 22:00–07:00


def quiet_until(now: dt.datetime, time_zone: str, start: dt.time, end: dt.time) -> dt.datetime | None:
    """When quiet hours end, if `now` (aware) is inside them in `time_zone`; else None."""
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone)
    if not in_quiet_hours(local.time(), start, end):
        return None
    end_day = local.date() if local.time() < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(end_day, end, tzinfo=zone).astimezone(dt.UTC)


def over_cap(channel: NotificationChannel, sent_today: int) -> bool:
    cap = DAILY_CAPS.get(channel)
    return cap is not None and sent_today >= cap


@dataclass(frozen=True)
class Placement:
    channel: NotificationChannel
    scheduled_at: dt.datetime
    expires_at: dt.datetime


def place(recipient: Recipient, channel: NotificationChannel, category: NotificationCategory, priority: NotificationPriority, *,
          now: dt.datetime, sent_today: int, expires_in: dt.timedelta = EXPIRY) -> Placement | None:  # fmt: skip
    """Where and when one message goes, or None when preferences keep it back."""
    if not allowed(recipient, channel, category, priority):
        return None
    expires_at = now + expires_in
    if urgent(category, priority):
        return Placement(channel, now, expires_at)
    if over_cap(channel, sent_today):
        if not allowed(recipient, NotificationChannel.in_app, category, priority):
            return None
        return Placement(NotificationChannel.in_app, now, expires_at)
    if channel in QUIET_CHANNELS:
        later = quiet_until(now, recipient.time_zone, recipient.quiet_start, recipient.quiet_end)
        if later is not None:
            return Placement(channel, later, max(expires_at, later + expires_in))
    return Placement(channel, now, expires_at)


def bank_day_start(now: dt.datetime, time_zone: str) -> dt.datetime:
    """00:00 of today in `time_zone`, in UTC: where daily caps restart (banking-rules §0)."""
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone)
    return dt.datetime.combine(local.date(), dt.time(0), tzinfo=zone).astimezone(dt.UTC)
