"""The loan worker through the bus (issue 12, so far): the schedule calculator, products, and
applications from draft to approval."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from uuid import UUID

from contracts import loan as c
from tests.integration.conftest import BusClient, eventually
from workers.loan.domain import repayment


async def test_the_calculator_draws_the_reference_schedule_with_due_dates_clamped_to_the_months_end(bus: BusClient) -> None:
    """banking-rules §9: 10,000.00 at 12% for 6 months, disbursed on 31 January 2028."""
    drawn = await bus.ok(c.CalculateLoan(principal=1_000_000, currency="INR", rate_bps=1_200, months=6,
                                         disbursed_on=dt.date(2028, 1, 31)))  # fmt: skip
    assert (drawn["emi"], drawn["total_interest"], drawn["maturity_date"]) == (172_548, 35_291, "2028-07-31")
    rows = [(i["due_date"], i["amount"], i["principal"], i["interest"], i["balance_after"]) for i in drawn["instalments"]]
    assert rows == [
        ("2028-02-29", 172_548, 162_548, 10_000, 837_452),
        ("2028-03-31", 172_548, 164_173, 8_375, 673_279),
        ("2028-04-30", 172_548, 165_815, 6_733, 507_464),
        ("2028-05-31", 172_548, 167_473, 5_075, 339_991),
        ("2028-06-30", 172_548, 169_148, 3_400, 170_843),
        ("2028-07-31", 172_551, 170_843, 1_708, 0),
    ]  # fmt: skip
    flat = await bus.ok(c.CalculateLoan(principal=10_000_000, currency="INR", rate_bps=1_200, months=12,
                                        method=c.InterestMethod.flat, disbursed_on=dt.date(2028, 1, 15)))  # fmt: skip
    assert (flat["emi"], flat["instalments"][-1]["amount"], flat["total_payable"]) == (933_333, 933_337, 11_200_000)


async def test_without_a_date_the_schedule_counts_from_the_open_business_date(bus: BusClient, admin_db) -> None:
    async def learnt() -> bool:
        return bool(await admin_db.fetchval("SELECT true FROM loan.business_day"))

    await eventually(learnt)  # day.opened reached the loan worker
    learnt_date = await admin_db.fetchval("SELECT business_date FROM loan.business_day")
    drawn = await bus.ok(c.CalculateLoan(principal=100_000, currency="INR", rate_bps=0, months=3))
    assert drawn["disbursed_on"] == learnt_date.isoformat()
    assert [i["amount"] for i in drawn["instalments"]] == [33_333, 33_333, 33_334]  # §9: 0% for 3 months


async def test_an_officer_versions_a_loan_product_within_its_types_caps_and_a_customer_defines_nothing(
    bus: BusClient, edge_bus: BusClient,
) -> None:  # fmt: skip
    import json
    import uuid

    shipped = {p["code"]: p for p in (await bus.ok(c.ListLoanProducts()))["items"]}
    assert {"personal", "home", "auto", "education", "business", "gold"} <= set(shipped)
    assert (shipped["home"]["max_rate_bps"], shipped["home"]["secured"], shipped["home"]["version"]) == (1_200, True, 1)
    code = f"home_{uuid.uuid4().hex[:8]}"
    terms = {k: v for k, v in shipped["home"].items() if k not in ("code", "version", "defined_by", "defined_at")}
    first = await bus.ok(c.DefineLoanProduct(**{**terms, "name": "Home Saver", "max_rate_bps": 950}, code=code, actor="officer-1"))
    assert (first["version"], first["max_rate_bps"], first["defined_by"]) == (1, 950, "officer-1")
    again = await bus.ok(c.DefineLoanProduct(**{**terms, "name": "Home Saver", "max_rate_bps": 950}, code=code, actor="officer-2"))
    assert (again["version"], again["defined_by"]) == (1, "officer-1")  # the same terms: nothing new
    second = await bus.ok(c.DefineLoanProduct(**{**terms, "name": "Home Saver", "max_rate_bps": 900}, code=code, actor="officer-1"))
    assert second["version"] == 2 and (await bus.ok(c.GetLoanProduct(code=code, version=1)))["max_rate_bps"] == 950
    capped = await bus.send(c.DefineLoanProduct(**{**terms, "max_rate_bps": 1_300}, code=code, actor="officer-1"))
    assert capped.error is not None and capped.error.code == "invalid_product" and "1200" in capped.error.message
    unknown = await bus.send(c.GetLoanProduct(code="no_such_product"))
    assert unknown.error is not None and unknown.error.code == "loan_product_not_found"
    actor = json.dumps({"sub": "cust-1", "roles": ["customer"], "customer_id": str(uuid.uuid4())})
    forged = await edge_bus.correlator.send(c.DefineLoanProduct(**terms, code=code, actor="officer-1"), message_id=uuid.uuid4().hex,
                                            timeout_s=10, headers={"x-actor": actor})  # fmt: skip
    assert forged.error is not None and forged.error.code == "forbidden"
    assert (await bus.ok(c.GetLoanProduct(code=code)))["version"] == 2


async def _borrower(bus: BusClient, admin_db) -> tuple[Any, Any]:
    """A customer with KYC completed and a savings account, once the loan worker has learnt both."""
    import uuid

    from contracts import account as a
    from tests.integration.test_account_bus import eligible_customer

    customer_id, account_id = await eligible_customer(bus, admin_db), uuid.uuid4()
    await bus.ok(a.OpenAccount(account_id=account_id, customer_id=customer_id, product_code="savings"))

    async def learnt() -> bool:
        return bool(await admin_db.fetchval(
            "SELECT c.kyc_status = 'completed' AND a.status = 'active' FROM loan.loan_customer c, loan.loan_account a "
            "WHERE c.customer_id = $1 AND a.account_id = $2", customer_id, account_id))  # fmt: skip

    await eventually(learnt)
    return customer_id, account_id


async def _open_on(bus: BusClient, admin_db, first: dt.date) -> dt.date:
    """The bank set to `first`, that date closed, and the loan worker told the next: which it returns."""
    from tests.integration.test_day_bus import close, open_to

    await open_to(bus, admin_db, first)
    opened = dt.date.fromisoformat((await close(bus, admin_db))["next_business_date"])

    async def learnt() -> bool:
        return bool(await admin_db.fetchval("SELECT business_date = $1 FROM loan.business_day", opened))

    await eventually(learnt, timeout_s=30)
    return opened


async def _close_through(bus: BusClient, admin_db, date: str) -> None:
    from tests.integration.test_day_bus import close

    while (await close(bus, admin_db))["business_date"] != date:
        pass


async def _approved(bus: BusClient, customer_id: Any, account_id: Any, *, customer: str, product: str = "personal") -> Any:
    """10,000.00 of the personal product (or `product`) at 12% for 6 months, applied for and
    approved by an officer; its application's id."""
    create = _application(customer_id, account_id, product_code=product, principal=1_000_000, months=6)
    await bus.ok(create)
    await bus.ok(c.SubmitLoanApplication(application_id=create.application_id, actor=customer))
    await bus.ok(c.ApproveLoanApplication(application_id=create.application_id, principal=1_000_000, rate_bps=1_200,
                                          permissions=["loans:approve"], actor="officer-3"))  # fmt: skip
    return create.application_id


