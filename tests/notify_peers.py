"""The notification worker's peers in tests: what a mail server and a webhook receiver do with
what it sends. Shared by the integration tests (worker in the test's process) and the end-to-end
ones (worker as a real process)."""

from __future__ import annotations

import hashlib
import hmac
import time
from email import message_from_bytes
from typing import Any

from contracts import notification


class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts (`Controller(Mailbox(), ...)`)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    def to(self, address: str) -> list[Any]:
        return [m for rcpts, m in self.messages if address in rcpts]


def signature_verifies(secret: str, header: str, body: bytes) -> bool:
    """`CBS-Signature` checked the way the contract (and README, "Webhooks") tells a receiver to,
    independently of the worker's code: `t=<unix s>,v1=<hex HMAC-SHA-256 of "t." + body>`, fresh."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > notification.SIGNATURE_TOLERANCE_S:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))
