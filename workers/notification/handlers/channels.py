"""The channels' providers: real SMTP (aiosmtplib), SMS through a provider interface (the
development provider keeps messages in a table an operator reads; `http` posts to an SMS API),
signed webhooks (httpx) and the in-app inbox (the notification row itself).

Each answers one attempt with an `Outcome`; none raises for a refusal or an outage, so the
sender records every attempt."""

from __future__ import annotations

import datetime as dt
import json
import time
import secrets
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol

import aiosmtplib
import asyncpg
import httpx

from contracts.notification import SIGNATURE_HEADER, NotificationChannel
from workers.notification import store
from workers.notification.domain.delivery import Outcome, sign
from workers.notification.handlers.config import CONFIG, Config


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


# --- email ---------------------------------------------------------------------------------------


async def send_email(row: Any, config: Config = CONFIG) -> Outcome:
    message = EmailMessage()
    message["From"] = config.smtp_from
    message["To"] = row["address"]
    message["Subject"] = row["subject"]
    message["Message-ID"] = make_msgid(idstring=str(row["notification_id"]), domain="cbs.local")
    message["X-CBS-Notification-Id"] = str(row["notification_id"])
    message.set_content(row["body"])
    if row["html"]:
        message.add_alternative(row["html"], subtype="html")
    try:
        errors, response = await aiosmtplib.send(
            message, hostname=config.smtp_host, port=config.smtp_port, start_tls=config.smtp_starttls,
            use_tls=config.smtp_tls, username=config.smtp_username, password=config.smtp_password,
            timeout=config.smtp_timeout_s,
        )  # fmt: skip
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return Outcome(ok=False, error_code="recipient_refused", response=str(exc), permanent=True)
    except aiosmtplib.SMTPResponseException as exc:
        return Outcome(ok=False, error_code=f"smtp_{exc.code}", response=exc.message, permanent=500 <= exc.code < 600)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return Outcome(ok=False, error_code="smtp_unavailable", response=repr(exc))
    return Outcome(ok=True, provider_message_id=message["Message-ID"], response=response)


# --- SMS -----------------------------------------------------------------------------------------


class SmsProvider(Protocol):
    name: str

    async def send(self, conn: asyncpg.Connection, row: Any, attempt: int, now: dt.datetime) -> Outcome: ...


class DevSmsProvider:
    """Development: the message is kept in `sms_message`, where an operator (or a test) reads it."""

    name = "sms-dev"

    async def send(self, conn: asyncpg.Connection, row: Any, attempt: int, now: dt.datetime) -> Outcome:
        seq = await store.add_sms(conn, row["notification_id"], attempt, row["address"], row["body"], now)
        return Outcome(ok=True, delivered=True, provider_message_id=f"dev-{seq}", response="stored")


class HttpSmsProvider:
    """An SMS gateway's HTTP API: `POST {url}` with a bearer key and `{"to", "body", "reference"}`;
    2xx answers `{"id": …}`; 429 and 5xx are tried again (after `Retry-After`), other 4xx are final."""

    name = "sms-http"

    def __init__(self, url: str, key: str | None, timeout_s: float) -> None:
        self.url, self.key, self.timeout_s = url, key, timeout_s

    async def send(self, conn: asyncpg.Connection, row: Any, attempt: int, now: dt.datetime) -> Outcome:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        body = {"to": row["address"], "body": row["body"], "reference": f"{row['notification_id']}:{attempt}"}
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(ok=False, error_code="sms_unavailable", response=repr(exc))
        if response.is_success:
            try:
                message_id = str(response.json().get("id"))
            except (ValueError, AttributeError):
                message_id = None
            return Outcome(ok=True, provider_message_id=message_id, response=response.text[:500])
        transient = response.status_code == 429 or response.status_code >= 500
        return Outcome(ok=False, error_code=f"http_{response.status_code}", response=response.text[:500],
                       retry_after_s=_retry_after(response), permanent=not transient)  # fmt: skip


def sms_provider(config: Config = CONFIG) -> SmsProvider:
    if config.sms_provider == "http":
        assert config.sms_api_url, "CBS_SMS_PROVIDER=http needs CBS_SMS_API_URL"
        return HttpSmsProvider(config.sms_api_url, config.sms_api_key, config.sms_timeout_s)
    return DevSmsProvider()


# --- webhooks ------------------------------------------------------------------------------------


def webhook_body(row: Any) -> bytes:
    payload = row["payload"] or {}
    return json.dumps({
        "id": str(row["notification_id"]), "category": row["category"], "priority": row["priority"],
        "template": row["template"], "customer_id": str(row["customer_id"]) if row["customer_id"] else None,
        "subject": row["subject"], "body": row["body"], "data": payload, "created_at": row["created_at"].isoformat(),
    }, separators=(",", ":"), sort_keys=True).encode()  # fmt: skip


async def send_webhook(row: Any, url: str, secret: str, attempt: int, config: Config = CONFIG) -> Outcome:
    body = webhook_body(row)
    headers = {
        "Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, int(time.time()), body),
        "CBS-Notification-Id": str(row["notification_id"]), "CBS-Attempt": str(attempt),
    }  # fmt: skip
    try:
        async with httpx.AsyncClient(timeout=config.webhook_timeout_s, follow_redirects=False) as client:
            response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Outcome(ok=False, error_code="webhook_unreachable", response=repr(exc))
    if response.is_success:
        return Outcome(ok=True, delivered=True, provider_message_id=response.headers.get("X-Request-Id"),
                       response=f"{response.status_code} {response.text[:200]}")  # fmt: skip
    return Outcome(ok=False, error_code=f"http_{response.status_code}", response=response.text[:500],
                   retry_after_s=_retry_after(response), permanent=response.status_code == 410)  # fmt: skip


PROVIDERS: dict[NotificationChannel, str] = {NotificationChannel.email: "smtp", NotificationChannel.webhook: "webhook", NotificationChannel.in_app: "in_app"}


def provider_of(channel: NotificationChannel, config: Config = CONFIG) -> str:
    if channel is NotificationChannel.sms:
        return "sms-http" if config.sms_provider == "http" else "sms-dev"
    return PROVIDERS[channel]


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)