async def _disbursed(bus: BusClient, customer_id: Any, account_id: Any, *, customer: str,
                     product: str = "personal") -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """That, disbursed by another officer, today."""
    import uuid

    application_id = await _approved(bus, customer_id, account_id, customer=customer, product=product)
    loan_id = uuid.uuid4()
    return loan_id, await bus.ok(c.DisburseLoan(application_id=application_id, loan_id=loan_id, actor="officer-4"))


def _application(customer_id: Any, account_id: Any, **changes: Any) -> c.CreateLoanApplication:
    """§9's first underwriting row: business 300,000.00, income 60,000.00, EMI 10,000.00, score 760, 6 years."""
    import uuid

    fields = dict(application_id=uuid.uuid4(), customer_id=customer_id, product_code="business", linked_account_id=account_id,
                  purpose="working capital", principal=30_000_000, currency="INR", months=24, monthly_income=6_000_000,
                  existing_emi=1_000_000, credit_score=760, employment_months=72, actor="cust-1")  # fmt: skip
    return c.CreateLoanApplication(**{**fields, **changes})


async def test_an_application_goes_from_draft_through_underwriting_to_an_approval_by_another_officer(
    bus: BusClient, edge_bus: BusClient, admin_db,
) -> None:  # fmt: skip
    import json
    import uuid

    customer_id, account_id = await _borrower(bus, admin_db)
    create = _application(customer_id, account_id)
    draft = await bus.ok(create)
    assert (draft["status"], draft["product_version"], draft["created_by"]) == ("draft", 1, "cust-1")
    assert (await bus.ok(create))["application_id"] == draft["application_id"]  # a retry: the same draft
    other = await bus.send(create.model_copy(update={"principal": 20_000_000}))
    assert other.error is not None and other.error.code == "application_exists"
    # A customer reads only their own.
    stranger = json.dumps({"sub": "cust-9", "roles": ["customer"], "customer_id": str(uuid.uuid4())})
    peek = await edge_bus.correlator.send(c.GetLoanApplication(application_id=create.application_id), message_id=uuid.uuid4().hex,
                                          timeout_s=10, headers={"x-actor": stranger})  # fmt: skip
    assert peek.error is not None and peek.error.code == "not_owner"
    submitted = await bus.ok(c.SubmitLoanApplication(application_id=create.application_id, actor="officer-1"))
    assert (submitted["status"], submitted["submitted_by"]) == ("submitted", "officer-1")
    reviewed = await bus.ok(c.UnderwriteLoanApplication(application_id=create.application_id, actor="officer-2"))
    assessment = reviewed["assessment"]
    assert (reviewed["status"], assessment["assessment_emi"], assessment["score"], assessment["band"], assessment["outcome"],
            assessment["recommended_rate_bps"]) == ("under_review", 667_333, -25, "low", "recommend", 1_000)  # §9
    approve = c.ApproveLoanApplication(application_id=create.application_id, principal=25_000_000, rate_bps=1_000,
                                       permissions=["loans:approve"], actor="officer-1")  # fmt: skip
    same = await bus.send(approve)
    assert same.error is not None and same.error.code == "same_maker"  # officer-1 submitted it
    too_much = await bus.send(approve.model_copy(update={"actor": "officer-3", "principal": 30_000_001}))
    assert too_much.error is not None and too_much.error.code == "invalid_approval"
    unpermitted = await bus.send(approve.model_copy(update={"actor": "officer-3", "permissions": []}))
    assert unpermitted.error is not None and unpermitted.error.code == "forbidden"
    approved = await bus.ok(approve.model_copy(update={"actor": "officer-3"}))
    schedule = approved["schedule"]
    assert (approved["status"], approved["decided_by"], approved["approved_principal"], approved["approved_rate_bps"]) == (
        "approved", "officer-3", 25_000_000, 1_000)
    assert (schedule["principal"], schedule["months"], len(schedule["instalments"])) == (25_000_000, 24, 24)
    assert sum(i["principal"] for i in schedule["instalments"]) == 25_000_000
    again = await bus.send(approve.model_copy(update={"actor": "officer-3"}))
    assert again.error is not None and again.error.code == "invalid_transition"
    told = await admin_db.fetch("SELECT routing_key FROM loan.outbox WHERE payload->'application'->>'application_id' = $1 "
                                "ORDER BY id", str(create.application_id))  # fmt: skip
    assert [r["routing_key"] for r in told] == ["loan.application_submitted", "loan.application_approved"]


