"""The identity worker's contract sheet: every command it answers, and its handler."""

from __future__ import annotations

from bus.handling import Routes
from contracts import identity
from workers.identity import handlers

ROUTES = Routes(
    worker="identity",
    commands={
        identity.CreateUser: handlers.create_user,
        identity.IssueToken: handlers.issue_token,
        identity.RevokeRefreshToken: handlers.revoke_refresh_token,
        identity.CreateApiKey: handlers.create_api_key,
        identity.RevokeApiKey: handlers.revoke_api_key,
        identity.VerifyApiKey: handlers.verify_api_key,
        identity.GetJwks: handlers.get_jwks,
        identity.RotateSigningKey: handlers.rotate_signing_key,
        identity.GetUser: handlers.get_user,
        identity.ListUsers: handlers.list_users,
        identity.DisableUser: handlers.disable_user,
        identity.EnableUser: handlers.enable_user,
        identity.ListRevocations: handlers.list_revocations,
        identity.IssueOtp: handlers.issue_otp,
        identity.VerifyOtp: handlers.verify_otp,
    },
    # The notification worker's answer to an OTP's message (sent through the outbox).
    continuations={handlers.OTP_SENT_STEP: handlers.otp_sent},
    on_start=handlers.start_up,  # a signing key and the first admin, before any login can arrive
    publishes=identity.EVENTS,
)
