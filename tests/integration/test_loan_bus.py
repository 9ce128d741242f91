"""The loan worker through the bus (issue 12, so far): the schedule calculator."""

from __future__ import annotations

import datetime as dt

from contracts import loan as c
from tests.integration.conftest import BusClient, eventually


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