async def test_applications_outside_their_product_or_from_the_ineligible_are_refused_and_underwriting_rejects_with_reasons(
    bus: BusClient, admin_db,
) -> None:  # fmt: skip
    import uuid

    customer_id, account_id = await _borrower(bus, admin_db)
    too_long = await bus.send(_application(customer_id, account_id, months=121))
    assert too_long.error is not None and too_long.error.code == "invalid_application"
    # Another customer's account: eligible only with one's own.
    other_customer, _ = await _borrower(bus, admin_db)
    borrowed = await bus.ok(_application(other_customer, account_id))
    refused = await bus.send(c.SubmitLoanApplication(application_id=uuid.UUID(borrowed["application_id"]), actor="officer-1"))
    assert refused.error is not None and refused.error.code == "not_eligible"
    # §9's fourth row: home 800,000.00, income 40,000.00, EMI 6,000.00, 680, half a year, collateral 850,000.00.
    home = _application(customer_id, account_id, product_code="home", principal=80_000_000, months=240, monthly_income=4_000_000,
                        existing_emi=600_000, credit_score=680, employment_months=6,
                        collateral=[c.Collateral(type=c.CollateralType.property, description="flat 4B", value=85_000_000)])  # fmt: skip
    await bus.ok(home)
    await bus.ok(c.SubmitLoanApplication(application_id=home.application_id, actor="cust-1"))
    rejected = await bus.ok(c.UnderwriteLoanApplication(application_id=home.application_id, actor="officer-2"))
    assert (rejected["status"], rejected["assessment"]["score"], rejected["assessment"]["band"]) == ("rejected", 90, "very_high")
    assert rejected["assessment"]["reasons"] == ["score_above_limit", "dti_above_limit"]
    assert rejected["assessment"]["recommended_rate_bps"] == 1_200  # 19% capped at the home product's 12%
    late = await bus.send(c.CancelLoanApplication(application_id=home.application_id, reason="changed my mind", actor="cust-1"))
    assert late.error is not None and late.error.code == "invalid_transition"


async def test_an_approved_application_is_disbursed_in_one_chain_net_of_its_processing_fee(bus: BusClient, admin_db) -> None:
    """§9: 100,000.00 with a 1% processing fee credits 99,000.00; the loan's own ledger account
    owes the whole 100,000.00; at 12% for 12 months its EMI is 8,884.88."""
    import uuid

    from contracts import ledger as L

    customer_id, account_id = await _borrower(bus, admin_db)
    create = _application(customer_id, account_id, product_code="personal", principal=10_000_000, months=12)
    await bus.ok(create)
    await bus.ok(c.SubmitLoanApplication(application_id=create.application_id, actor="cust-1"))
    await bus.ok(c.ApproveLoanApplication(application_id=create.application_id, principal=10_000_000, rate_bps=1_200,
                                          permissions=["loans:approve"], actor="officer-3"))  # fmt: skip
    disburse = c.DisburseLoan(application_id=create.application_id, loan_id=uuid.uuid4(), actor="officer-4")
    loan = await bus.ok(disburse)
    assert (loan["status"], loan["processing_fee"], loan["net_disbursed"], loan["number"][:2]) == ("active", 100_000, 9_900_000, "LN")
    assert loan["schedule"]["emi"] == 888_488 and loan["disbursed_on"] == loan["schedule"]["disbursed_on"]
    ledger_accounts = {UUID(a["id"]): a for a in (await bus.ok(L.LookupAccounts(ids=[disburse.loan_id, account_id])))["accounts"]}
    owed, credited = ledger_accounts[disburse.loan_id], ledger_accounts[account_id]
    assert (owed["code"], owed["debits_posted"], owed["credits_posted"]) == ("loan_principal", 10_000_000, 0)
    assert credited["balance"] == 9_900_000
    [line] = (await bus.ok(L.GetAccountHistory(account_id=account_id)))["items"]
    assert (line["narration"], line["counterparty"], line["reference"]) == (f"Loan {loan['number']} disbursed", loan["number"],
                                                                            loan["number"])  # fmt: skip
    application = await bus.ok(c.GetLoanApplication(application_id=create.application_id))
    assert (application["status"], application["loan_id"]) == ("disbursed", str(disburse.loan_id))
    assert (await bus.ok(disburse))["loan_id"] == loan["loan_id"]  # a retry: the same loan, nothing moves twice
    twice = await bus.send(disburse.model_copy(update={"loan_id": uuid.uuid4()}))
    assert twice.error is not None and twice.error.code == "invalid_transition"
    assert (await bus.ok(L.Verify()))["ok"]
    told = await admin_db.fetchval("SELECT count(*) FROM loan.outbox WHERE routing_key = 'loan.disbursed' "
                                   "AND payload->'loan'->>'loan_id' = $1", str(disburse.loan_id))  # fmt: skip
    assert told == 1


async def test_a_disbursement_the_ledger_refuses_leaves_the_application_approved(bus: BusClient, admin_db) -> None:
    import uuid

    from contracts import account as a

    customer_id, account_id = await _borrower(bus, admin_db)
    create = _application(customer_id, account_id, product_code="personal", principal=1_000_000, months=6)
    await bus.ok(create)
    await bus.ok(c.SubmitLoanApplication(application_id=create.application_id, actor="cust-1"))
    await bus.ok(c.ApproveLoanApplication(application_id=create.application_id, principal=1_000_000, rate_bps=1_200,
                                          permissions=["loans:approve"], actor="officer-3"))  # fmt: skip
    await bus.ok(a.FreezeAccount(account_id=account_id, actor="officer-1", reason="court order"))
    refused = await bus.send(c.DisburseLoan(application_id=create.application_id, loan_id=uuid.uuid4(), actor="officer-4"))
    assert refused.error is not None and refused.error.code == "disbursement_refused"
    assert refused.error.details["ledger_result"] == "credit_account_frozen"
    application = await bus.ok(c.GetLoanApplication(application_id=create.application_id))
    assert (application["status"], application["loan_id"]) == ("approved", None)  # free for another try once unfrozen
    await bus.ok(a.UnfreezeAccount(account_id=account_id, actor="officer-1", reason="order lifted"))
    loan = await bus.ok(c.DisburseLoan(application_id=create.application_id, loan_id=uuid.uuid4(), actor="officer-4"))
    assert (loan["status"], loan["net_disbursed"]) == ("active", 990_000)


