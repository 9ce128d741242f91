"""The identity worker's contract sheet: every command it answers, and its handler."""

from __future__ import annotations

from bus.handling import Routes
from contracts import identity
from workers.identity.handlers import api_keys, otp, revocations, signing_keys, tokens, users

ROUTES = Routes(
    worker="identity",
    commands={
        identity.CreateUser: users.create_user,
        identity.IssueToken: tokens.issue_token,
        identity.RevokeRefreshToken: tokens.revoke_refresh_token,
        identity.CreateApiKey: api_keys.create_api_key,
        identity.RevokeApiKey: api_keys.revoke_api_key,
        identity.VerifyApiKey: api_keys.verify_api_key,
        identity.GetJwks: signing_keys.get_jwks,
        identity.RotateSigningKey: signing_keys.rotate_signing_key,
        identity.GetUser: users.get_user,
        identity.ListUsers: users.list_users,
        identity.DisableUser: users.disable_user,
        identity.EnableUser: users.enable_user,
        identity.ListRevocations: revocations.list_revocations,
        identity.IssueOtp: otp.issue_otp,
        identity.VerifyOtp: otp.verify_otp,
    },
    # The notification worker's answer to an OTP's message (sent through the outbox).
    continuations={otp.OTP_SENT_STEP: otp.otp_sent},
    on_start=signing_keys.start_up,  # a signing key and the first admin, before any login can arrive
    publishes=identity.EVENTS,
)
