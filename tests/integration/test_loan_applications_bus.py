"""An application's review through the bus (issue 12): documents added by the customer and
reviewed by another officer, collateral replaced, the stages of under_review, a co-applicant; and
who may do which (a customer on another's application, a body that names someone else, a partner
that claims an officer's permissions). The business date may be any: other tests of the package
move it (tests/integration/test_day_bus.open_to)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

from contracts import loan as c
from contracts.common import Reply
from tests.integration.conftest import BusClient, eventually
from tests.integration.test_loan_bus import _application, _borrower
from tests.integration.test_partners import AddPartner, add_partner, ask_as, granted  # noqa: F401  (a fixture)

REVIEW = ["loans:review"]
DIGEST = "9f" * 32


def _as_customer(customer_id: Any, sub: str = "cust-1") -> dict[str, str]:
    return {"x-actor": json.dumps({"sub": sub, "roles": ["customer"], "customer_id": str(customer_id)})}


async def _as(edge_bus: BusClient, command: c.Command, headers: dict[str, str]) -> Reply:
    return await edge_bus.correlator.send(command, message_id=uuid.uuid4().hex, timeout_s=10, headers=headers)


def _document(application_id: Any, kind: str, actor: str = "teller-1", **changes: Any) -> c.AddApplicationDocument:
    fields = dict(application_id=application_id, document_id=uuid.uuid4(), kind=kind, name=f"{kind} scan", sha256=DIGEST, actor=actor)
    return c.AddApplicationDocument(**{**fields, **changes})


def _verify(application_id: Any, document_id: Any, actor: str = "officer-2", **changes: Any) -> c.VerifyApplicationDocument:
    fields = dict(application_id=application_id, document_id=document_id, decision="verified", permissions=REVIEW, actor=actor)
    return c.VerifyApplicationDocument(**{**fields, **changes})


def _stage(application_id: Any, stage: str, actor: str = "officer-2", **changes: Any) -> c.AdvanceApplicationStage:
    return c.AdvanceApplicationStage(**{"application_id": application_id, "stage": stage, "permissions": REVIEW, "actor": actor,
                                        **changes})  # fmt: skip


async def _day_known(admin_db) -> None:
    """The loan worker has learnt a business date (approval and valuation dates need one)."""
    await eventually(lambda: admin_db.fetchval("SELECT true FROM loan.business_day"), timeout_s=30)


def _refused(reply: Reply, code: str) -> Reply:
    assert reply.error is not None and reply.error.code == code, reply
    return reply


async def test_a_customer_adds_documents_to_their_own_application_only_and_another_officer_reviews_them(
    bus: BusClient, edge_bus: BusClient, admin_db,
) -> None:  # fmt: skip
    customer_id, account_id = await _borrower(bus, admin_db)
    create = _application(customer_id, account_id, product_code="personal", principal=1_000_000, months=6)
    await bus.ok(create)
    mine = _as_customer(customer_id)
    passport = _document(create.application_id, "identity", actor="officer-9")  # the body names an officer: not believed
    added = await _as(edge_bus, passport, mine)
    assert added.ok and isinstance(added.result, dict), added
    [document] = added.result["documents"]
    assert (document["kind"], document["status"], document["added_by"], document["sha256"]) == ("identity", "pending", "cust-1", DIGEST)
    again = await _as(edge_bus, passport, mine)  # a retry under another message id: nothing added twice
    assert again.ok and len(again.result["documents"]) == 1  # type: ignore[index]
    _refused(await _as(edge_bus, passport.model_copy(update={"sha256": "00" * 32}), mine), "document_exists")
    # Another customer: not on this application, whatever id they use.
    stranger = _as_customer(uuid.uuid4(), sub="cust-9")
    _refused(await _as(edge_bus, _document(create.application_id, "income_proof"), stranger), "not_owner")
    _refused(await _as(edge_bus, _verify(create.application_id, passport.document_id), mine), "forbidden")  # staff's work
    # The same document id on another application (even the customer's own) is another document.
    second = _application(customer_id, account_id, product_code="personal", principal=1_000_000, months=6)
    await bus.ok(second)
    _refused(await bus.send(passport.model_copy(update={"application_id": second.application_id})), "document_exists")
    # Reviewed by an officer with loans:review who did not add it; a rejection says why and sticks.
    own = await bus.ok(_document(create.application_id, "income_proof", actor="officer-2"))
    slip = own["documents"][1]["document_id"]
    _refused(await bus.send(_verify(create.application_id, slip)), "same_maker")
    _refused(await bus.send(_verify(create.application_id, passport.document_id, permissions=[])), "forbidden")
    _refused(await bus.send(_verify(create.application_id, uuid.uuid4())), "document_not_found")
    verified = await bus.ok(_verify(create.application_id, passport.document_id))
    assert (verified["documents"][0]["status"], verified["documents"][0]["reviewed_by"]) == ("verified", "officer-2")
    rejected = await bus.ok(_verify(create.application_id, slip, actor="officer-3", decision="rejected", reason="unreadable"))
    assert (rejected["documents"][1]["status"], rejected["documents"][1]["rejection_reason"]) == ("rejected", "unreadable")
    assert (await bus.ok(_verify(create.application_id, slip, actor="officer-4", decision="rejected", reason="again")))[
        "documents"][1]["reviewed_by"] == "officer-3"  # fmt: skip  # decided again the same way: unchanged
    turned = _refused(await bus.send(_verify(create.application_id, slip, actor="officer-4")), "document_already_reviewed")
    assert turned.error.details == {"status": "rejected"}  # type: ignore[union-attr]
    seen = await _as(edge_bus, c.GetLoanApplication(application_id=create.application_id), mine)
    assert [d["status"] for d in seen.result["documents"]] == ["verified", "rejected"]  # type: ignore[index]
    # Once decided, the documents are closed.
    await bus.ok(c.CancelLoanApplication(application_id=create.application_id, reason="changed my mind", actor="cust-1"))
    _refused(await _as(edge_bus, _document(create.application_id, "bank_statement"), mine), "invalid_transition")


async def test_an_application_holds_at_most_twenty_documents(bus: BusClient, admin_db) -> None:
    customer_id, account_id = await _borrower(bus, admin_db)
    create = _application(customer_id, account_id)
    await bus.ok(create)
    for _ in range(c.MAX_DOCUMENTS):
        await bus.ok(_document(create.application_id, "other"))
    _refused(await bus.send(_document(create.application_id, "other")), "too_many_documents")


async def _home_under_review(bus: BusClient, admin_db, collateral: list[c.Collateral]) -> tuple[c.CreateLoanApplication, dict[str, Any]]:
    """A home loan underwriting recommends: 1,000,000.00 on 500,000.00 a month, score 780, 10 years."""
    customer_id, account_id = await _borrower(bus, admin_db)
    create = _application(customer_id, account_id, product_code="home", principal=100_000_000, months=240,
                          monthly_income=50_000_000, existing_emi=0, credit_score=780, employment_months=120,
                          collateral=collateral)  # fmt: skip
    await bus.ok(create)
    await bus.ok(c.SubmitLoanApplication(application_id=create.application_id, actor="cust-1"))
    return create, await bus.ok(c.UnderwriteLoanApplication(application_id=create.application_id, actor="officer-2"))


async def test_the_review_moves_through_its_stages_one_at_a_time_and_approval_does_not_wait_for_them(
    bus: BusClient, edge_bus: BusClient, admin_db,
) -> None:  # fmt: skip
    flat = c.Collateral(type=c.CollateralType.property, description="flat 4B", value=200_000_000, valued_on=dt.date(2020, 1, 6),
                        valuer="Acme Valuers")  # fmt: skip
    create, reviewed = await _home_under_review(bus, admin_db, [flat])
    app_id = create.application_id
    assert (reviewed["status"], reviewed["stage"], reviewed["assessment"]["ltv"][:4]) == ("under_review", "documents", "0.5")
    assert [(e["stage"], e["by"]) for e in reviewed["stage_history"]] == [("documents", "officer-2")]
    _refused(await bus.send(_stage(app_id, "valuation")), "invalid_transition")  # no skipping
    incomplete = _refused(await bus.send(_stage(app_id, "credit_check")), "documents_incomplete")
    needed = ["identity", "income_proof", "property_papers", "valuation_report"]
    assert incomplete.error.details == {"pending": [], "missing": needed}  # type: ignore[union-attr]
    for kind in needed:
        added = _document(app_id, kind)
        await bus.ok(added)
        await bus.ok(_verify(app_id, added.document_id))
    waiting = _document(app_id, "bank_statement")
    await bus.ok(waiting)
    pending = _refused(await bus.send(_stage(app_id, "credit_check")), "documents_incomplete")
    assert pending.error.details == {"pending": [str(waiting.document_id)], "missing": []}  # type: ignore[union-attr]
    await bus.ok(_verify(app_id, waiting.document_id, decision="rejected", reason="another bank's"))
    # A customer moves nothing, whatever their body claims.
    _refused(await _as(edge_bus, _stage(app_id, "credit_check"), _as_customer(create.customer_id)), "forbidden")
    _refused(await bus.send(_stage(app_id, "credit_check", permissions=[])), "forbidden")
    checked = await bus.ok(_stage(app_id, "credit_check", actor="officer-5"))
    assert (await bus.ok(_stage(app_id, "credit_check", actor="officer-6")))["stage_history"] == checked["stage_history"]  # once
    _refused(await bus.send(_stage(app_id, "documents")), "invalid_transition")  # never back
    await bus.ok(_stage(app_id, "valuation"))
    # An officer takes the collateral away: a secured loan does not leave valuation without it.
    emptied = await bus.ok(c.SetApplicationCollateral(application_id=app_id, collateral=[], permissions=REVIEW, actor="officer-2"))
    assert emptied["collateral"] == [] and emptied["assessment"]["ltv"] is not None  # the assessment stays as of when it ran
    _refused(await bus.send(_stage(app_id, "legal")), "collateral_missing")
    await bus.ok(c.SetApplicationCollateral(application_id=app_id, collateral=[flat], permissions=REVIEW, actor="officer-2"))
    at_legal = await bus.ok(_stage(app_id, "legal"))
    assert [e["stage"] for e in at_legal["stage_history"]] == ["documents", "credit_check", "valuation", "legal"]
    assert [e["by"] for e in at_legal["stage_history"]][:2] == ["officer-2", "officer-5"]
    # The stage informs; approval (§5: from submitted or under_review) does not wait for the committee.
    await _day_known(admin_db)
    approved = await bus.ok(c.ApproveLoanApplication(application_id=app_id, principal=100_000_000, rate_bps=1_000,
                                                     permissions=["loans:approve"], actor="officer-3"))  # fmt: skip
    assert (approved["status"], approved["stage"]) == ("approved", "legal")
    _refused(await bus.send(_stage(app_id, "committee")), "invalid_transition")


async def test_collateral_is_the_customers_while_a_draft_then_an_officers_and_underwriting_reads_the_list_it_finds(
    bus: BusClient, edge_bus: BusClient, admin_db,
) -> None:  # fmt: skip
    customer_id, account_id = await _borrower(bus, admin_db)
    create = _application(customer_id, account_id, product_code="home", principal=100_000_000, months=240,
                          monthly_income=50_000_000, existing_emi=0, credit_score=780, employment_months=120)  # fmt: skip
    await bus.ok(create)
    app_id, mine = create.application_id, _as_customer(customer_id)
    small = c.Collateral(type=c.CollateralType.property, description="plot 7", value=50_000_000)
    big = c.Collateral(type=c.CollateralType.property, description="flat 4B", value=125_000_000, valuer="Acme Valuers")
    claimed = c.SetApplicationCollateral(application_id=app_id, collateral=[small], permissions=REVIEW, actor="officer-1")
    _refused(await _as(edge_bus, claimed, _as_customer(uuid.uuid4(), sub="cust-9")), "not_owner")
    assert (await _as(edge_bus, claimed, mine)).ok  # their own draft
    await _day_known(admin_db)
    future = big.model_copy(update={"valued_on": dt.date(2100, 1, 4)})
    _refused(await bus.send(claimed.model_copy(update={"collateral": [future]})), "invalid_collateral")
    await bus.ok(c.SubmitLoanApplication(application_id=app_id, actor="cust-1"))
    # Submitted: the customer's edge permissions (loans:apply) no longer reach it; an officer's do.
    late = claimed.model_copy(update={"collateral": [big], "permissions": ["loans:apply"]})
    _refused(await _as(edge_bus, late, mine), "forbidden")
    replaced = await bus.ok(claimed.model_copy(update={"collateral": [big]}))
    assert [(x["description"], x["valuer"]) for x in replaced["collateral"]] == [("flat 4B", "Acme Valuers")]
    reviewed = await bus.ok(c.UnderwriteLoanApplication(application_id=app_id, actor="officer-2"))
    assert reviewed["assessment"]["ltv"] == "0.8"  # of the list it found (the plot's alone would be 2, refused)
    await bus.ok(c.RejectLoanApplication(application_id=app_id, reason="no", actor="officer-2"))
    _refused(await bus.send(claimed), "invalid_transition")


async def test_a_co_applicant_must_be_another_customer_the_worker_knows_as_eligible_and_their_income_counts(
    bus: BusClient, admin_db,
) -> None:  # fmt: skip
    customer_id, account_id = await _borrower(bus, admin_db)
    partner_id, _ = await _borrower(bus, admin_db)
    asked = dict(product_code="personal", principal=5_000_000, months=24, monthly_income=200_000, existing_emi=0, credit_score=760,
                 employment_months=72)  # fmt: skip
    for co_applicant, who in ((uuid.uuid4(), "a stranger"), (customer_id, "the applicant")):
        odd = _application(customer_id, account_id, co_applicant_id=co_applicant, **asked)
        await bus.ok(odd)
        refused = _refused(await bus.send(c.SubmitLoanApplication(application_id=odd.application_id, actor="cust-1")), "not_eligible")
        assert "co-applicant" in refused.error.message, who  # type: ignore[union-attr]
    alone = _application(customer_id, account_id, **asked)
    together = _application(customer_id, account_id, co_applicant_id=partner_id, co_applicant_monthly_income=1_000_000, **asked)
    for create in (alone, together):
        await bus.ok(create)
        await bus.ok(c.SubmitLoanApplication(application_id=create.application_id, actor="cust-1"))
    solo = await bus.ok(c.UnderwriteLoanApplication(application_id=alone.application_id, actor="officer-2"))
    pair = await bus.ok(c.UnderwriteLoanApplication(application_id=together.application_id, actor="officer-2"))
    assert solo["status"] == "rejected" and "dti_above_limit" in solo["assessment"]["reasons"]  # 2,000.00 a month alone
    assert (pair["status"], pair["co_applicant_monthly_income"]) == ("under_review", 1_000_000)  # 12,000.00 together
    assert Decimal(pair["assessment"]["dti"]) * 6 == Decimal(solo["assessment"]["dti"])  # the same debt over six times the income


async def test_a_partner_claiming_an_officers_permissions_reviews_nothing(
    bus: BusClient, admin_db, add_partner: AddPartner,  # noqa: F811
) -> None:  # fmt: skip
    keys = (c.VerifyApplicationDocument.routing_key, c.AdvanceApplicationStage.routing_key)
    p = await add_partner(*keys)
    await granted(admin_db, "loan", p.user, set(keys))
    customer_id, account_id = await _borrower(bus, admin_db)
    create = _application(customer_id, account_id)
    await bus.ok(create)
    added = _document(create.application_id, "identity")
    await bus.ok(added)
    refused = _refused(await ask_as(p, _verify(create.application_id, added.document_id)), "forbidden")
    assert "loans:review" in refused.error.message  # type: ignore[union-attr]  # the worker's refusal: the grant let it through
    seen = await bus.ok(c.GetLoanApplication(application_id=create.application_id))
    assert seen["documents"][0]["status"] == "pending"
