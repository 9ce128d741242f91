"""The identity worker's contract sheet: every command it answers, and its handler."""

from __future__ import annotations

from bus.handling import Routes
from contracts import identity as c
from workers.identity import handlers as h

ROUTES = Routes(
    worker="identity",
    commands={
        c.CreateUser: h.create_user,
        c.IssueToken: h.issue_token,
        c.RevokeRefreshToken: h.revoke_refresh_token,
        c.CreateApiKey: h.create_api_key,
        c.RevokeApiKey: h.revoke_api_key,
        c.VerifyApiKey: h.verify_api_key,
        c.GetJwks: h.get_jwks,
        c.RotateSigningKey: h.rotate_signing_key,
        c.GetUser: h.get_user,
        c.ListUsers: h.list_users,
        c.DisableUser: h.disable_user,
        c.EnableUser: h.enable_user,
        c.ListRevocations: h.list_revocations,
    },
    on_start=h.start_up,  # a signing key and the first admin, before any login can arrive
)
# Consumes no events. Published events (through the outbox): identity.login_succeeded, login_failed,
# locked_out, refresh_token_reused, key_rotated, user_created, user_disabled, user_enabled,
# api_key_created, api_key_revoked, access_revoked.
