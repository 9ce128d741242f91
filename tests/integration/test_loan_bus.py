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
