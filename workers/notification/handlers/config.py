"""The notification worker's settings, from the environment (README: configuration)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, fields


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass
class Config:
    sweep_s: float
    send_s: float
    batch: int
    lease: dt.timedelta
    retry_delay: dt.timedelta
    webhook_retry_delay: dt.timedelta
    webhook_disable_after: int
    webhook_timeout_s: float
    webhook_allow_private: bool
    smtp_host: str
    smtp_port: int
    smtp_starttls: bool
    smtp_tls: bool
    smtp_username: str | None
    smtp_password: str | None
    smtp_from: str
    smtp_timeout_s: float
    sms_provider: str
    sms_api_url: str | None
    sms_api_key: str | None
    sms_timeout_s: float
    security_email: str | None
    bank_time_zone: str
    quiet_start: dt.time  # a recipient's quiet hours until they store their own (banking-rules §6)
    quiet_end: dt.time
    default_currency: str


def load() -> Config:
    env = os.environ.get
    return Config(
        sweep_s=_float("CBS_NOTIFY_SWEEP_S", 1.0),
        send_s=_float("CBS_NOTIFY_SEND_S", 0.2),
        batch=int(env("CBS_NOTIFY_BATCH", "20")),
        lease=dt.timedelta(seconds=_float("CBS_NOTIFY_LEASE_S", 120)),
        retry_delay=dt.timedelta(seconds=_float("CBS_NOTIFY_RETRY_DELAY_S", 300)),
        webhook_retry_delay=dt.timedelta(seconds=_float("CBS_NOTIFY_WEBHOOK_RETRY_DELAY_S", 60)),
        webhook_disable_after=int(env("CBS_NOTIFY_WEBHOOK_DISABLE_AFTER", "5")),
        webhook_timeout_s=_float("CBS_NOTIFY_WEBHOOK_TIMEOUT_S", 10),
        webhook_allow_private=env("CBS_NOTIFY_WEBHOOK_ALLOW_PRIVATE", "0") == "1",
        smtp_host=env("CBS_SMTP_HOST", "127.0.0.1"),
        smtp_port=int(env("CBS_SMTP_PORT", "1025")),
        smtp_starttls=env("CBS_SMTP_STARTTLS", "0") == "1",
        smtp_tls=env("CBS_SMTP_TLS", "0") == "1",
        smtp_username=env("CBS_SMTP_USERNAME") or None,
        smtp_password=env("CBS_SMTP_PASSWORD") or None,
        smtp_from=env("CBS_SMTP_FROM", "CBS Bank <no-reply@cbs.local>"),
        smtp_timeout_s=_float("CBS_SMTP_TIMEOUT_S", 10),
        sms_provider=env("CBS_SMS_PROVIDER", "dev"),
        sms_api_url=env("CBS_SMS_API_URL") or None,
        sms_api_key=env("CBS_SMS_API_KEY") or None,
        sms_timeout_s=_float("CBS_SMS_TIMEOUT_S", 10),
        security_email=env("CBS_NOTIFY_SECURITY_EMAIL") or None,
        bank_time_zone=env("CBS_BANK_TIME_ZONE", "Asia/Kolkata"),
        quiet_start=_quiet_hours()[0],
        quiet_end=_quiet_hours()[1],
        default_currency=env("CBS_CURRENCIES", "INR").split(",")[0].strip() or "INR",  # banking-rules §0
    )


def _quiet_hours() -> tuple[dt.time, dt.time]:
    """CBS_NOTIFY_QUIET_HOURS, `HH:MM-HH:MM` in the recipient's time zone; equal ends: none."""
    text = os.environ.get("CBS_NOTIFY_QUIET_HOURS", "22:00-07:00")
    start, _, end = text.partition("-")
    return dt.time.fromisoformat(start.strip()), dt.time.fromisoformat(end.strip())


CONFIG = load()


def reload() -> Config:
    """Read the environment again into the one `CONFIG` every module holds (a test that points the
    worker at its own SMTP server). The duties' intervals stay as `routes.py` read them."""
    fresh = load()
    for f in fields(Config):
        setattr(CONFIG, f.name, getattr(fresh, f.name))
    return CONFIG
