"""The device the edge tells identity a password login comes from (issue 13: new-device sign-in
alerts): a fingerprint, never the identifier; a label of product tokens only; the client's address.
The token route runs in process, its gateway's correlator standing in for the bus."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from api_edge import devices
from api_edge.app import app
from api_edge.gateway import Gateway
from api_edge.limits import RateLimiter
from contracts import identity as c
from contracts.common import Command, Reply

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
          "Safari/537.36")  # fmt: skip
CHROME_NEXT = CHROME.replace("Chrome/120.0.0.0", "Chrome/121.0.6167.85")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


def test_the_fingerprint_is_a_hash_of_the_device_id_else_of_the_user_agent_less_its_digits() -> None:
    assert devices.fingerprint("install-42", CHROME) == hashlib.sha256(b"device-id:install-42").hexdigest()
    assert devices.fingerprint("install-42", FIREFOX) == devices.fingerprint("install-42", CHROME), "the id wins"
    assert devices.fingerprint(None, CHROME) == devices.fingerprint(None, CHROME_NEXT), "a browser update is no new device"
    assert devices.fingerprint(None, CHROME) != devices.fingerprint(None, FIREFOX)
    assert devices.fingerprint("", CHROME) == devices.fingerprint(None, CHROME), "an empty id is none"
    # An X-Device-Id that spells a User-Agent is not taken for that browser.
    assert devices.fingerprint("user-agent:x", None) != devices.fingerprint(None, "x")


def test_the_label_is_product_tokens_only() -> None:
    assert devices.label(CHROME) == "Chrome/120.0.0.0 Safari/537.36"
    assert devices.label(FIREFOX) == "Firefox/121.0"
    assert devices.label("CBSMobile/3.2.1 (Android 14; Pixel 8) okhttp/4.12.0") == "CBSMobile/3.2.1 okhttp/4.12.0"
    assert devices.label(None) == devices.label("") == "unknown device"
    # Whoever logs in writes the label into the customer's email: words, links and markup stay out.
    assert devices.label("Call 0800-FAKE-BANK now https://evil.example/x <b>hi</b>") == "unknown device"
    assert devices.label("a/1 b/2 c/3 d/4") == "a/1 b/2 c/3", "at most three tokens"
    long = " ".join(f"{'p' * 40}/{'1' * 30}" for _ in range(3))
    assert len(devices.label(long)) <= c.DEVICE_LABEL_MAX_CHARS
    for agent in (CHROME, FIREFOX, long, "x" * 5000, "ü/1 (;) ::/: </a>"):
        c.IssueToken(grant_type="password", username="asha", password="x", device_label=devices.label(agent))


def test_the_address_is_an_ip_or_nothing() -> None:
    assert devices.address("203.0.113.7") == "203.0.113.7"
    assert devices.address("2001:db8::1") == "2001:db8::1"
    assert devices.address("fe80::1%eth0") == "fe80::1"
    assert devices.address("testclient") is None and devices.address(None) is None


def test_identity_refuses_device_fields_that_are_not_a_hash_a_label_or_an_address() -> None:
    def grant(**device: Any) -> c.IssueToken:
        return c.IssueToken(grant_type="password", username="asha", password="x", **device)

    assert grant(device_fingerprint="a" * 64, device_label="Firefox/121.0", client_address="2001:db8::1")
    for bad in ({"device_fingerprint": "install-42"}, {"device_fingerprint": "A" * 64},
                {"device_label": "see https://evil.example"}, {"device_label": "x" * 101},
                {"client_address": "evil.example"}):  # fmt: skip
        with pytest.raises(ValidationError):
            grant(**bad)


# --- the token route in process ----------------------------------------------------------------


class _Correlator:
    """Stands in for the bus: records each command and answers a token pair."""

    def __init__(self) -> None:
        self.sent: list[Command] = []

    async def send(self, command: Command, **_: object) -> Reply:
        self.sent.append(command)
        return Reply.success({"access_token": "t", "expires_in": 1800, "scope": ""})


@pytest.fixture
async def edge() -> AsyncIterator[tuple[httpx.AsyncClient, _Correlator]]:
    correlator = _Correlator()
    app.state.gateway = Gateway(correlator, 1.0)  # type: ignore[arg-type]
    app.state.limiter = RateLimiter()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.9", 5000)),
                                     base_url="http://edge") as client:  # fmt: skip
            yield client, correlator
    finally:
        for name in ("gateway", "limiter"):
            delattr(app.state, name)


async def _login(client: httpx.AsyncClient, headers: dict[str, str], **form: str) -> httpx.Response:
    return await client.post("/v1/auth/token", headers=headers,
                             data={"grant_type": "password", "username": "asha", "password": "pw", **form})  # fmt: skip


async def test_the_token_route_sends_the_devices_hash_label_and_address_never_its_id(edge: Any) -> None:
    client, correlator = edge
    answer = await _login(client, {"X-Device-Id": "install-42", "User-Agent": "CBSMobile/3.2.1 okhttp/4.12.0"})
    assert answer.status_code == 200, answer.text
    (command,) = correlator.sent
    assert isinstance(command, c.IssueToken)
    assert command.device_fingerprint == hashlib.sha256(b"device-id:install-42").hexdigest()
    assert command.device_label == "CBSMobile/3.2.1 okhttp/4.12.0" and command.client_address == "198.51.100.9"
    assert "install-42" not in command.model_dump_json()

    await _login(client, {"User-Agent": CHROME})
    assert correlator.sent[-1].device_fingerprint == devices.fingerprint(None, CHROME)  # type: ignore[attr-defined]
    # The form cannot name the device: its fields are the route's, the device's are the edge's.
    await _login(client, {"User-Agent": CHROME}, device_fingerprint="0" * 64, device_label="Known/1")
    assert correlator.sent[-1].device_fingerprint == devices.fingerprint(None, CHROME)  # type: ignore[attr-defined]
    assert correlator.sent[-1].device_label == "Chrome/120.0.0.0 Safari/537.36"  # type: ignore[attr-defined]


async def test_a_device_id_past_its_bound_is_refused_before_anything_is_sent(edge: Any) -> None:
    client, correlator = edge
    refused = await _login(client, {"X-Device-Id": "x" * (c.DEVICE_ID_MAX_CHARS + 1)})
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_message", refused.text
    assert correlator.sent == []
    assert (await _login(client, {"X-Device-Id": "x" * c.DEVICE_ID_MAX_CHARS})).status_code == 200


async def test_other_grants_carry_no_device(edge: Any) -> None:
    client, correlator = edge
    await client.post("/v1/auth/token", headers={"X-Device-Id": "install-42"},
                      data={"grant_type": "refresh_token", "refresh_token": "r"})  # fmt: skip
    await client.post("/v1/auth/refresh", json={"refresh_token": "r"})
    assert [cmd.device_fingerprint for cmd in correlator.sent] == [None, None]  # type: ignore[attr-defined]


def test_no_worker_may_send_a_login_and_identity_may_publish_the_new_device_event() -> None:
    """The broker's topic permissions (ops/broker_users.py), unchanged by this: a login's device
    comes from the edge (or the operator's tools, which identity takes for the device themselves)."""
    import re

    from bus.settings import PROCESSES, WORKERS
    from ops.broker_users import permissions_of

    may_send = {p for p in PROCESSES if re.match(permissions_of(p).commands_write, c.IssueToken.routing_key)}
    assert may_send == {"edge", "ops", "dlq"}, may_send  # dlq: a replay keeps its first sender's user_id
    assert not may_send & set(WORKERS)
    publishers = {p for p in PROCESSES if re.match(permissions_of(p).events_write, c.NewDeviceLogin.routing_key)}
    assert publishers == {"identity", "dlq"}, publishers
