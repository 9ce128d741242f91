"""The edge verifies an access token's signature once and remembers the claims by the token's
whole text; a remembered token is still refused once expired, once its key is withdrawn, and
when its access was revoked."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api_edge import auth
from api_edge.auth import AuthError, Authenticator, KeySet
from contracts.common import Reply


class _Identity:
    """Publishes the keys it is given (identity's `GetJwks`), and counts the asks."""

    timeout_s = 1.0

    def __init__(self, jwks: list[dict[str, Any]]) -> None:
        self.jwks, self.asked = jwks, 0
        outer = self

        class correlator:  # noqa: N801 - stands in for the edge's correlator
            @staticmethod
            async def send(*_: object, **__: object) -> Reply:
                outer.asked += 1
                return Reply.success({"keys": outer.jwks})

        self.correlator = correlator


def _keypair() -> tuple[Ed25519PrivateKey, dict[str, Any]]:
    key = Ed25519PrivateKey.generate()
    jwk = jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return key, {**jwk, "kid": "k1", "alg": "EdDSA", "use": "sig"}


def _token(key: Ed25519PrivateKey, ttl_s: int = 300, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": auth.ISSUER, "aud": auth.AUDIENCE, "sub": "u-1", "iat": now, "exp": now + ttl_s,
            "permissions": ["ledger:write"], **claims}  # fmt: skip
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": "k1"})


@pytest.fixture
def counted_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = jwt.decode

    def decode(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", decode)
    return calls


async def test_a_token_is_verified_once_then_remembered(counted_decodes: list[str]) -> None:
    key, jwk = _keypair()
    authenticator = Authenticator(_Identity([jwk]))
    token = _token(key)
    for _ in range(3):
        who = await authenticator.principal_from(f"Bearer {token}", None)
        assert who.subject == "u-1" and "ledger:write" in who.permissions
    assert counted_decodes == [token]


async def test_a_remembered_token_is_refused_once_expired(counted_decodes: list[str]) -> None:
    key, jwk = _keypair()
    authenticator = Authenticator(_Identity([jwk]))
    token = _token(key, ttl_s=1)
    await authenticator.principal_from(f"Bearer {token}", None)
    time.sleep(1.1)
    with pytest.raises(AuthError, match="expired"):
        await authenticator.principal_from(f"Bearer {token}", None)
    assert token not in authenticator.verified


async def test_a_remembered_token_is_refused_once_its_key_is_withdrawn() -> None:
    key, jwk = _keypair()
    identity = _Identity([jwk])
    authenticator = Authenticator(identity)
    token = _token(key)
    await authenticator.principal_from(f"Bearer {token}", None)
    identity.jwks = [{**_keypair()[1], "kid": "k2"}]  # rotated: k1 is no longer published
    authenticator.keyset = KeySet(authenticator.keyset.keys, time.monotonic() - auth.JWKS_REFRESH_S - 1)
    with pytest.raises(AuthError, match="unknown key"):
        await authenticator.principal_from(f"Bearer {token}", None)


async def test_a_tampered_token_never_hits_the_cache() -> None:
    key, jwk = _keypair()
    authenticator = Authenticator(_Identity([jwk]))
    token = _token(key)
    await authenticator.principal_from(f"Bearer {token}", None)
    header, body, signature = token.split(".")
    forged_body = jwt.utils.base64url_encode(b'{"sub":"admin"}').decode()
    with pytest.raises(AuthError, match="invalid token"):
        await authenticator.principal_from(f"Bearer {header}.{forged_body}.{signature}", None)


async def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "TOKEN_CACHE_MAX", 3)
    key, jwk = _keypair()
    authenticator = Authenticator(_Identity([jwk]))
    tokens = [_token(key, sub=f"u-{i}") for i in range(5)]
    for token in tokens:
        await authenticator.principal_from(f"Bearer {token}", None)
    assert list(authenticator.verified) == tokens[2:]