async def test_close_of_business_debits_each_instalment_due_and_a_shortfall_leaves_it_partly_paid(bus: BusClient, admin_db) -> None:
    """10,000.00 at 12% for 6 months disbursed on Monday 8 January 2029 (§9's schedule): the close
    of 8 February takes instalment 1 whole (100.00 interest, 1,625.48 principal); with only 500.00
    above the floor on 8 March, instalment 2 takes its 83.75 interest and 416.25 of its principal."""
    import uuid

    from contracts import ledger as L

    async def close_through(date: str) -> None:
        await _close_through(bus, admin_db, date)

    assert await _open_on(bus, admin_db, dt.date(2029, 1, 5)) == dt.date(2029, 1, 8)
    customer_id, account_id = await _borrower(bus, admin_db)
    loan_id, loan = await _disbursed(bus, customer_id, account_id, customer="cust-1")
    assert (loan["disbursed_on"], loan["schedule"]["instalments"][0]["due_date"]) == ("2029-01-08", "2029-02-08")
    idle = _application(customer_id, account_id, product_code="personal", principal=500_000, months=6)  # approved, never disbursed
    await bus.ok(idle)
    await bus.ok(c.SubmitLoanApplication(application_id=idle.application_id, actor="cust-1"))
    approved = await bus.ok(c.ApproveLoanApplication(application_id=idle.application_id, principal=500_000, rate_bps=1_200,
                                                     permissions=["loans:approve"], actor="officer-3"))  # fmt: skip
    assert approved["approved_on"] == "2029-01-08"

    async def balances() -> tuple[int, int]:
        found = {UUID(a["id"]): a for a in (await bus.ok(L.LookupAccounts(ids=[account_id, loan_id])))["accounts"]}
        return found[account_id]["balance"], found[loan_id]["debits_posted"] - found[loan_id]["credits_posted"]

    assert await balances() == (990_000, 1_000_000)
    await close_through("2029-02-05")  # Monday: instalment 1 falls due within 3 days, and the customer is told once
    told_due = await admin_db.fetch("SELECT payload FROM loan.outbox WHERE routing_key = 'loan.instalment_due' "
                                    "AND payload->>'loan_id' = $1", str(loan_id))  # fmt: skip
    [due] = [json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"] for r in told_due]
    assert (due["instalment"], due["due_date"], due["amount"]) == (1, "2029-02-08", 172_548)
    await close_through("2029-02-07")
    assert (await bus.ok(c.GetLoanApplication(application_id=idle.application_id)))["status"] == "approved"  # day 30
    await close_through("2029-02-08")
    lapsed = await bus.ok(c.GetLoanApplication(application_id=idle.application_id))
    assert (lapsed["status"], lapsed["decided_by"], lapsed["decision_reason"][:6]) == ("cancelled", "system", "lapsed")
    assert [x["loan_id"] for x in (await bus.ok(c.ListCustomerLoans(customer_id=customer_id)))["items"]] == [str(loan_id)]
    first = (await bus.ok(c.GetLoan(loan_id=loan_id)))["instalments"][0]
    assert (first["status"], first["paid_interest"], first["paid_principal"]) == ("paid", 10_000, 162_548)
    assert await balances() == (990_000 - 172_548, 1_000_000 - 162_548)
    # The customer takes all but 500.00 above the 100.00 minimum balance.
    out = L.NewTransfer(id=uuid.uuid4(), debit_account_id=account_id, credit_account_id=L.bank_account_id("cash_vault", "INR"),
                        amount=990_000 - 172_548 - 60_000, currency="INR", code="withdrawal", narration="Cash withdrawal")  # fmt: skip
    assert (await bus.ok(L.CreateTransfers(transfers=[out])))["results"][0]["result"] == "ok"
    await close_through("2029-03-08")
    second = (await bus.ok(c.GetLoan(loan_id=loan_id)))["instalments"][1]
    assert (second["status"], second["paid_interest"], second["paid_principal"]) == ("partially_paid", 8_375, 41_625)
    assert await balances() == (10_000, 1_000_000 - 162_548 - 41_625)  # the floor kept, never refused
    report = await admin_db.fetchval("SELECT result FROM day.cob_step WHERE business_date = '2029-03-08' AND step = 'loan.repayments'")
    report = json.loads(report) if isinstance(report, str) else report
    assert report["partially_paid"] >= 1 and report["collected"] >= 50_000  # this loan's, and any other due that day
    # The next close finds it past due: the loan is overdue, 1 day, in the 1–30 bucket.
    await close_through("2029-03-09")
    overdue = await bus.ok(c.GetLoan(loan_id=loan_id))
    assert (overdue["status"], overdue["days_past_due"], overdue["bucket"]) == ("overdue", 1, "1-30")
    # The customer pays what instalment 2 still owes by hand, once money is back: not less, not more.
    cash = L.NewTransfer(id=uuid.uuid4(), debit_account_id=L.bank_account_id("cash_vault", "INR"), credit_account_id=account_id,
                         amount=200_000, currency="INR", code="deposit", narration="Cash deposit")  # fmt: skip
    assert (await bus.ok(L.CreateTransfers(transfers=[cash])))["results"][0]["result"] == "ok"

    def pay(amount: int, payment_id: Any = None) -> c.PayLoan:
        return c.PayLoan(loan_id=loan_id, payment_id=payment_id or uuid.uuid4(), amount=amount, actor="cust-1")

    for amount, code in ((100, "amount_below_due"), (122_549, "overpayment_refused")):
        refused = await bus.send(pay(amount))
        assert refused.error is not None and refused.error.code == code, refused
    payment = pay(122_548)
    paid = await bus.ok(payment)
    assert [(i["number"], i["status"]) for i in paid["instalments"][:3]] == [(1, "paid"), (2, "paid"), (3, "pending")]
    assert (await bus.ok(payment))["instalments"][1]["status"] == "paid"  # a retry: paid once
    assert await balances() == (210_000 - 122_548, 1_000_000 - 164_173 - 162_548)
    nothing = await bus.send(pay(1_000))
    assert nothing.error is not None and nothing.error.code == "nothing_due"  # instalment 3 falls due on 8 April
    await close_through("2029-03-12")
    recovered = await bus.ok(c.GetLoan(loan_id=loan_id))
    assert (recovered["status"], recovered["days_past_due"], recovered["bucket"]) == ("active", 0, "current")
    told = await admin_db.fetch("SELECT routing_key, coalesce(payload->>'business_date', payload->>'due_date') AS day "
                                "FROM loan.outbox WHERE payload->>'loan_id' = $1 ORDER BY id", str(loan_id))  # fmt: skip
    assert [(r["routing_key"], r["day"]) for r in told] == [  # (instalment 3, due 8 April, is told at the close of 5 April)
        ("loan.instalment_due", "2029-02-08"), ("loan.payment_received", "2029-02-08"), ("loan.instalment_due", "2029-03-08"),
        ("loan.payment_received", "2029-03-08"), ("loan.penalty_charged", "2029-03-09"), ("loan.payment_overdue", "2029-03-09"),
        ("loan.payment_received", "2029-03-12"), ("loan.recovered", "2029-03-12"),  # paid by hand on Monday 12 March
    ]  # fmt: skip
    paid_within_grace = (await bus.ok(c.GetLoan(loan_id=loan_id)))["instalments"][1]
    assert (paid_within_grace["penalty_due"], paid_within_grace["penalty_paid"]) == (0, 0)  # 4 days late: waived
    # Instalment 3 falls due on Sunday 8 April: Monday's close takes what the account holds above its
    # floor (the savings interest of the quarter in); from the 8th each day adds its penalty at 2% a year.
    await close_through("2029-04-20")
    third = (await bus.ok(c.GetLoan(loan_id=loan_id)))["instalments"][2]
    owing = third["principal"] + third["interest"] - third["paid_principal"] - third["paid_interest"]
    assert third["status"] == "partially_paid" and owing > 90_000
    penalty = repayment.penalty_additions(owing, 200, dt.date(2029, 4, 8), None, dt.date(2029, 4, 20))
    assert third["penalty_due"] == penalty > 0  # 12 days' additions: the rounded total of 12 days
    top_up = cash.model_copy(update={"id": uuid.uuid4(), "amount": 100_000})
    assert (await bus.ok(L.CreateTransfers(transfers=[top_up])))["results"][0]["result"] == "ok"
    short = await bus.send(pay(owing))  # 15 days late, past the grace: the penalty is owed first
    assert short.error is not None and short.error.code == "amount_below_due" and short.error.details["oldest_due"] == owing + penalty
    penalty_income = L.bank_account_id("penalty_income", "INR")
    before = (await bus.ok(L.LookupAccounts(ids=[penalty_income])))["accounts"][0]["credits_posted"]
    settled = (await bus.ok(pay(owing + penalty)))["instalments"][2]
    assert (settled["status"], settled["penalty_paid"], settled["penalty_due"]) == ("paid", penalty, penalty)
    assert (await bus.ok(L.LookupAccounts(ids=[penalty_income])))["accounts"][0]["credits_posted"] == before + penalty
    # Foreclosed on Monday 23 April: the principal not yet due (instalments 4–6), 15 days' interest
    # on it since the 8th, and 2% of it; nothing else is owed. Exactly today's quote, or nothing.
    from workers.loan.domain.schedule import foreclosure_quote

    quote = await bus.ok(c.GetForeclosureQuote(loan_id=loan_id))
    expected = foreclosure_quote(1_000_000 - 162_548 - 164_173 - 165_815, 1_200, 15)
    assert (quote["business_date"], quote["outstanding_principal"], quote["interest"], quote["prepayment_charge"], quote["arrears"],
            quote["total"]) == ("2029-04-23", 507_464, expected.interest_minor, expected.prepayment_charge_minor, 0, expected.total_minor)
    money = cash.model_copy(update={"id": uuid.uuid4(), "amount": 600_000})
    assert (await bus.ok(L.CreateTransfers(transfers=[money])))["results"][0]["result"] == "ok"
    wrong = await bus.send(c.ForecloseLoan(loan_id=loan_id, payment_id=uuid.uuid4(), amount=quote["total"] - 1, actor="cust-1"))
    assert wrong.error is not None and wrong.error.code == "quote_changed" and wrong.error.details["quote"]["total"] == quote["total"]
    closed = await bus.ok(c.ForecloseLoan(loan_id=loan_id, payment_id=uuid.uuid4(), amount=quote["total"], actor="cust-1"))
    assert closed["status"] == "closed"
    assert [i["status"] for i in closed["instalments"]] == ["paid", "paid", "paid", "foreclosed", "foreclosed", "foreclosed"]
    [owed] = (await bus.ok(L.LookupAccounts(ids=[loan_id])))["accounts"]
    assert (owed["closed"], owed["debits_posted"] - owed["credits_posted"]) == (True, 0)
    assert await admin_db.fetchval("SELECT count(*) FROM loan.outbox WHERE routing_key = 'loan.closed' "
                                   "AND payload->>'loan_id' = $1", str(loan_id)) == 1  # fmt: skip
    assert (await bus.ok(L.Verify()))["ok"]
    received = (await bus.ok(c.ListLoanRepayments(loan_id=loan_id)))["items"]
    kinds = [r["kind"] for r in received]
    assert kinds[0] == "foreclosure" and received[0]["amount"] == quote["total"] and kinds.count("payment") == 2
    assert [(r["instalment"], r["amount"]) for r in received if r["kind"] == "instalment"][-2:] == [(2, 50_000), (1, 172_548)]
    schedule = await bus.ok(c.GetLoanSchedule(loan_id=loan_id))
    assert (schedule["status"], [i["status"] for i in schedule["instalments"]]) == ("closed", [i["status"] for i in closed["instalments"]])
    receivable, _ = await _accrual_books_agree(bus, admin_db)
    assert await admin_db.fetchval("SELECT sum(accrued_interest) FROM loan.instalment WHERE loan_id = $1", loan_id) > 0
    left = await admin_db.fetchval("SELECT coalesce(sum(GREATEST(accrued_interest - paid_interest, 0)), 0) FROM loan.instalment "
                                   "WHERE loan_id = $1 AND status NOT IN ('foreclosed', 'written_off')", loan_id)  # fmt: skip
    assert left == 0  # foreclosed: nothing of this loan's accrual is left receivable


async def _accrual_books_agree(bus: BusClient, admin_db) -> tuple[int, int]:
    """The ledger's loan interest receivable and interest in suspense (INR) are exactly what the
    loan worker holds accrued and unreceived, and held in suspense, over every loan."""
    from contracts import ledger as L

    ids = [L.bank_account_id(code, "INR") for code in ("loan_interest_receivable", "interest_suspense")]
    receivable, suspense = (await bus.ok(L.LookupAccounts(ids=ids)))["accounts"]
    loans = await admin_db.fetchrow(
        "SELECT coalesce(sum(GREATEST(accrued_interest - paid_interest, 0)) FILTER (WHERE status NOT IN ('foreclosed', 'written_off', 'restructured')), 0) "
        "AS receivable, coalesce(sum(suspended_interest), 0) AS suspended FROM loan.instalment")  # fmt: skip
    books = (receivable["debits_posted"] - receivable["credits_posted"], suspense["credits_posted"] - suspense["debits_posted"])
    assert books == (loans["receivable"], loans["suspended"])
    return books


async def test_a_loan_unpaid_past_90_days_defaults_its_accrual_goes_to_suspense_and_a_write_off_leaves_recoveries_posting(
    bus: BusClient, admin_db
) -> None:  # fmt: skip
    """10,000.00 at 12% for 6 months disbursed on Monday 6 January 2031, its linked account emptied
    to the floor: nothing is ever collected. Day 91 after the first due date (8 May) turns it
    defaulted, and its accrued interest moves from income to suspense; later days accrue to
    suspense. Written off, its principal is a loan loss and its suspense is written back; it
    accrues, collects and charges nothing more, and a recovery posts to recoveries income."""
    import uuid

    from contracts import ledger as L
    from tests.integration.test_day_bus import deposit

    async def close_through(date: str) -> None:
        await _close_through(bus, admin_db, date)

    assert await _open_on(bus, admin_db, dt.date(2031, 1, 6)) == dt.date(2031, 1, 7)
    customer_id, account_id = await _borrower(bus, admin_db)
    loan_id, loan = await _disbursed(bus, customer_id, account_id, customer="cust-9")
    assert (loan["disbursed_on"], loan["schedule"]["instalments"][0]["due_date"]) == ("2031-01-07", "2031-02-07")
    out = L.NewTransfer(id=uuid.uuid4(), debit_account_id=account_id, credit_account_id=L.bank_account_id("cash_vault", "INR"),
                        amount=loan["net_disbursed"] - 10_000, currency="INR", code="withdrawal", narration="Cash withdrawal")  # fmt: skip
    assert (await bus.ok(L.CreateTransfers(transfers=[out])))["results"][0]["result"] == "ok"  # down to the 100.00 floor

    async def this_loan() -> Any:
        return await admin_db.fetchrow(
            "SELECT sum(accrued_interest - paid_interest) FILTER (WHERE status NOT IN ('foreclosed', 'written_off')) AS receivable, "
            "sum(suspended_interest) AS suspended, sum(accrued_interest) AS accrued, sum(penalty_due) AS penalties, "
            "sum(paid_interest) AS paid, sum(paid_principal) AS paid_principal "
            "FROM loan.instalment WHERE loan_id = $1", loan_id)  # fmt: skip

    interest = [i["interest"] for i in loan["schedule"]["instalments"]]
    await close_through("2031-05-08")  # day 90 after 7 February: overdue, not yet an NPA
    overdue = await bus.ok(c.GetLoan(loan_id=loan_id))
    assert (overdue["status"], overdue["days_past_due"], overdue["bucket"]) == ("overdue", 90, "61-90")
    standing = await this_loan()
    # 4 due, the 5th accruing; the savings interest of the quarter paid a few paise of it
    assert standing["suspended"] == 0 and standing["accrued"] > sum(interest[:4]) and standing["paid"] < 1_000
    assert standing["receivable"] == standing["accrued"] - standing["paid"]
    _, suspense_before = await _accrual_books_agree(bus, admin_db)
    await close_through("2031-05-09")
    defaulted = await bus.ok(c.GetLoan(loan_id=loan_id))
    assert (defaulted["status"], defaulted["days_past_due"], defaulted["bucket"]) == ("defaulted", 91, "91+")
    standing = await this_loan()
    assert standing["suspended"] == standing["receivable"] > 0  # all of it moved to suspense (income reversed)
    _, suspense = await _accrual_books_agree(bus, admin_db)
    assert suspense - suspense_before >= standing["suspended"]
    await close_through("2031-05-12")  # a weekend: three days' accrual, to suspense
    later = await this_loan()
    assert later["suspended"] == later["receivable"] > standing["suspended"]
    await _accrual_books_agree(bus, admin_db)

    write_off = c.WriteOffLoan(loan_id=loan_id, reason="no contact for 90 days; security none", actor="officer-9")
    denied = await bus.send(write_off)
    assert denied.error is not None and denied.error.code == "forbidden"
    [losses_before] = (await bus.ok(L.LookupAccounts(ids=[L.bank_account_id("loan_write_off", "INR")])))["accounts"]
    written = await bus.ok(write_off.model_copy(update={"permissions": ["loans:write_off"]}))
    assert written["status"] == "written_off" and {i["status"] for i in written["instalments"]} == {"written_off"}
    claim = written["write_off"]
    assert (claim["principal"], claim["interest"], claim["penalties"]) == (
        1_000_000 - later["paid_principal"], sum(interest[:4]) - later["paid"], later["penalties"])
    assert claim["claim"] == claim["principal"] + claim["interest"] + claim["penalties"] and claim["recovered"] == 0
    [losses] = (await bus.ok(L.LookupAccounts(ids=[L.bank_account_id("loan_write_off", "INR")])))["accounts"]
    assert losses["debits_posted"] - losses_before["debits_posted"] == claim["principal"]
    [owed] = (await bus.ok(L.LookupAccounts(ids=[loan_id])))["accounts"]
    assert (owed["closed"], owed["debits_posted"] - owed["credits_posted"]) == (True, 0)
    await _accrual_books_agree(bus, admin_db)
    assert (await this_loan())["suspended"] == 0
    assert (await bus.ok(write_off.model_copy(update={"permissions": ["loans:write_off"]})))["status"] == "written_off"  # a retry
    told = await admin_db.fetchval("SELECT count(*) FROM loan.outbox WHERE routing_key = 'loan.written_off' AND payload->>'loan_id' = $1",
                                   str(loan_id))  # fmt: skip
    assert told == 1

    frozen = await this_loan()
    await close_through("2031-05-13")  # written off: nothing accrues, is charged or collected
    assert await this_loan() == frozen
    await deposit(bus, account_id, 200_000)
    recovery = c.PayLoan(loan_id=loan_id, payment_id=uuid.uuid4(), amount=100_000, actor="cust-9")
    income = L.bank_account_id("loan_recovery_income", "INR")
    [income_before] = (await bus.ok(L.LookupAccounts(ids=[income])))["accounts"]
    recovered = await bus.ok(recovery)
    assert recovered["write_off"]["recovered"] == 100_000
    assert (await bus.ok(recovery))["write_off"]["recovered"] == 100_000  # a retry: recovered once
    [income_after] = (await bus.ok(L.LookupAccounts(ids=[income])))["accounts"]
    assert income_after["credits_posted"] - income_before["credits_posted"] == 100_000
    too_much = await bus.send(c.PayLoan(loan_id=loan_id, payment_id=uuid.uuid4(), amount=claim["claim"], actor="cust-9"))
    assert too_much.error is not None and too_much.error.code == "overpayment_refused"
    assert too_much.error.details["claim_left"] == claim["claim"] - 100_000
    assert (await bus.ok(L.Verify()))["ok"]


async def test_an_overdue_loan_is_restructured_by_maker_checker_its_interest_capitalised_and_the_new_schedule_collected(
    bus: BusClient, admin_db
) -> None:  # fmt: skip
    """10,000.00 at 12% for 6 months disbursed on Tuesday 6 January 2032, never paid: 12 days after
    its first due date one officer asks for 12 months at 11%, another approves. What it owed (all
    the principal, the first instalment's interest and the second period's accrual so far) is the
    new principal, its penalties waived; the old instalments close as restructured and the new
    ones, numbered 7 to 18, are collected at their due dates."""
    import uuid

    from contracts import ledger as L
    from tests.integration.test_day_bus import deposit

    assert await _open_on(bus, admin_db, dt.date(2032, 1, 5)) == dt.date(2032, 1, 6)
    customer_id, account_id = await _borrower(bus, admin_db)
    loan_id, loan = await _disbursed(bus, customer_id, account_id, customer="cust-7")
    out = L.NewTransfer(id=uuid.uuid4(), debit_account_id=account_id, credit_account_id=L.bank_account_id("cash_vault", "INR"),
                        amount=loan["net_disbursed"] - 10_000, currency="INR", code="withdrawal", narration="Cash withdrawal")  # fmt: skip
    assert (await bus.ok(L.CreateTransfers(transfers=[out])))["results"][0]["result"] == "ok"
    await _close_through(bus, admin_db, "2032-02-18")  # due 6 February, nothing taken: overdue, penalties past the grace
    overdue = await bus.ok(c.GetLoan(loan_id=loan_id))
    assert overdue["status"] == "overdue" and overdue["instalments"][0]["penalty_due"] > 0

    ask = c.RequestLoanRestructure(loan_id=loan_id, restructure_id=uuid.uuid4(), months=12, rate_bps=1_100,
                                   reason="income fell; a longer term", actor="officer-5")  # fmt: skip
    asked = (await bus.ok(ask))["restructure"]
    first = loan["schedule"]["instalments"][0]
    assert (asked["status"], asked["outstanding_principal"], asked["waived_penalties"]) == (
        "requested", 1_000_000, overdue["instalments"][0]["penalty_due"])
    assert asked["capitalised_interest"] > first["interest"] and asked["principal"] == 1_000_000 + asked["capitalised_interest"]
    assert len(asked["schedule"]["instalments"]) == 12 and asked["schedule"]["disbursed_on"] == "2032-02-19"
    reused = await bus.send(ask.model_copy(update={"months": 24}))
    assert reused.error is not None and reused.error.code == "restructure_exists"  # one id, one body
    assert (await bus.ok(ask))["restructure"]["months"] == 12  # the same body again: a retry
    other = await bus.send(ask.model_copy(update={"restructure_id": uuid.uuid4()}))
    assert other.error is not None and other.error.code == "invalid_transition"  # one waits already
    approve = c.ApproveLoanRestructure(loan_id=loan_id, restructure_id=ask.restructure_id, actor="officer-5", permissions=["loans:approve"])
    same = await bus.send(approve)
    assert same.error is not None and same.error.code == "same_maker"
    unpermitted = await bus.send(approve.model_copy(update={"actor": "officer-6", "permissions": []}))
    assert unpermitted.error is not None and unpermitted.error.code == "forbidden"
    [receivable_before] = (await bus.ok(L.LookupAccounts(ids=[L.bank_account_id("loan_interest_receivable", "INR")])))["accounts"]
    done = await bus.ok(approve.model_copy(update={"actor": "officer-6"}))
    view = done["restructure"]
    assert (done["status"], done["rate_bps"], view["status"], view["approved_by"]) == ("active", 1_100, "approved", "officer-6")
    assert [i["status"] for i in done["instalments"][:6]] == ["restructured"] * 6
    assert [i["number"] for i in done["instalments"][6:]] == list(range(7, 19))
    assert sum(i["principal"] for i in done["instalments"][6:]) == view["principal"]
    [owed] = (await bus.ok(L.LookupAccounts(ids=[loan_id])))["accounts"]
    assert owed["debits_posted"] - owed["credits_posted"] == view["principal"]  # the interest is principal now
    [receivable] = (await bus.ok(L.LookupAccounts(ids=[L.bank_account_id("loan_interest_receivable", "INR")])))["accounts"]
    assert receivable["credits_posted"] - receivable_before["credits_posted"] == view["capitalised_interest"]
    await _accrual_books_agree(bus, admin_db)
    assert (await bus.ok(approve.model_copy(update={"actor": "officer-6"})))["restructure"]["status"] == "approved"  # a retry

    seventh = done["instalments"][6]
    await deposit(bus, account_id, seventh["amount"])
    await _close_through(bus, admin_db, seventh["due_date"])
    collected = (await bus.ok(c.GetLoan(loan_id=loan_id)))["instalments"][6]
    assert (collected["status"], collected["paid_interest"] + collected["paid_principal"]) == ("paid", seventh["amount"])
    [owed] = (await bus.ok(L.LookupAccounts(ids=[loan_id])))["accounts"]
    assert owed["debits_posted"] - owed["credits_posted"] == view["principal"] - seventh["principal"]
    await _accrual_books_agree(bus, admin_db)
    told = await admin_db.fetchval("SELECT count(*) FROM loan.outbox WHERE routing_key = 'loan.restructured' AND payload->>'loan_id' = $1",
                                   str(loan_id))  # fmt: skip
    assert told == 1 and (await bus.ok(L.Verify()))["ok"]


async def test_a_late_fee_is_charged_once_past_the_grace_days_and_paid_after_the_penalty_before_interest(
    bus: BusClient, admin_db
) -> None:  # fmt: skip
    """A personal product with a 500.00 late fee: the first instalment, unpaid, is charged it at
    the first close past its 7 grace days, once; a payment by hand of all it owes books the
    penalty, then the fee to fee income, then interest and principal."""
    import uuid

    from contracts import ledger as L
    from tests.integration.test_day_bus import deposit

    personal = await bus.ok(c.GetLoanProduct(code="personal"))
    code = f"personal_{uuid.uuid4().hex[:6]}"
    terms = {k: v for k, v in personal.items() if k not in ("code", "version", "defined_by", "defined_at")}
    await bus.ok(c.DefineLoanProduct(**{**terms, "late_fee": 50_000}, code=code, actor="officer-1"))
    assert await _open_on(bus, admin_db, dt.date(2033, 1, 3)) == dt.date(2033, 1, 4)
    customer_id, account_id = await _borrower(bus, admin_db)
    loan_id, loan = await _disbursed(bus, customer_id, account_id, customer="cust-8", product=code)
    out = L.NewTransfer(id=uuid.uuid4(), debit_account_id=account_id, credit_account_id=L.bank_account_id("cash_vault", "INR"),
                        amount=loan["net_disbursed"] - 10_000, currency="INR", code="withdrawal", narration="Cash withdrawal")  # fmt: skip
    assert (await bus.ok(L.CreateTransfers(transfers=[out])))["results"][0]["result"] == "ok"
    await _close_through(bus, admin_db, "2033-02-11")  # due 4 February: 7 days late, within the grace
    assert (await bus.ok(c.GetLoan(loan_id=loan_id)))["instalments"][0]["charges_due"] == 0
    await _close_through(bus, admin_db, "2033-02-14")  # Monday: 10 days late
    first = (await bus.ok(c.GetLoan(loan_id=loan_id)))["instalments"][0]
    assert first["charges_due"] == 50_000 and first["penalty_due"] > 0
    await _close_through(bus, admin_db, "2033-02-15")
    first = (await bus.ok(c.GetLoan(loan_id=loan_id)))["instalments"][0]
    assert first["charges_due"] == 50_000  # once
    told = await admin_db.fetchval("SELECT sum((payload->>'late_fees')::bigint) FROM loan.outbox "
                                   "WHERE routing_key = 'loan.penalty_charged' AND payload->>'loan_id' = $1", str(loan_id))  # fmt: skip
    assert told == 50_000
    owing = first["principal"] + first["interest"] - first["paid_principal"] - first["paid_interest"]
    due = first["penalty_due"] + first["charges_due"] + owing
    await deposit(bus, account_id, due)
    fees = L.bank_account_id("fee_income", "INR")
    [before] = (await bus.ok(L.LookupAccounts(ids=[fees])))["accounts"]
    short = await bus.send(c.PayLoan(loan_id=loan_id, payment_id=uuid.uuid4(), amount=due - 1, actor="cust-8"))
    assert short.error is not None and short.error.code == "amount_below_due" and short.error.details["oldest_due"] == due
    paid = (await bus.ok(c.PayLoan(loan_id=loan_id, payment_id=uuid.uuid4(), amount=due, actor="cust-8")))["instalments"][0]
    assert (paid["status"], paid["charges_paid"], paid["penalty_paid"]) == ("paid", 50_000, first["penalty_due"])
    [after] = (await bus.ok(L.LookupAccounts(ids=[fees])))["accounts"]
    assert after["credits_posted"] - before["credits_posted"] == 50_000
    await _accrual_books_agree(bus, admin_db)
    assert (await bus.ok(L.Verify()))["ok"]


async def test_a_disbursement_goes_on_to_a_dealer_by_neft_and_a_payout_the_payment_worker_refuses_leaves_the_money_with_the_customer(
    bus: BusClient, admin_db
) -> None:  # fmt: skip
    """An auto loan's dealer is paid from the linked account by a payment order the payment worker
    places under its own rules (NEFT: held, waiting for its batch window); a payout beyond the net
    or to a CBS account is refused before any money moves; one to an IFSC the payment worker
    refuses leaves the loan disbursed and the money in the linked account, with why."""
    import uuid

    from contracts import ledger as L
    from contracts import payment as p

    assert await _open_on(bus, admin_db, dt.date(2034, 1, 2)) == dt.date(2034, 1, 3)
    customer_id, account_id = await _borrower(bus, admin_db)
    dealer = p.Payee(name="Speed Motors", account_number="123456789012", ifsc="HDFC0001234")
    application_id = await _approved(bus, customer_id, account_id, customer="cust-6")

    def disburse(payout: c.LoanPayout, loan_id: Any = None) -> c.DisburseLoan:
        return c.DisburseLoan(application_id=application_id, loan_id=loan_id or uuid.uuid4(), payout=payout, actor="officer-4")

    for payout in (c.LoanPayout(rail="neft", payee=dealer, amount=990_001),  # the net is 9,900.00
                   c.LoanPayout(rail="neft", payee=p.Payee(account_id=account_id), amount=100_000)):
        refused = await bus.send(disburse(payout))
        assert refused.error is not None and refused.error.code == "invalid_payout", refused
    assert (await bus.ok(c.GetLoanApplication(application_id=application_id)))["status"] == "approved"  # nothing moved
    loan_id = uuid.uuid4()
    loan = await bus.ok(disburse(c.LoanPayout(rail="neft", payee=dealer, amount=500_000), loan_id))
    payout = loan["payout"]
    assert (loan["status"], payout["status"], payout["amount"], payout["refusal"]) == ("active", "pending", 500_000, None)
    order = await bus.ok(p.GetPayment(payment_id=uuid.UUID(payout["payment_id"])))
    assert (order["kind"], order["payer_account_id"], order["amount"], order["payee"]["name"]) == ("neft", str(account_id), 500_000, "Speed Motors")
    [linked] = (await bus.ok(L.LookupAccounts(ids=[account_id])))["accounts"]
    assert (linked["balance"], linked["debits_pending"]) == (990_000, 500_000 + order["fee"])  # held for the batch
    again = await bus.ok(disburse(c.LoanPayout(rail="neft", payee=dealer, amount=500_000), loan_id))
    assert again["payout"]["payment_id"] == payout["payment_id"]  # a retry: one order

    other = await _approved(bus, customer_id, account_id, customer="cust-6")
    bad = c.DisburseLoan(application_id=other, loan_id=uuid.uuid4(), actor="officer-4",
                         payout=c.LoanPayout(rail="neft", payee=dealer.model_copy(update={"ifsc": "BAD"}), amount=100_000))  # fmt: skip
    stranded = await bus.ok(bad)
    assert stranded["status"] == "active" and stranded["payout"]["status"] == "refused"
    assert stranded["payout"]["refusal"].startswith("invalid_ifsc")
    assert (await bus.ok(L.Verify()))["ok"]
