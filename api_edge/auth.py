"""Who is asking, and may they: every route depends on `require(permission)`.

Access tokens are verified here, locally, with the identity worker's published keys (JWKS,
fetched over the bus and refreshed when an unknown key id shows up): no round trip per
request. API keys (`X-API-Key`) are checked by the identity worker once and cached briefly.
Either is refused as soon as this edge learns its access was revoked (a disabled user, a
logout, a revoked key: api_edge/revocations.py), which takes seconds, not the token's lifetime:
the revocation also drops the cached API key grants it covers.
Optionally, tokens of an external OpenID Connect issuer are accepted (CBS_OIDC_JWKS_URL).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from fastapi import Depends, Header, Request

from api_edge.limits import limit_for, retry_after_header
from api_edge.revocations import RevocationList, RevocationWatch
from contracts.common import Reply
from contracts.identity import AccessRevoked, RevocationScope

ISSUER = "cbs"
AUDIENCE = "cbs"
JWKS_REFRESH_S = 300.0  # keys are re-read at least this often...
JWKS_MIN_INTERVAL_S = 10.0  # ...and at most this often when an unknown kid arrives
API_KEY_CACHE_S = 60.0  # a backstop: a revocation drops the cached grants it covers at once
API_KEY_CACHE_MAX = 10_000
# Verified access tokens, by their whole text (signature included, so nothing unsigned can hit):
# an EdDSA verification was an eighth of the edge's CPU per request, for the same token each time.
# A hit still checks expiry, that its key is still published, and the revocation list.
TOKEN_CACHE_MAX = 10_000


class AuthError(Exception):
    """Answered as problem+json by the app's handler: 401, 403, 429 or 503."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, *,
                 who: Principal | None = None, permission: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or ({"WWW-Authenticate": 'Bearer realm="cbs"'} if status == 401 else {})
        # For a 403: who was refused and what they lacked (published as edge.access_denied).
        self.who, self.permission = who, permission


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: tuple[str, ...] = ()
    permissions: frozenset[str] = frozenset()
    customer_id: str | None = None
    via: str = "token"  # token, api_key or oidc

    def actor_header(self) -> str:
        """What workers see in `x-actor` (trusted only from the edge's broker user)."""
        return json.dumps({"sub": self.subject, "roles": list(self.roles), "customer_id": self.customer_id,
                           "via": self.via}, separators=(",", ":"))  # fmt: skip

    def may(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass
class KeySet:
    keys: dict[str, Any] = field(default_factory=dict)
    fetched_at: float = 0.0


@dataclass(frozen=True, slots=True)
class _CachedKey:
    at: float  # monotonic time of identity's answer
    principal: Principal
    key_id: str


class Authenticator:
    def __init__(self, gateway: Any, revocations: RevocationWatch | None = None) -> None:
        self.gateway = gateway
        self.keyset = KeySet()
        self.api_keys: dict[str, _CachedKey] = {}
        self.verified: dict[str, tuple[str, dict[str, Any]]] = {}  # token -> (kid, claims), oldest first
        self.oidc = _oidc_client()
        self.revocations = revocations
        if revocations is not None:
            revocations.listeners.append(self._forget)

    def _forget(self, fact: AccessRevoked) -> None:
        """Drop the cached API key grants a revocation covers: the next use asks identity again."""
        if fact.scope == RevocationScope.session:
            return
        user, key = str(fact.user_id), str(fact.key_id)
        for digest in [d for d, c in self.api_keys.items() if c.key_id == key or (
                fact.scope == RevocationScope.user and c.principal.subject == user)]:  # fmt: skip
            self.api_keys.pop(digest, None)

    def _revocation_list(self) -> RevocationList | None:
        if self.revocations is None:
            return None
        if not self.revocations.synced:
            # Not yet known what was revoked while this edge was away: refuse rather than guess.
            raise AuthError(503, "unavailable", "the edge is still learning revoked access from identity",
                            {"Retry-After": "2"})  # fmt: skip
        return self.revocations.revoked

    async def principal_from(self, authorization: str | None, api_key: str | None) -> Principal:
        if api_key:
            return await self._api_key(api_key)
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthError(401, "unauthenticated", "send `Authorization: Bearer <token>` or `X-API-Key`")
        return await self._token(authorization[7:].strip())

    async def _token(self, token: str) -> Principal:
        claims = await self._verified_claims(token)
        if isinstance(claims, Principal):
            return claims  # an external issuer's token
        if (revoked := self._revocation_list()) is not None:
            sid, api_key_id = claims.get("sid"), claims.get("api_key_id")
            refusal = revoked.token_refusal(str(claims["sub"]), float(claims["iat"]),
                                            str(sid) if sid else None, str(api_key_id) if api_key_id else None)  # fmt: skip
            if refusal is not None:
                raise AuthError(401, "unauthenticated", refusal)
        return Principal(
            subject=str(claims["sub"]),
            roles=tuple(claims.get("roles", ())),
            permissions=frozenset(claims.get("permissions", ())),
            customer_id=claims.get("customer_id"),
        )

    async def _verified_claims(self, token: str) -> dict[str, Any] | Principal:
        """The claims of a token this edge verified before (still unexpired, its key still
        published), else verified now and remembered."""
        cached = self.verified.get(token)
        if cached is not None:
            kid, claims = cached
            await self._refresh_keys_if_due()  # as a verification would: a withdrawn key ends its tokens
            if claims["exp"] > time.time() and kid in self.keyset.keys:
                return claims
            del self.verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, "unauthenticated", f"malformed token: {exc}") from exc
        kid = header.get("kid")
        key = await self._key(kid)
        if key is None:
            if self.oidc is not None:
                return self._oidc_token(token)
            raise AuthError(401, "unauthenticated", "token signed by an unknown key")
        try:
            claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub"]})  # fmt: skip
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, "unauthenticated", f"invalid token: {exc}") from exc
        if claims.get("typ", "access") != "access":
            raise AuthError(401, "unauthenticated", "not an access token")
        if len(self.verified) >= TOKEN_CACHE_MAX:
            del self.verified[next(iter(self.verified))]
        self.verified[token] = (str(kid), claims)
        return claims

    async def _refresh_keys_if_due(self) -> None:
        if time.monotonic() - self.keyset.fetched_at > JWKS_REFRESH_S:
            await self._refresh_keys()

    async def _key(self, kid: str | None) -> Any:
        stale = time.monotonic() - self.keyset.fetched_at > JWKS_REFRESH_S
        unknown = kid not in self.keyset.keys and time.monotonic() - self.keyset.fetched_at > JWKS_MIN_INTERVAL_S
        if stale or unknown:
            await self._refresh_keys()
        return self.keyset.keys.get(kid)

    async def _refresh_keys(self) -> None:
        from contracts import identity

        reply = await self._ask(identity.GetJwks())
        keys = {}
        for jwk in (reply.result or {}).get("keys", []) if reply.ok else []:
            keys[jwk["kid"]] = jwt.PyJWK.from_dict(jwk).key
        if keys:
            self.keyset = KeySet(keys, time.monotonic())

    async def _api_key(self, secret: str) -> Principal:
        from contracts import identity

        digest = hashlib.sha256(secret.encode()).hexdigest()  # the cache never holds the secret
        cached = self.api_keys.get(digest)
        if cached and time.monotonic() - cached.at < API_KEY_CACHE_S:
            return cached.principal  # a revocation of its key or user has dropped it already
        revoked = self.revocations.revoked if self.revocations is not None else None
        seq = revoked.seq if revoked is not None else 0
        reply = await self._ask(identity.VerifyApiKey(secret=secret))
        if not reply.ok or not isinstance(reply.result, dict):
            raise AuthError(401, "unauthenticated", "invalid API key")
        r = reply.result
        principal = Principal(subject=str(r["user_id"]), roles=tuple(r.get("roles", ())),
                              permissions=frozenset(r.get("permissions", ())), customer_id=r.get("customer_id"),
                              via="api_key")  # fmt: skip
        key_id = str(r.get("key_id"))
        if revoked is not None and (revoked.api_key_revoked(key_id) or revoked.learned_since(seq, principal.subject, key_id)):
            # Revoked while identity was answering: the newer news wins (the next try asks again).
            raise AuthError(401, "unauthenticated", "access revoked: this API key or its user")
        if len(self.api_keys) >= API_KEY_CACHE_MAX:
            self.api_keys.clear()
        self.api_keys[digest] = _CachedKey(time.monotonic(), principal, key_id)
        return principal

    async def _ask(self, command: Any) -> Reply:
        from bus.correlator import ReplyTimeout

        try:
            return await self.gateway.correlator.send(command, message_id=uuid.uuid4().hex, timeout_s=self.gateway.timeout_s)
        except ReplyTimeout as exc:
            raise AuthError(503, "unavailable", "identity did not answer in time") from exc

    def _oidc_token(self, token: str) -> Principal:
        assert self.oidc is not None
        client, issuer, audience = self.oidc
        try:
            key = client.get_signing_key_from_jwt(token).key
            claims = jwt.decode(token, key, algorithms=["RS256", "ES256", "EdDSA"], audience=audience, issuer=issuer)
        except jwt.PyJWTError as exc:
            raise AuthError(401, "unauthenticated", f"invalid token: {exc}") from exc
        roles = tuple(claims.get("roles", ()))
        from contracts.identity import ROLE_PERMISSIONS

        permissions = frozenset(p for role in roles for p in ROLE_PERMISSIONS.get(role, ()))
        return Principal(subject=str(claims["sub"]), roles=roles, permissions=permissions,
                         customer_id=claims.get("customer_id"), via="oidc")  # fmt: skip


