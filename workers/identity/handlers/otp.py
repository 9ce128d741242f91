"""Step-up one-time passwords (banking-rules §2): issued for a customer's own login and sent by
the notification worker (a saga step), verified for the edge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from bus.actor import EDGE
from bus.handling import Context, Deferred
from contracts import identity as c
from contracts import notification
from contracts.common import Reply
from contracts.identity import IdentityError
from workers.identity import domain, store
from workers.identity.handlers.users import refuse

OTP_TEMPLATE = "one_time_password"
OTP_SENT_STEP = "otp_sent"


async def issue_otp(ctx: Context, cmd: c.IssueOtp) -> Reply | Deferred:
    """A code for the customer's own login, sent by the notification worker; only its HMAC stays."""
    actor = ctx.actor
    if actor is None or actor.via != EDGE or not actor.is_customer or actor.customer_id is None:
        return Reply.refusal("forbidden", "one-time passwords are for a customer's own login, through the edge")
    existing = await store.get_otp(ctx.conn, cmd.otp_id)
    if existing is not None:
        if existing.state.user_id != actor.subject or existing.state.purpose != cmd.purpose:
            return Reply.refusal(IdentityError.otp_mismatch, f"one-time password {cmd.otp_id} exists for another operation")
        return Reply.success(_issued(cmd.otp_id, existing.state, existing.channel, []))  # no second code
    code = domain.new_otp_code()
    salt, code_hash = domain.new_otp(code)
    state = domain.OtpState(user_id=actor.subject, purpose=cmd.purpose, salt=salt, code_hash=code_hash, attempts=0,
                            max_attempts=c.OTP_MAX_ATTEMPTS, expires_at=ctx.now + timedelta(seconds=c.OTP_TTL_S),
                            locked=False, consumed_by=None)  # fmt: skip
    await store.insert_otp(ctx.conn, cmd.otp_id, actor.customer_id, cmd.channel.value, state, ctx.now)
    send = notification.SendMessage(
        send_id=cmd.otp_id, channels=[cmd.channel.value], customer_id=actor.customer_id, template=OTP_TEMPLATE,
        data={"valid_minutes": c.OTP_TTL_S // 60}, secret_data={"code": code}, expires_in_s=c.OTP_TTL_S,
    )  # fmt: skip
    return await ctx.request(send, step=OTP_SENT_STEP, state={"otp_id": str(cmd.otp_id)})


def _issued(otp_id: UUID, state: domain.OtpState, channel: str, notification_ids: list[UUID]) -> c.OtpIssued:
    return c.OtpIssued(otp_id=otp_id, purpose=state.purpose, channel=channel, notification_ids=notification_ids,
                       expires_at=state.expires_at, max_attempts=state.max_attempts)  # fmt: skip


async def otp_sent(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    """The notification worker took the message (or could not: no phone learnt, say). Either way
    the command was sent and answered: its code is blanked in the outbox, so it rests nowhere here."""
    await store.forget_sent_secret(ctx.conn, f"{ctx.worker}:{OTP_SENT_STEP}:{ctx.message_id}")
    if not reply.ok:
        assert reply.error is not None
        return Reply.refusal(reply.error.code, f"the one-time password could not be sent: {reply.error.message}",
                             reply.error.details)  # fmt: skip
    row = await store.get_otp(ctx.conn, UUID(state["otp_id"]))
    assert row is not None, "the OTP was stored with the step"
    sent = notification.SentMessage.model_validate(reply.result)
    return Reply.success(_issued(row.otp_id, row.state, row.channel, sent.notification_ids))


async def verify_otp(ctx: Context, cmd: c.VerifyOtp) -> Reply:
    actor = ctx.actor
    if actor is None or actor.via != EDGE:
        return Reply.refusal("forbidden", "one-time passwords are verified by the edge for the login that asked")
    row = await store.get_otp(ctx.conn, cmd.otp_id, for_update=True)
    if row is None:
        return Reply.refusal(IdentityError.otp_not_found, "no such one-time password")
    outcome, refusal = domain.judge_otp(row.state, user_id=actor.subject, code=cmd.code.get_secret_value(),
                                        purpose=cmd.purpose, consumed_by=cmd.consumed_by, now=ctx.now)  # fmt: skip
    if refusal is not None:
        return refuse(refusal)
    verified = c.OtpVerified(otp_id=cmd.otp_id, purpose=cmd.purpose, consumed_by=cmd.consumed_by)
    if outcome is domain.OtpOutcome.verified:
        await store.consume_otp(ctx.conn, cmd.otp_id, cmd.consumed_by, ctx.now)
    if outcome is not domain.OtpOutcome.wrong:
        return Reply.success(verified)
    locks = domain.otp_locks_now(row.state)
    left = await store.otp_wrong_code(ctx.conn, cmd.otp_id, lock=locks, now=ctx.now)
    if not locks:
        return Reply.refusal(IdentityError.otp_invalid, "wrong one-time password", {"attempts_left": left})
    await ctx.emit(c.OtpLocked(otp_id=cmd.otp_id, user_id=row.state.user_id, customer_id=row.customer_id,
                               purpose=row.state.purpose, occurred_at=ctx.now))  # fmt: skip
    return Reply.refusal(IdentityError.otp_locked, "too many wrong codes; ask for a new one-time password")
