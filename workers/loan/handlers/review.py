"""An application's review (issue 12; the rules in workers/loan/domain/review.py): documents added
by the customer or staff and reviewed by an officer, collateral replaced as a whole, and the stages
of `under_review` moved on one at a time. Each locks its application like every other change of it.
None changes the application's status, so none tells an event: the view says what happened, and
audit keeps every command. Reviewing documents and moving stages are staff's (routes.py wraps
them) and need `loans:review` as the edge verified it, as does collateral once submitted."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bus.actor import believed_permissions
from bus.handling import Context
from contracts import loan as c
from contracts.common import Reply
from workers.loan import store
from workers.loan.domain import review
from workers.loan.domain.applications import Refusal
from workers.loan.handlers.applications import locked, product_of, refuse


async def add_document(ctx: Context, cmd: c.AddApplicationDocument) -> Reply:
    view = await locked(ctx, cmd.application_id)
    if isinstance(view, Reply):
        return view
    request = cmd.model_dump(mode="json", include={"application_id", "kind", "name", "sha256"})
    if (known := await store.document_request(ctx.conn, cmd.document_id)) is not None:
        return _retried(view, known, request, cmd.document_id)
    if refusal := review.adding_refusal(view):
        return refuse(refusal)
    if not await store.insert_document(ctx.conn, cmd.document_id, view.application_id, request, ctx.now):
        return _exists(cmd.document_id)
    document = c.ApplicationDocument(document_id=cmd.document_id, kind=cmd.kind, name=cmd.name, sha256=cmd.sha256,
                                     added_by=cmd.actor, added_at=ctx.now)  # fmt: skip
    return await _saved(ctx, view, {"documents": [*view.documents, document]})


def _retried(view: c.LoanApplicationView, known: tuple[UUID, dict[str, Any]], request: dict[str, Any], document_id: UUID) -> Reply:
    """The same document added again answers the application as it is now; anything else under its id is refused."""
    application_id, asked = known
    if application_id != view.application_id or asked != request:
        return _exists(document_id)
    return Reply.success(view)


def _exists(document_id: UUID) -> Reply:
    return Reply.refusal(c.LoanError.document_exists, f"document {document_id} exists with other fields")


async def verify_document(ctx: Context, cmd: c.VerifyApplicationDocument) -> Reply:
    view = await locked(ctx, cmd.application_id)
    if isinstance(view, Reply):
        return view
    found = next((d for d in view.documents if d.document_id == cmd.document_id), None)
    if found is None:
        return Reply.refusal(c.LoanError.document_not_found, f"application {view.application_id} has no document {cmd.document_id}")
    if refusal := review.open_refusal(view.status, "documents are reviewed"):
        return refuse(refusal)
    permissions = believed_permissions(ctx.actor, cmd.permissions)
    decided = review.reviewed(found, cmd.decision, cmd.actor, permissions, cmd.reason, ctx.now)
    if isinstance(decided, Refusal):
        return refuse(decided)
    if decided is found:
        return Reply.success(view)
    return await _saved(ctx, view, {"documents": [decided if d is found else d for d in view.documents]})


async def set_collateral(ctx: Context, cmd: c.SetApplicationCollateral) -> Reply:
    view = await locked(ctx, cmd.application_id)
    if isinstance(view, Reply):
        return view
    permissions = believed_permissions(ctx.actor, cmd.permissions)
    business_date = await store.business_date(ctx.conn)
    if refusal := review.collateral_refusal(view.status, permissions, cmd.collateral, business_date):
        return refuse(refusal)
    return await _saved(ctx, view, {"collateral": cmd.collateral})


async def advance_stage(ctx: Context, cmd: c.AdvanceApplicationStage) -> Reply:
    view = await locked(ctx, cmd.application_id)
    if isinstance(view, Reply):
        return view
    product = await product_of(ctx, view)
    permissions = believed_permissions(ctx.actor, cmd.permissions)
    moved = review.advanced(view, product, cmd.stage, cmd.actor, permissions, ctx.now)
    if isinstance(moved, Refusal):
        return refuse(moved)
    if moved is view:
        return Reply.success(view)
    return await _saved(ctx, moved, {})


async def _saved(ctx: Context, view: c.LoanApplicationView, changes: dict[str, Any]) -> Reply:
    saved = view.model_copy(update={**changes, "updated_at": ctx.now})
    await store.save_application(ctx.conn, saved)
    return Reply.success(saved)
