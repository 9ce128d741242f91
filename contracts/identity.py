"""Messages of the identity worker: users, logins, tokens, API keys and signing keys.

What a caller should know:
- Roles map to named permissions in `ROLE_PERMISSIONS`; the edge checks a route's permission
  against the `permissions` claim of the access token (or the API key's scopes).
- Access tokens are JWTs signed EdDSA (Ed25519) with a `kid` header; verify them with the keys of
  `identity.get_jwks` (issuer and audience `cbs`, claim `typ` = `access`). Besides `sub`, `iat`,
  `exp` and `jti` they carry `sid`, the login session (the refresh-token family) of a password or
  refresh grant, or `api_key_id`, the API key a client-credentials token was issued for. Refresh
  tokens and API keys are opaque; only their SHA-256 is stored.
- A token is good until it expires unless access was revoked first: `identity.access_revoked`
  says so as it happens, and `identity.list_revocations` answers the recent ones (for a verifier
  that was not listening). See `AccessRevoked` for what ends access and how to apply it.
- Secrets (passwords, refresh tokens, API keys) travel as `SecretStr`: masked in reprs and logs,
  written in clear only into the JSON body on the wire; `model_dump(mode="json",
  context={"redact": True})` masks them (audit and logs). No event or stored reply holds one.
- A password login names its device (`IssueToken.device_*`, set by the edge: a fingerprint, never
  the raw identifier); a device the login has not used before, once it has used one, raises
  `identity.new_device_login`, which the notification worker tells the customer.
- `issue_token`, `create_user` and `create_api_key` keep no inbox row (they are marked
  `read_only`): their body holds a password or their reply a secret, and neither may rest in the
  database. Each is safe to repeat by itself: see each command's docstring.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field, PlainSerializer, SecretStr, SerializationInfo, model_validator

from contracts.common import Command, Contract, Event, Page, cursor_field, page_size

# Stored lower-case; a login matches whatever case was typed.
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{2,99}$"
PASSWORD_MIN_CHARS = 12  # banking-rules §8 leaves it open; NIST SP 800-63B: length over composition
PASSWORD_MAX_CHARS = 1024  # bounds the hashing work one message can demand
ACCESS_TOKEN_TTL_S = 30 * 60
REFRESH_TOKEN_TTL_S = 7 * 24 * 3600
ISSUER = "cbs"
AUDIENCE = "cbs"
# How long a revocation matters: the longest an access token lives, plus 5 minutes for clocks.
# `identity.list_revocations` answers this far back; a verifier may forget older revocations.
REVOCATION_WINDOW_S = ACCESS_TOKEN_TTL_S + 5 * 60
# A verifier refuses a token of a revoked user when `iat <= revoked_at + this`: room for the
# clocks of identity's replicas (one stamps `iat`, another may stamp `revoked_at`) and for the
# moment between stamping `revoked_at` and committing. `iat` is whole seconds, rounded down, so a
# token issued up to this + 1 s after the revocation (a user re-enabled that fast) is refused too.
REVOCATION_MARGIN_S = 2

REDACTED = "**********"

# Step-up one-time passwords (banking-rules §2): 6 digits, 5 minutes, 3 tries, one operation.
OTP_DIGITS = 6
OTP_TTL_S = 5 * 60
OTP_MAX_ATTEMPTS = 3
OTP_PURPOSE_PATTERN = r"^[a-z_]{1,40}:[0-9a-f]{64}$"  # `<operation>:<SHA-256 hex of what it authorises>`

# The device a password login comes from (issue 13: new-device sign-in alerts). The edge sends a
# fingerprint, never the raw identifier (a mobile app's install id is a stable tracking id), and a
# short label a customer can recognise; both only about the login whose password was checked.
DEVICE_ID_MAX_CHARS = 128  # the edge's `X-Device-Id` header
DEVICE_FINGERPRINT_PATTERN = r"^[0-9a-f]{64}$"  # SHA-256 hex
DEVICE_LABEL_MAX_CHARS = 100
# Product tokens and plain words only: the label goes into the customer's email and SMS, and whoever
# logs in chooses it; no markup, no URLs (`:` is refused), nothing but a recognisable name.
DEVICE_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._+/-]{0,99}$"
CLIENT_ADDRESS_PATTERN = r"^[0-9A-Fa-f:.]{2,45}$"  # an IPv4 or IPv6 address as text
MAX_KNOWN_DEVICES = 20  # per login: the least recently seen is forgotten first


def _wire_text(secret: SecretStr, info: SerializationInfo) -> str:
    # `model_dump(mode="json", context={"redact": True})` is the dump for logs and audit records.
    return REDACTED if (info.context or {}).get("redact") else secret.get_secret_value()


# Clear text in the JSON body (it must cross the wire), masked in reprs and redacted dumps.
Secret = Annotated[SecretStr, PlainSerializer(_wire_text, return_type=str, when_used="json")]


class Role(StrEnum):
    customer = "customer"  # a bank customer's own login, tied to a customer id
    teller = "teller"  # branch counter staff
    officer = "officer"  # back office: KYC, freezes, approvals
    admin = "admin"  # everything, including users
    auditor = "auditor"  # reads only, audit trail included
    partner = "partner"  # an API client of a partner system (client credentials, API keys)


class Permission(StrEnum):
    customers_read = "customers:read"
    customers_write = "customers:write"
    customers_search = "customers:search"  # find any customer: staff only
    customers_manage = "customers:manage"  # suspend, reactivate, close: back office
    kyc_verify = "kyc:verify"
    accounts_read = "accounts:read"
    accounts_write = "accounts:write"
    accounts_freeze = "accounts:freeze"
    transfers_create = "transfers:create"  # direct ledger transfers: staff and partners, never customers
    ledger_read = "ledger:read"
    ledger_admin = "ledger:admin"
    payments_create = "payments:create"
    payments_approve = "payments:approve"
    payments_reverse = "payments:reverse"  # staff correction of a completed payment
    cash_handle = "cash:handle"  # cash deposits and withdrawals at the counter
    users_admin = "users:admin"
    audit_read = "audit:read"
    audit_investigate = "audit:investigate"  # assign, note and close investigations of security and compliance events
    day_read = "day:read"  # the business date, its close and the calendar
    day_close = "day:close"  # close of business
    day_calendar = "day:calendar"  # holidays
    books_read = "books:read"  # the bank's books: trial balance, balance sheet, income statement
    products_manage = "products:manage"  # define and version deposit and loan products
    loans_apply = "loans:apply"  # make, submit and withdraw a loan application (a customer: their own)
    loans_review = "loans:review"  # underwrite and reject applications
    loans_approve = "loans:approve"  # approve one somebody else submitted (maker-checker)
    loans_write_off = "loans:write_off"  # give up a defaulted loan (an admin's: the credit committee's decision)
    notifications_read = "notifications:read"  # notification preferences and the in-app inbox (a customer: their own)
    notifications_write = "notifications:write"  # change notification preferences (a customer: their own)
    notifications_manage = "notifications:manage"  # templates, one-off messages, delivery statistics: staff
    webhooks_manage = "webhooks:manage"  # webhook endpoints: staff, and partners for their own


P = Permission
# A customer's permissions reach only their own records: the owning worker checks ownership.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.customer: frozenset({P.customers_read, P.accounts_read, P.accounts_write, P.ledger_read, P.payments_create,
                              P.loans_apply, P.notifications_read, P.notifications_write}),  # fmt: skip
    Role.teller: frozenset(
        {P.customers_read, P.customers_write, P.customers_search, P.accounts_read, P.accounts_write, P.ledger_read,
         P.payments_create, P.cash_handle, P.day_read, P.loans_apply, P.notifications_read, P.notifications_write}
    ),  # fmt: skip
    Role.officer: frozenset(
        {P.customers_read, P.customers_write, P.customers_search, P.customers_manage, P.kyc_verify, P.accounts_read,
         P.accounts_write, P.accounts_freeze, P.transfers_create, P.ledger_read, P.payments_create,
         P.payments_approve, P.payments_reverse, P.cash_handle, P.day_read, P.books_read, P.products_manage,
         P.loans_apply, P.loans_review, P.loans_approve, P.notifications_read, P.notifications_write,
         P.notifications_manage, P.webhooks_manage}
    ),  # fmt: skip
    Role.admin: frozenset(Permission),
    # Auditors read, and work the investigations of what audit raised (their own workflow, itself audited).
    Role.auditor: frozenset({P.customers_read, P.customers_search, P.accounts_read, P.ledger_read, P.audit_read,
                             P.audit_investigate, P.day_read, P.books_read}),  # fmt: skip
    Role.partner: frozenset({P.accounts_read, P.ledger_read, P.transfers_create, P.payments_create, P.webhooks_manage}),
}
del P


def permissions_of(roles: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """The union of the roles' permissions; an unknown role grants nothing."""
    return frozenset(p for role in roles for p in ROLE_PERMISSIONS.get(role, ()))


