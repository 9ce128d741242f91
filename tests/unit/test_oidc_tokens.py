"""Tokens of an external OpenID Connect issuer, verified by the edge against its JWKS URL.

A real HTTP server on loopback serves the JWKS; the identity worker is not involved (a stub
answers its key query with no keys), which is the wiring this test is about.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from api_edge.auth import AuthError, Authenticator
from contracts.common import Reply


class _NoIdentityKeys:
    timeout_s = 1.0

    class correlator:  # noqa: N801 - stands in for the edge's correlator
        @staticmethod
        async def send(*_: object, **__: object) -> Reply:
            return Reply.success({"keys": []})


@pytest.fixture
def issuer(monkeypatch):  # type: ignore[no-untyped-def]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "ext-1", "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CBS_OIDC_JWKS_URL", f"http://127.0.0.1:{server.server_port}/jwks")
    monkeypatch.setenv("CBS_OIDC_ISSUER", "https://idp.example")
    monkeypatch.setenv("CBS_OIDC_AUDIENCE", "cbs")
    yield key
    server.shutdown()


def _token(key, **claims):  # type: ignore[no-untyped-def]
    now = int(time.time())
    base = {"iss": "https://idp.example", "aud": "cbs", "sub": "ext-user", "iat": now, "exp": now + 300,
            "roles": ["auditor"]}  # fmt: skip
    return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": "ext-1"})


async def test_an_external_issuers_token_maps_its_roles_to_permissions(issuer) -> None:  # type: ignore[no-untyped-def]
    who = await Authenticator(_NoIdentityKeys()).principal_from(f"Bearer {_token(issuer)}", None)
    assert (who.subject, who.via) == ("ext-user", "oidc")
    assert who.may("audit:read") and not who.may("transfers:create")


@pytest.mark.parametrize("claims", [{"aud": "someone-else"}, {"iss": "https://evil.example"}, {"exp": 1}])
async def test_a_wrong_audience_issuer_or_expiry_is_refused(issuer, claims) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthError) as refused:
        await Authenticator(_NoIdentityKeys()).principal_from(f"Bearer {_token(issuer, **claims)}", None)
    assert refused.value.status == 401
