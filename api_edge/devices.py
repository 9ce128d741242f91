"""The device a password login comes from, as the edge tells identity (issue 13: new-device
sign-in alerts, `contracts.identity.IssueToken.device_*`). Pure.

- fingerprint: SHA-256 hex of `X-Device-Id` (a mobile app's install id) when the client sends one,
  else of the User-Agent with its digits taken out, so that a browser's monthly update is not a new
  device. Each is prefixed by its kind, so neither can pass for the other. Identity gets only the
  hash: an install id is a stable tracking identifier and rests nowhere.
- label: what the customer is told the device is: the User-Agent's product tokens (`name/version`;
  comments, the `Mozilla/5.0` every browser sends and the engines' tokens left out), at most
  `MAX_LABEL_TOKENS`, within `DEVICE_LABEL_MAX_CHARS`. Whoever logs in writes it into the customer's
  email and SMS, so nothing but product tokens passes (no spaces inside one, no `:`, no markup).
- address: the client's IP address (the connection's peer, or what a trusted proxy said), if it is one.

A User-Agent is no secret: a client that copies the customer's exact browser string, sending no
`X-Device-Id`, is taken for the customer's browser. The alert shows a stolen password used from
somewhere else; it authenticates nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from contracts.identity import DEVICE_LABEL_MAX_CHARS

UNKNOWN_DEVICE = "unknown device"
MAX_LABEL_TOKENS = 3
# `name/version`, each part of the characters product tokens use in practice.
_PRODUCT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._+-]{0,39})/[A-Za-z0-9._+-]{1,30}$")
_COMMENT = re.compile(r"\([^()]*\)")
# Tokens every browser sends that say nothing to a customer.
_NOISE = frozenset({"mozilla", "applewebkit", "gecko", "khtml", "like"})


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(device_id: str | None, user_agent: str | None) -> str:
    """SHA-256 hex of the device's identifier: `X-Device-Id`, else the User-Agent less its digits."""
    if device_id:
        return _sha256("device-id:" + device_id)
    versionless = " ".join(re.sub(r"\d+", "", user_agent or "").lower().split())
    return _sha256("user-agent:" + versionless)


def label(user_agent: str | None) -> str:
    """The User-Agent's telling product tokens, e.g. `Chrome/120.0.0.0 Safari/537.36`."""
    chosen: list[str] = []
    for token in _COMMENT.sub(" ", user_agent or "").split():
        found = _PRODUCT.match(token)
        if found is None or found.group(1).lower() in _NOISE:
            continue
        if len(" ".join([*chosen, token])) > DEVICE_LABEL_MAX_CHARS:
            break
        chosen.append(token)
        if len(chosen) == MAX_LABEL_TOKENS:
            break
    return " ".join(chosen) or UNKNOWN_DEVICE


def address(host: str | None) -> str | None:
    """The client's IP address as text, or None when the peer is not one (a test transport, a socket)."""
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))  # an IPv6 zone says nothing about the client
    except ValueError:
        return None
