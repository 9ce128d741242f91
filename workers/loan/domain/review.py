"""The review of a loan application (banking-rules §5 "Application": the stages inside
`under_review`; issue 12: documents, collateral, a co-applicant), pure: who may change what while,
what each stage needs before it is left, and who may borrow beside the applicant.

Decisions where §5 and the issue are silent:
- Stages, in `ReviewStage`'s order: documents, credit_check, valuation, legal, committee,
  agreement. Underwriting that puts an application under review starts it at `documents` (one put
  there before stages existed is taken to be at `documents`). An officer moves it one stage forward
  at a time, naming the stage it goes to: never back, never skipping, and naming the stage it is at
  answers it unchanged (two officers pressing at once move it once).
- Leaving `documents` needs no document pending and a verified document of each required kind:
  identity and income_proof always; property_papers for a home loan, vehicle_papers for an auto
  loan; valuation_report for every secured product (home, auto, gold, or one defined secured).
  A rejected document counts for nothing: the customer adds another.
- Leaving `valuation` needs collateral on a secured product (whether it covers 80% of the amount is
  underwriting's question, asked of the collateral it finds when it runs).
- The stage informs; it does not gate. §5 lets an officer approve or reject from `submitted` or
  `under_review`, without the score even, so approval stays open at any stage: the bank's
  procedure, not this worker, says whether the committee has sat.
- Documents are added while draft, submitted or under review, at most MAX_DOCUMENTS (rejected ones
  included). One added after the `documents` stage is reviewed like any other and holds nothing
  back: stages never go back.
- Four eyes on documents: whoever added a document does not review it.
- Collateral is replaced as a whole: by anyone allowed the application (a customer: their own)
  while it is a draft; once submitted or under review only by an officer with `loans:review`;
  never once it is decided. A valuation is not dated after the business date.
- A co-applicant is another customer the worker has learnt of, active with KYC completed; their
  income, when given, counts with the applicant's in underwriting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from contracts.loan import (
    MAX_DOCUMENTS,
    ApplicationDocument,
    ApplicationStatus,
    Collateral,
    DocumentDecision,
    DocumentKind,
    DocumentStatus,
    LoanApplicationView,
    LoanError,
    LoanProductView,
    LoanType,
    ReviewStage,
    StageEntry,
)
from workers.loan.domain.applications import Refusal, Standing

S = ApplicationStatus
REVIEW_PERMISSION = "loans:review"
OPEN = frozenset({S.draft, S.submitted, S.under_review})  # documents and collateral may change
STAGES = tuple(ReviewStage)
ALWAYS_REQUIRED = (DocumentKind.identity, DocumentKind.income_proof)
REQUIRED_BY_TYPE = {LoanType.home: DocumentKind.property_papers, LoanType.auto: DocumentKind.vehicle_papers}


def open_refusal(status: ApplicationStatus, what: str) -> Refusal | None:
    """Documents and collateral change only before the application is decided."""
    if status not in OPEN:
        return Refusal(LoanError.invalid_transition, f"{what} only while draft, submitted or under review, not {status}",
                       {"status": status.value})  # fmt: skip
    return None


# --- documents ------------------------------------------------------------------------------------


def adding_refusal(view: LoanApplicationView) -> Refusal | None:
    if refusal := open_refusal(view.status, "documents are added"):
        return refusal
    if len(view.documents) >= MAX_DOCUMENTS:
        return Refusal(LoanError.too_many_documents, f"an application holds at most {MAX_DOCUMENTS} documents")
    return None


def reviewed(document: ApplicationDocument, decision: DocumentDecision, reviewer: str, permissions: Iterable[str],
             reason: str | None, at: dt.datetime) -> ApplicationDocument | Refusal:  # fmt: skip
    """The document as the officer leaves it: the same one when they decide again as before."""
    if REVIEW_PERMISSION not in permissions:
        return Refusal(LoanError.forbidden, f"reviewing documents needs the `{REVIEW_PERMISSION}` permission")
    if document.status != DocumentStatus.pending:
        if document.status.value == decision.value:
            return document
        return Refusal(LoanError.document_already_reviewed, f"document {document.document_id} is {document.status} already",
                       {"status": document.status.value})  # fmt: skip
    if reviewer == document.added_by:
        return Refusal(LoanError.same_maker, "whoever added a document may not review it")
    rejected = decision == DocumentDecision.rejected
    return document.model_copy(update={"status": DocumentStatus(decision.value), "reviewed_by": reviewer, "reviewed_at": at,
                                       "rejection_reason": reason if rejected else None})  # fmt: skip


def required_kinds(product: LoanProductView) -> tuple[DocumentKind, ...]:
    """The kinds a verified document must show before the review leaves `documents`."""
    kinds = [*ALWAYS_REQUIRED]
    if by_type := REQUIRED_BY_TYPE.get(product.type):
        kinds.append(by_type)
    if product.secured:
        kinds.append(DocumentKind.valuation_report)
    return tuple(kinds)


def documents_refusal(documents: list[ApplicationDocument], product: LoanProductView) -> Refusal | None:
    pending = [str(d.document_id) for d in documents if d.status == DocumentStatus.pending]
    verified = {d.kind for d in documents if d.status == DocumentStatus.verified}
    missing = [k.value for k in required_kinds(product) if k not in verified]
    if not pending and not missing:
        return None
    why = "; ".join(part for part in (pending and f"{len(pending)} document(s) not yet reviewed",
                                      missing and f"no verified {', '.join(missing)}") if part)  # fmt: skip
    return Refusal(LoanError.documents_incomplete, f"the documents stage is not done: {why}", {"pending": pending, "missing": missing})


# --- collateral -----------------------------------------------------------------------------------


def collateral_refusal(status: ApplicationStatus, permissions: Iterable[str], collateral: list[Collateral],
                       business_date: dt.date | None) -> Refusal | None:  # fmt: skip
    if refusal := open_refusal(status, "collateral is changed"):
        return refusal
    if status != S.draft and REVIEW_PERMISSION not in permissions:
        return Refusal(LoanError.forbidden, f"once submitted, only an officer with `{REVIEW_PERMISSION}` changes the collateral")
    return valuation_refusal(collateral, business_date)


def valuation_refusal(collateral: list[Collateral], business_date: dt.date | None) -> Refusal | None:
    """No valuation dated after the business date (unknown yet: nothing to compare with)."""
    for item in collateral:
        if business_date is not None and item.valued_on is not None and item.valued_on > business_date:
            return Refusal(LoanError.invalid_collateral, f"{item.description!r} is valued on {item.valued_on}, "
                                                         f"after the business date {business_date}")  # fmt: skip
    return None


# --- stages ---------------------------------------------------------------------------------------


def stage_of(view: LoanApplicationView) -> ReviewStage:
    """Where the review stands; one under review from before stages existed is at the first."""
    return view.stage or STAGES[0]


def advanced(view: LoanApplicationView, product: LoanProductView, to: ReviewStage, by: str, permissions: Iterable[str],
             at: dt.datetime) -> LoanApplicationView | Refusal:  # fmt: skip
    """The application at stage `to`, with its history; unchanged when it is there already."""
    if REVIEW_PERMISSION not in permissions:
        return Refusal(LoanError.forbidden, f"moving the review on needs the `{REVIEW_PERMISSION}` permission")
    if view.status != S.under_review:
        return Refusal(LoanError.invalid_transition, f"only an application under review has stages, not one {view.status}")
    current = stage_of(view)
    if to == current:
        return view
    if refusal := _order_refusal(current, to):
        return refusal
    if refusal := leaving_refusal(view, product, current):
        return refusal
    history = [*view.stage_history, StageEntry(stage=to, by=by, at=at)]
    return view.model_copy(update={"stage": to, "stage_history": history})


def _order_refusal(current: ReviewStage, to: ReviewStage) -> Refusal | None:
    here = STAGES.index(current)
    if here + 1 == len(STAGES):
        return Refusal(LoanError.invalid_transition, f"{current} is the last stage")
    if STAGES.index(to) != here + 1:
        return Refusal(LoanError.invalid_transition, f"stages go one at a time and never back: after {current} comes {STAGES[here + 1]}")
    return None


def leaving_refusal(view: LoanApplicationView, product: LoanProductView, stage: ReviewStage) -> Refusal | None:
    """What a stage needs before the review moves past it."""
    if stage == ReviewStage.documents:
        return documents_refusal(view.documents, product)
    if stage == ReviewStage.valuation and product.secured and not view.collateral:
        return Refusal(LoanError.collateral_missing, f"{product.code} is secured: value its collateral before moving on")
    return None


def first_stage(by: str, at: dt.datetime) -> dict[str, object]:
    """What underwriting writes when it puts an application under review."""
    return {"stage": STAGES[0], "stage_history": [StageEntry(stage=STAGES[0], by=by, at=at)]}


# --- co-applicant ---------------------------------------------------------------------------------


def co_applicant_refusal(view: LoanApplicationView, standing: Standing | None) -> Refusal | None:
    """None without a co-applicant; else they must be another customer, active with KYC completed."""
    if view.co_applicant_id is None:
        return None
    if view.co_applicant_id == view.customer_id:
        return Refusal(LoanError.not_eligible, "the co-applicant must be another customer than the applicant")
    if standing is None or standing.status != "active" or standing.kyc_status != "completed":
        return Refusal(LoanError.not_eligible, "the co-applicant must be a customer of the bank, active with KYC completed")
    return None