def _oidc_client() -> tuple[jwt.PyJWKClient, str | None, str] | None:
    url = os.environ.get("CBS_OIDC_JWKS_URL")
    if not url:
        return None
    return jwt.PyJWKClient(url, cache_keys=True), os.environ.get("CBS_OIDC_ISSUER"), os.environ.get("CBS_OIDC_AUDIENCE", AUDIENCE)


async def principal(
    request: Request,
    authorization: str | None = Header(default=None, description="`Bearer <access token>`"),
    x_api_key: str | None = Header(default=None, description="an API key, instead of a token"),
) -> Principal:
    who = await request.app.state.authenticator.principal_from(authorization, x_api_key)
    request.state.principal = who  # the rate limiter keys on it
    return who


def require(permission: str | None, route_class: str = "default") -> Any:
    """A dependency: an authenticated caller holding `permission` (None: any), within its rate."""

    async def check(request: Request, who: Principal = Depends(principal)) -> Principal:
        if permission is not None and not who.may(permission):
            raise AuthError(403, "forbidden", f"this needs the `{permission}` permission", who=who, permission=permission)
        await throttle(request, who.subject, route_class, limit_for(route_class, who.roles))
        return who

    return Depends(check)


async def throttle(request: Request, key: str, route_class: str, limit_per_min: float) -> None:
    wait_s = await request.app.state.limiter.take(key, route_class, limit_per_min)
    if wait_s:
        raise AuthError(429, "rate_limited", f"more than {limit_per_min:g} {route_class} requests a minute",
                        {"Retry-After": retry_after_header(wait_s)})  # fmt: skip