class IdentityError(StrEnum):
    """Stable refusal codes of the identity worker (the reply's `error.code`)."""

    # Unknown user or wrong password: deliberately one code, so a guesser learns nothing.
    invalid_credentials = "invalid_credentials"
    locked_out = "locked_out"
    user_exists = "user_exists"
    user_not_found = "user_not_found"
    user_disabled = "user_disabled"
    invalid_refresh_token = "invalid_refresh_token"  # unknown or expired
    refresh_token_revoked = "refresh_token_revoked"  # reused after rotation or logout: the family is revoked
    api_key_not_found = "api_key_not_found"
    api_key_exists = "api_key_exists"
    invalid_api_key = "invalid_api_key"  # unknown, revoked, expired, or not the client's
    forbidden_scope = "forbidden_scope"  # asked for permissions the user does not hold
    weak_password = "weak_password"
    last_admin = "last_admin"  # disabling the last active admin would lock everyone out
    # Step-up one-time passwords (banking-rules §2): each refusal says what to do next.
    otp_not_found = "otp_not_found"  # unknown, or another login's
    otp_invalid = "otp_invalid"  # wrong code: `details.attempts_left` more tries
    otp_locked = "otp_locked"  # OTP_MAX_ATTEMPTS wrong codes: ask for a new one
    otp_expired = "otp_expired"  # older than OTP_TTL_S: ask for a new one
    otp_mismatch = "otp_mismatch"  # issued for another operation (another amount, account, payee, payment id)
    otp_used = "otp_used"  # consumed already by another operation


