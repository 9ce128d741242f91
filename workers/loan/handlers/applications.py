"""Loan applications (banking-rules §5): draft → submitted → under review → approved, or rejected
or cancelled; underwriting's assessment; maker-checker approval with the schedule written. Every
change locks its application, so two officers acting at once take turns. Underwriting, approval
and rejection are staff's (routes.py wraps them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from bus.actor import believed_permissions, owner_only
from bus.handling import Context
from contracts import loan as c
from contracts.common import Reply
from workers.loan import store
from workers.loan.domain import applications as domain
from workers.loan.domain import review, schedule
from workers.loan.domain.applications import Refusal

_FACTS: dict[c.ApplicationStatus, type[c.ApplicationFact]] = {
    c.ApplicationStatus.submitted: c.ApplicationSubmitted,
    c.ApplicationStatus.approved: c.ApplicationApproved,
    c.ApplicationStatus.rejected: c.ApplicationRejected,
    c.ApplicationStatus.cancelled: c.ApplicationCancelled,
}


def refuse(refusal: Refusal, details: dict[str, Any] | None = None) -> Reply:
    return Reply.refusal(refusal.code, refusal.message, details or refusal.details)


def _not_found(application_id: Any) -> Reply:
    return Reply.refusal(c.LoanError.application_not_found, f"no loan application {application_id}")


async def create(ctx: Context, cmd: c.CreateLoanApplication) -> Reply:
    if refusal := owner_only(ctx.actor, cmd.customer_id):
        return refusal
    request = cmd.model_dump(mode="json", exclude={"actor"})
    found = await store.application(ctx.conn, cmd.application_id)
    if found is not None:  # a retry answers the draft; another body under the same id is refused
        view, asked = found
        if _as_now(asked, cmd.actor) != request:
            return Reply.refusal(c.LoanError.application_exists, f"application {cmd.application_id} exists with other fields")
        return owner_only(ctx.actor, view.customer_id) or Reply.success(view)
    product = await store.product(ctx.conn, cmd.product_code)
    if product is None:
        return Reply.refusal(c.LoanError.loan_product_not_found, f"no loan product {cmd.product_code!r}")
    if refusal := domain.terms_refusal(product, cmd.principal, cmd.months, cmd.currency):
        return refuse(refusal)
    if refusal := review.valuation_refusal(cmd.collateral, await store.business_date(ctx.conn)):
        return refuse(refusal)
    view = c.LoanApplicationView(
        **cmd.model_dump(exclude={"actor"}), product_version=product.version, status=c.ApplicationStatus.draft,
        created_by=cmd.actor, created_at=ctx.now, updated_at=ctx.now,
    )  # fmt: skip
    if not await store.insert_application(ctx.conn, view, request):
        return Reply.refusal(c.LoanError.application_exists, f"application {cmd.application_id} was just made")
    return Reply.success(view)


def _as_now(asked: dict[str, Any], actor: str) -> dict[str, Any]:
    """A stored request as today's contract reads it (fields added since take their defaults), so a
    retry of an older create still matches (one today's contract refuses is left as it was)."""
    try:
        return c.CreateLoanApplication.model_validate({**asked, "actor": actor}).model_dump(mode="json", exclude={"actor"})
    except ValidationError:
        return asked


async def get(ctx: Context, cmd: c.GetLoanApplication) -> Reply:
    found = await store.application(ctx.conn, cmd.application_id)
    if found is None:
        return _not_found(cmd.application_id)
    return owner_only(ctx.actor, found[0].customer_id) or Reply.success(found[0])


async def submit(ctx: Context, cmd: c.SubmitLoanApplication) -> Reply:
    turn = await _turn(ctx, cmd.application_id, "submit")
    if isinstance(turn, Reply):
        return turn
    view, to = turn
    standing = await store.standing(ctx.conn, view.customer_id)
    account = await store.linked_account(ctx.conn, view.linked_account_id)
    if refusal := domain.eligibility_refusal(view.customer_id, view.currency, standing, account):
        return refuse(refusal)
    co_applicant = await store.standing(ctx.conn, view.co_applicant_id) if view.co_applicant_id else None
    if refusal := review.co_applicant_refusal(view, co_applicant):
        return refuse(refusal)
    return await _moved(ctx, view, {"status": to, "submitted_by": cmd.actor})


async def underwrite(ctx: Context, cmd: c.UnderwriteLoanApplication) -> Reply:
    turn = await _turn(ctx, cmd.application_id, "underwrite")
    if isinstance(turn, Reply):
        return turn
    view, to = turn
    product = await product_of(ctx, view)
    assessment = domain.assessment_of(view, product)
    if assessment.outcome == c.Outcome.refused:
        reasons = ", ".join(r.value for r in assessment.reasons)
        return await _moved(ctx, view, {"status": c.ApplicationStatus.rejected, "decided_by": cmd.actor,
                                        "decision_reason": f"underwriting refused it: {reasons}",
                                        "assessment": domain.assessment_view(assessment)})  # fmt: skip
    return await _moved(ctx, view, {"status": to, "assessment": domain.assessment_view(assessment),
                                    **review.first_stage(cmd.actor, ctx.now)})  # fmt: skip


async def approve(ctx: Context, cmd: c.ApproveLoanApplication) -> Reply:
    turn = await _turn(ctx, cmd.application_id, "approve")
    if isinstance(turn, Reply):
        return turn
    view, to = turn
    product = await product_of(ctx, view)
    permissions = believed_permissions(ctx.actor, cmd.permissions)
    if refusal := domain.approval_refusal(view, cmd.actor, permissions, cmd.principal, cmd.rate_bps, product):
        return refuse(refusal)
    business_date = await store.business_date(ctx.conn)
    if business_date is None:
        return Reply.refusal("unavailable", "the business date is not known yet: approve once the day has opened")
    drawn = schedule.schedule(cmd.principal, cmd.rate_bps, view.months, product.method, product.amortization,
                              business_date, currency=view.currency)  # fmt: skip
    return await _moved(ctx, view, {"status": to, "decided_by": cmd.actor, "approved_principal": cmd.principal,
                                    "approved_rate_bps": cmd.rate_bps, "approved_on": business_date, "schedule": drawn})  # fmt: skip


async def reject(ctx: Context, cmd: c.RejectLoanApplication) -> Reply:
    return await _decided(ctx, cmd, "reject", cmd.reason)


async def cancel(ctx: Context, cmd: c.CancelLoanApplication) -> Reply:
    return await _decided(ctx, cmd, "cancel", cmd.reason)


async def _decided(ctx: Context, cmd: c.RejectLoanApplication | c.CancelLoanApplication, action: domain.Action,
                   reason: str) -> Reply:  # fmt: skip
    turn = await _turn(ctx, cmd.application_id, action)
    if isinstance(turn, Reply):
        return turn
    view, to = turn
    return await _moved(ctx, view, {"status": to, "decided_by": cmd.actor, "decision_reason": reason})


async def _turn(ctx: Context, application_id: Any,
                action: domain.Action) -> tuple[c.LoanApplicationView, c.ApplicationStatus] | Reply:  # fmt: skip
    """The application, locked to the commit, and where `action` takes it; or why not: unknown,
    another customer's, or not its turn."""
    view = await locked(ctx, application_id)
    if isinstance(view, Reply):
        return view
    to = domain.transition(view.status, action)
    if isinstance(to, Refusal):
        return refuse(to, {"status": view.status})
    return view, to


async def locked(ctx: Context, application_id: Any) -> c.LoanApplicationView | Reply:
    """The application, locked to the commit; or why not: unknown, or another customer's."""
    found = await store.application(ctx.conn, application_id, for_update=True)
    if found is None:
        return _not_found(application_id)
    return owner_only(ctx.actor, found[0].customer_id) or found[0]


async def product_of(ctx: Context, view: c.LoanApplicationView) -> c.LoanProductView:
    product = await store.product(ctx.conn, view.product_code, view.product_version)
    assert product is not None, "a product version is never deleted"
    return product


LAPSE_DAYS = 30  # §5's decision: an approval not disbursed within 30 days lapses


async def lapse(ctx: Context, business_date: Any) -> int:
    """Close of business: each approval older than 30 days and never disbursed, cancelled; how many."""
    lapsed = 0
    for view in await store.lapsing(ctx.conn, business_date - timedelta(days=LAPSE_DAYS)):
        await _moved(ctx, view, {"status": c.ApplicationStatus.cancelled, "decided_by": "system",
                                 "decision_reason": f"lapsed: not disbursed within {LAPSE_DAYS} days of its approval"})  # fmt: skip
        lapsed += 1
    return lapsed


async def _moved(ctx: Context, view: c.LoanApplicationView, changes: dict[str, Any]) -> Reply:
    moved = view.model_copy(update={**changes, "updated_at": ctx.now})
    await store.save_application(ctx.conn, moved)
    if fact := _FACTS.get(moved.status):
        await ctx.emit(fact(application=moved, occurred_at=ctx.now))
    return Reply.success(moved)