class GrantType(StrEnum):
    password = "password"
    client_credentials = "client_credentials"
    refresh_token = "refresh_token"


class UserStatus(StrEnum):
    active = "active"
    disabled = "disabled"


class RevocationScope(StrEnum):
    """What a revocation ends."""

    user = "user"  # every token of the user issued at or before `revoked_at`, and its API keys' cached grants
    session = "session"  # every access token of one login (claim `sid`), whenever issued
    api_key = "api_key"  # the API key, and every token issued for it by client credentials (claim `api_key_id`)


class RevocationReason(StrEnum):
    user_disabled = "user_disabled"  # an admin disabled the user
    logout = "logout"  # the user logged out (the login's refresh token was revoked)
    refresh_token_reused = "refresh_token_reused"  # a used refresh token came back: the login may be stolen
    api_key_revoked = "api_key_revoked"  # an admin revoked the API key


def _username(description: str = "login name, 3 to 100 characters, case-insensitive") -> Any:
    return Field(pattern=USERNAME_PATTERN, description=description)


def _scopes_field(description: str) -> Any:
    return Field(min_length=1, max_length=len(Permission), description=description)


# --- results ---------------------------------------------------------------------------------


class UserView(Contract):
    user_id: UUID = Field(description="the user's id, chosen by the creator")
    username: str = Field(description="login name, lower-case")
    display_name: str = Field(description="name shown to people")
    roles: list[Role] = Field(description="the user's roles")
    permissions: list[str] = Field(description="the roles' permissions, sorted")
    customer_id: UUID | None = Field(default=None, description="the customer this login belongs to (role customer)")
    status: UserStatus = Field(description="active or disabled")
    locked_until: datetime | None = Field(default=None, description="UTC end of a password lockout in force, else null")
    created_at: datetime = Field(description="UTC time of creation")
    disabled_at: datetime | None = Field(default=None, description="UTC time of disabling, else null")


UserPage = Page[UserView]


class TokenPair(Contract):
    """An OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str = Field(description="a JWT signed EdDSA; verify with `identity.get_jwks`")
    token_type: Literal["Bearer"] = Field(default="Bearer", description="always Bearer")
    expires_in: int = Field(description="seconds the access token is valid")
    refresh_token: str | None = Field(default=None, description="opaque, single use; absent for client_credentials")
    refresh_expires_in: int | None = Field(default=None, description="seconds the refresh token is valid")
    scope: str = Field(description="the token's permissions, space-separated, sorted")


class ApiKeyView(Contract):
    key_id: UUID = Field(description="the key's id; its hex is part of the secret")
    user_id: UUID = Field(description="the user the key acts as")
    name: str = Field(description="what the key is for")
    scopes: list[str] = Field(description="permissions the key grants, sorted (a subset of the user's)")
    created_at: datetime = Field(description="UTC time of creation")
    expires_at: datetime | None = Field(default=None, description="UTC expiry, or null for none")
    revoked_at: datetime | None = Field(default=None, description="UTC time of revocation, else null")


class ApiKeyIssued(ApiKeyView):
    secret: str = Field(description="`cbs_<key_id hex>_<random>`: shown this once, stored only as a hash")


class ApiKeyPrincipal(Contract):
    """Who an API key acts as: what the edge caches for `X-API-Key`."""

    user_id: UUID = Field(description="the key's user (the token `sub` equivalent)")
    username: str = Field(description="the key's user's login name")
    key_id: UUID = Field(description="the key that was presented")
    roles: list[Role] = Field(description="the user's roles")
    permissions: list[str] = Field(description="the key's scopes, sorted: what the key may do")
    customer_id: UUID | None = Field(default=None, description="the customer, for a customer's key")


class Jwk(Contract):
    """An Ed25519 public key as a JWK (RFC 8037)."""

    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    x: str = Field(description="the public key, base64url without padding")
    kid: str = Field(description="key id, as in the token header")
    alg: Literal["EdDSA"] = "EdDSA"
    use: Literal["sig"] = "sig"


class Jwks(Contract):
    keys: list[Jwk] = Field(description="the active key and retired keys whose tokens may still be unexpired")


class RotatedKey(Contract):
    kid: str = Field(description="the new active key's id")
    previous_kid: str | None = Field(default=None, description="the key it replaced, kept in the JWKS for now")


class Revoked(Contract):
    revoked: bool = Field(description="true when something was revoked now; false when already revoked or unknown")


class OtpIssued(Contract):
    otp_id: UUID = Field(description="the OTP's id: give it with the code")
    purpose: str = Field(description="the operation it authorises")
    channel: str = Field(description="how the code travels: sms or email")
    notification_ids: list[UUID] = Field(description="the notification that carries the code (`GET /v1/notifications/{id}`)")
    expires_at: datetime = Field(description="UTC time after which the code is refused (otp_expired)")
    max_attempts: int = Field(description="wrong codes allowed before it locks (otp_locked)")


class OtpVerified(Contract):
    otp_id: UUID = Field(description="the OTP")
    purpose: str = Field(description="the operation it authorised")
    consumed_by: str = Field(description="the operation's own id (a payment id): a repeat of it verifies again")


# --- commands --------------------------------------------------------------------------------


class _NoInbox(Command):
    # Not a query: the runtime's `read_only` is its only way to keep no inbox row, and these
    # must keep none (a stored reply would hold a secret; a stored body hash is a fast,
    # unsalted hash of a password). Their handlers are idempotent on their own.
    read_only: ClassVar[bool] = True


class CreateUser(_NoInbox):
    """Create a login. Repeating it with the same user_id and username answers the same user.
    Result: `UserView`."""

    routing_key: ClassVar[str] = "identity.create_user"

    user_id: UUID = Field(description="new user's id, chosen by the caller (makes retries safe)")
    username: str = _username()
    password: Secret = Field(max_length=PASSWORD_MAX_CHARS, description=f"at least {PASSWORD_MIN_CHARS} characters")
    roles: list[Role] = Field(min_length=1, max_length=len(Role), description="one or more roles")
    customer_id: UUID | None = Field(default=None, description="required for, and only for, role customer")
    display_name: str = Field(min_length=1, max_length=200, description="name shown to people")

    @model_validator(mode="after")
    def _customer_login(self) -> CreateUser:
        is_customer = Role.customer in self.roles
        if is_customer != (self.customer_id is not None):
            raise ValueError("customer_id is required for role customer, and only for it")
        if is_customer and len(set(self.roles)) > 1:
            raise ValueError("a customer login holds no staff role")
        return self


class IssueToken(_NoInbox):
    """OAuth2 token endpoint: password, client_credentials or refresh_token grant. Result: `TokenPair`.

    Repeating a password or client grant issues another pair. Repeating a refresh grant presents
    a used refresh token: that is reuse, and revokes the family (the client logs in again).
    """

    routing_key: ClassVar[str] = "identity.issue_token"

    grant_type: GrantType = Field(description="password, client_credentials or refresh_token")
    username: str | None = Field(default=None, min_length=1, max_length=200, description="password grant")
    password: Secret | None = Field(default=None, max_length=PASSWORD_MAX_CHARS, description="password grant")
    client_id: str | None = Field(default=None, min_length=1, max_length=200,
                                  description="client_credentials: the API client's username")  # fmt: skip
    client_secret: Secret | None = Field(default=None, max_length=200, description="client_credentials: an API key")
    refresh_token: Secret | None = Field(default=None, max_length=200, description="refresh_token grant")
    scope: str | None = Field(default=None, max_length=1000,
                              description="optional: space-separated permissions to narrow the token to")  # fmt: skip
    # The device, for the password grant's new-device alert (`identity.new_device_login`). Believed
    # only from the edge, and only about the login whose password was right; from any other sender
    # the device is that sender (its broker user), whatever these say.
    device_fingerprint: str | None = Field(default=None, pattern=DEVICE_FINGERPRINT_PATTERN,
                                           description="password grant, set by the edge: SHA-256 hex of the "
                                           "device (`X-Device-Id`, else the User-Agent); never the identifier")  # fmt: skip
    device_label: str | None = Field(default=None, max_length=DEVICE_LABEL_MAX_CHARS, pattern=DEVICE_LABEL_PATTERN,
                                     description="password grant, set by the edge: what the customer is told the "
                                     "device is (the User-Agent's product tokens, truncated)")  # fmt: skip
    client_address: str | None = Field(default=None, max_length=45, pattern=CLIENT_ADDRESS_PATTERN,
                                       description="password grant, set by the edge: the client's IP")  # fmt: skip

    @model_validator(mode="after")
    def _grant_fields(self) -> IssueToken:
        needed = {
            GrantType.password: ("username", "password"),
            GrantType.client_credentials: ("client_id", "client_secret"),
            GrantType.refresh_token: ("refresh_token",),
        }[self.grant_type]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"grant {self.grant_type} needs {', '.join(missing)}")
        return self


class RevokeRefreshToken(Command):
    """Logout: revoke the refresh token and every token rotated from the same login, and end the
    login's access tokens (`identity.access_revoked`, scope session). Result: `Revoked`.

    An unknown token is no error (RFC 7009 §2.2): the answer is `revoked: false`.
    """

    routing_key: ClassVar[str] = "identity.revoke_refresh_token"

    refresh_token: Secret = Field(max_length=200, description="the refresh token to revoke")


class CreateApiKey(_NoInbox):
    """Create an API key; its secret is in this reply only. Repeating the key_id is refused
    (`api_key_exists`): the secret cannot be shown twice. Result: `ApiKeyIssued`."""

    routing_key: ClassVar[str] = "identity.create_api_key"

    key_id: UUID = Field(description="new key's id, chosen by the caller")
    user_id: UUID = Field(description="the active user the key acts as")
    scopes: list[Permission] = _scopes_field("permissions the key grants; each must be one the user holds")
    name: str = Field(min_length=1, max_length=200, description="what the key is for")
    expires_at: datetime | None = Field(default=None, description="UTC expiry; null for none")


class RevokeApiKey(Command):
    """Revoke an API key for good, and the tokens issued for it (`identity.access_revoked`, scope
    api_key; already revoked: answered again). Result: `ApiKeyView`."""

    routing_key: ClassVar[str] = "identity.revoke_api_key"

    key_id: UUID = Field(description="the key to revoke")


class VerifyApiKey(Command):
    """Who an API key acts as; refused with `invalid_api_key`. Result: `ApiKeyPrincipal`."""

    routing_key: ClassVar[str] = "identity.verify_api_key"
    read_only: ClassVar[bool] = True

    secret: Secret = Field(max_length=200, description="the API key as presented")


class GetJwks(Command):
    """The public signing keys. Result: `Jwks`."""

    routing_key: ClassVar[str] = "identity.get_jwks"
    read_only: ClassVar[bool] = True


class RotateSigningKey(Command):
    """Make a new signing key the active one; the old one stays published until its tokens
    expire. Result: `RotatedKey`."""

    routing_key: ClassVar[str] = "identity.rotate_signing_key"

    reason: str = Field(default="scheduled", min_length=1, max_length=500, description="why, for the audit trail")


class GetUser(Command):
    """Result: `UserView`."""

    routing_key: ClassVar[str] = "identity.get_user"
    read_only: ClassVar[bool] = True

    user_id: UUID = Field(description="the user to read")


class ListUsers(Command):
    """Result: `Page[UserView]`, by username."""

    routing_key: ClassVar[str] = "identity.list_users"
    read_only: ClassVar[bool] = True

    role: Role | None = Field(default=None, description="only users holding this role")
    limit: int = page_size(default=50, most=100)
    cursor: str | None = cursor_field()


class DisableUser(Command):
    """Disable a login: no new tokens, its refresh tokens revoked, its API keys refused, and the
    access tokens it holds refused too (`identity.access_revoked`, scope user). Already disabled:
    answered again. Result: `UserView`."""

    routing_key: ClassVar[str] = "identity.disable_user"

    user_id: UUID = Field(description="the user to disable")
    actor: str = Field(min_length=1, max_length=200, description="who disabled it")
    reason: str = Field(min_length=1, max_length=500, description="why, recorded with the change")


class EnableUser(Command):
    """Let a disabled login in again. Tokens issued before it was disabled stay refused; new logins
    work. Already active: answered again. Result: `UserView`."""

    routing_key: ClassVar[str] = "identity.enable_user"

    user_id: UUID = Field(description="the user to enable")
    actor: str = Field(min_length=1, max_length=200, description="who enabled it")
    reason: str = Field(min_length=1, max_length=500, description="why, recorded with the change")


class ListRevocations(Command):
    """The revocations of the last `REVOCATION_WINDOW_S` seconds (or since `after`), oldest first:
    what a token verifier that was not listening to `identity.access_revoked` must know.
    Result: `Page[AccessRevoked]`."""

    routing_key: ClassVar[str] = "identity.list_revocations"
    read_only: ClassVar[bool] = True

    after: datetime | None = Field(default=None, description="only revocations after this UTC time; "
                                   "null (or earlier than the window): the whole window")  # fmt: skip
    limit: int = page_size(default=500, most=1000)
    cursor: str | None = cursor_field()


class OtpChannel(StrEnum):
    sms = "sms"
    email = "email"


class IssueOtp(Command):
    """A customer asks for a one-time password for one operation (banking-rules §2): 6 digits from
    the OS CSPRNG, stored only as a salted HMAC-SHA-256, valid `OTP_TTL_S`, `OTP_MAX_ATTEMPTS` tries,
    sent to the customer's learnt phone (or email) by `notification.send_message`. The reply waits
    for the notification worker to take it. The code is in no reply, event or log. Repeating the
    same otp_id with the same purpose answers the same OTP (no second code). Result: `OtpIssued`."""

    routing_key: ClassVar[str] = "identity.issue_otp"

    otp_id: UUID = Field(description="new OTP's id, chosen by the caller")
    purpose: str = Field(pattern=OTP_PURPOSE_PATTERN,
                         description="`<operation>:<sha256 hex>`: the exact operation it authorises")  # fmt: skip
    channel: OtpChannel = Field(default=OtpChannel.sms, description="sms (default) or email")


class VerifyOtp(_NoInbox):
    """Check a code and consume the OTP for one operation: a wrong code counts a try (the third
    locks it), an expired, locked, used or other operation's OTP is refused. Repeating a successful
    verification for the same `consumed_by` with the right code answers it again (a retried
    request). Only the login that asked for it may verify it. Result: `OtpVerified`."""

    routing_key: ClassVar[str] = "identity.verify_otp"

    otp_id: UUID = Field(description="the OTP")
    code: Secret = Field(max_length=20, description="the digits as received")
    purpose: str = Field(pattern=OTP_PURPOSE_PATTERN, description="the operation being authorised, as at issue")
    consumed_by: str = Field(min_length=1, max_length=200, description="the operation's own id (e.g. the payment id)")


# --- events (never a password, token or secret) ----------------------------------------------


class LoginSucceeded(Event):
    routing_key: ClassVar[str] = "identity.login_succeeded"

    user_id: UUID = Field(description="who logged in")
    username: str = Field(description="their login name")
    grant_type: GrantType = Field(description="how")
    occurred_at: datetime = Field(description="UTC time")


class LoginFailed(Event):
    routing_key: ClassVar[str] = "identity.login_failed"

    username: str = Field(description="the login name (or client_id) as typed, truncated to 200 characters")
    user_id: UUID | None = Field(default=None, description="the user, when the name is known")
    grant_type: GrantType = Field(description="how")
    reason: str = Field(description="unknown_user, invalid_credentials, locked_out, user_disabled, invalid_api_key, ...")
    occurred_at: datetime = Field(description="UTC time")


class LockedOut(Event):
    routing_key: ClassVar[str] = "identity.locked_out"

    user_id: UUID = Field(description="the locked user")
    username: str = Field(description="their login name")
    failed_attempts: int = Field(description="consecutive failures that caused the lock")
    locked_until: datetime = Field(description="UTC end of the lock")
    occurred_at: datetime = Field(description="UTC time")


class NewDeviceLogin(Event):
    """A password login from a device this login was not known to use (issue 13): the customer is
    told at once, so a stolen password shows. Not raised for a login's very first device, nor for
    one of its last `MAX_KNOWN_DEVICES` devices. The label and address are what the login's own
    request said (through the edge): informative, not proof."""

    routing_key: ClassVar[str] = "identity.new_device_login"

    user_id: UUID = Field(description="who logged in")
    username: str = Field(description="their login name")
    device_label: str = Field(description="what the device said it is (User-Agent product tokens), or `unknown device`")
    client_address: str | None = Field(default=None, description="the client's IP address, when the edge knew it")
    occurred_at: datetime = Field(description="UTC time")


class RefreshTokenReused(Event):
    """A used or revoked refresh token came back: likely stolen, so its whole family was revoked."""

    routing_key: ClassVar[str] = "identity.refresh_token_reused"

    user_id: UUID = Field(description="whose token")
    family_id: UUID = Field(description="the login session whose tokens were all revoked")
    occurred_at: datetime = Field(description="UTC time")


class KeyRotated(Event):
    routing_key: ClassVar[str] = "identity.key_rotated"

    kid: str = Field(description="the new active key's id")
    previous_kid: str | None = Field(default=None, description="the key it replaced")
    reason: str = Field(description="why")
    occurred_at: datetime = Field(description="UTC time")


class UserCreated(Event):
    routing_key: ClassVar[str] = "identity.user_created"

    user_id: UUID = Field(description="the new user")
    username: str = Field(description="login name")
    display_name: str = Field(description="name shown to people")
    roles: list[Role] = Field(description="roles")
    customer_id: UUID | None = Field(default=None, description="the customer, for a customer login")
    occurred_at: datetime = Field(description="UTC time")


class UserDisabled(Event):
    routing_key: ClassVar[str] = "identity.user_disabled"

    user_id: UUID = Field(description="the disabled user")
    username: str = Field(description="login name")
    actor: str = Field(description="who disabled it")
    reason: str = Field(description="why")
    occurred_at: datetime = Field(description="UTC time")


class UserEnabled(Event):
    routing_key: ClassVar[str] = "identity.user_enabled"

    user_id: UUID = Field(description="the enabled user")
    username: str = Field(description="login name")
    actor: str = Field(description="who enabled it")
    reason: str = Field(description="why")
    occurred_at: datetime = Field(description="UTC time")


class AccessRevoked(Event):
    """Access ended before the tokens expire; whoever verifies tokens or caches API keys applies it.

    What ends access: disabling a user (scope `user`), a logout and a reused refresh token (scope
    `session`: that login), revoking an API key (scope `api_key`). A lockout does not: it stops
    password guessing, and a guesser must not be able to end the real user's sessions with it.

    How to apply it: refuse an access token whose `sub` is `user_id` and whose `iat` is at or
    before `revoked_at` + `REVOCATION_MARGIN_S` (scope user: a re-enabled user's new tokens are
    good again); any access token whose `sid` is `session_id`, or whose `api_key_id` is `key_id`;
    and the API key `key_id`, and any cached grant of `user_id`'s keys (ask identity again). A
    revocation older than `REVOCATION_WINDOW_S` can be forgotten: every token it covers has expired.
    """

    routing_key: ClassVar[str] = "identity.access_revoked"

    revocation_id: UUID = Field(description="this revocation's id")
    scope: RevocationScope = Field(description="user, session or api_key: what it ends")
    user_id: UUID = Field(description="whose access: the tokens' `sub`, the key's user")
    session_id: UUID | None = Field(default=None, description="scope session: the login (the tokens' `sid`)")
    key_id: UUID | None = Field(default=None, description="scope api_key: the key (and the tokens' `api_key_id`)")
    reason: RevocationReason = Field(description="why: user_disabled, logout, refresh_token_reused, api_key_revoked")
    revoked_at: datetime = Field(description="UTC time from which the access is revoked")


RevocationPage = Page[AccessRevoked]


class ApiKeyCreated(Event):
    routing_key: ClassVar[str] = "identity.api_key_created"

    key_id: UUID = Field(description="the new key")
    user_id: UUID = Field(description="the user it acts as")
    name: str = Field(description="what it is for")
    scopes: list[str] = Field(description="permissions it grants")
    expires_at: datetime | None = Field(default=None, description="UTC expiry, or null")
    occurred_at: datetime = Field(description="UTC time")


class ApiKeyRevoked(Event):
    routing_key: ClassVar[str] = "identity.api_key_revoked"

    key_id: UUID = Field(description="the revoked key")
    user_id: UUID = Field(description="the user it acted as")
    occurred_at: datetime = Field(description="UTC time")


class OtpLocked(Event):
    """A one-time password locked after `OTP_MAX_ATTEMPTS` wrong codes: somebody may hold the
    customer's session but not their phone."""

    routing_key: ClassVar[str] = "identity.otp_locked"

    otp_id: UUID = Field(description="the locked OTP")
    user_id: str = Field(description="the login that asked for it (token `sub`)")
    customer_id: UUID | None = Field(default=None, description="its customer")
    purpose: str = Field(description="the operation it was for")
    occurred_at: datetime = Field(description="UTC time")


COMMANDS: tuple[type[Command], ...] = (
    CreateUser,
    IssueToken,
    RevokeRefreshToken,
    CreateApiKey,
    RevokeApiKey,
    VerifyApiKey,
    GetJwks,
    RotateSigningKey,
    GetUser,
    ListUsers,
    DisableUser,
    EnableUser,
    ListRevocations,
    IssueOtp,
    VerifyOtp,
)
EVENTS: tuple[type[Event], ...] = (
    LoginSucceeded,
    LoginFailed,
    LockedOut,
    RefreshTokenReused,
    KeyRotated,
    UserCreated,
    UserDisabled,
    ApiKeyCreated,
    ApiKeyRevoked,
    UserEnabled,
    AccessRevoked,
    OtpLocked,
    NewDeviceLogin,
)
