"""The day worker through the bus, with the ledger doing its close-of-business step: a day closes
with a balanced trial balance and the date moves to the next business day; a stale close is
refused; holidays are skipped; a failed step stops the close until it is mended; an unreported
step is asked again; many days close one after another."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import uuid

import asyncpg

from contracts import account as a
from contracts import day as c
from contracts import ledger as L
from tests.integration.conftest import BusClient, eventually, publish_as
from tests.integration.test_account_bus import eligible_customer
from workers.day import domain
from workers.day import handlers as day_handlers


async def business_day(bus: BusClient) -> dict[str, Any]:
    return await bus.ok(c.GetBusinessDay())


async def close(bus: BusClient, admin_db: asyncpg.Pool) -> dict[str, Any]:
    """Close the open date and wait until it is closed; the `day.closed` event it published (a
    new one: tests set the bank back to dates closed before)."""
    open_date = dt.date.fromisoformat((await business_day(bus))["business_date"])
    before = await admin_db.fetchval("SELECT coalesce(max(id), 0) FROM day.outbox")
    await bus.ok(c.CloseDay(business_date=open_date))

    async def closed() -> Any:
        return await closed_event(admin_db, open_date, after_id=before)

    try:
        # Past the day worker's re-ask of an unreported step (CBS_DAY_STEP_RESEND_S, 30 s): a close on a busy
        # machine (the whole suite, the e2e cluster beside it) once took longer than 30 s.
        return await eventually(closed, timeout_s=60)
    except AssertionError as exc:  # say which step the close waits on, and since when
        steps = await admin_db.fetch("SELECT step, status, error, attempts, asked_at, reported_at, clock_timestamp() AS now "
                                     "FROM day.cob_step WHERE business_date = $1 ORDER BY asked_at NULLS LAST", open_date)  # fmt: skip
        raise AssertionError(f"{exc}; the close of {open_date}: {[dict(s) for s in steps]}") from None


async def closed_event(admin_db: asyncpg.Pool, business_date: dt.date, after_id: int = 0) -> dict[str, Any] | None:
    payload = await admin_db.fetchval(
        "SELECT payload FROM day.outbox WHERE routing_key = 'day.closed' AND payload->>'business_date' = $1 "
        "AND id > $2 ORDER BY id DESC LIMIT 1",
        business_date.isoformat(), after_id,
    )  # fmt: skip
    return None if payload is None else (json.loads(payload) if isinstance(payload, str) else payload)


async def test_a_day_closes_with_a_balanced_trial_balance_and_the_next_business_day_opens(
    bus: BusClient, admin_db: asyncpg.Pool,
) -> None:  # fmt: skip
    before = await business_day(bus)
    assert before["status"] == "open" and dt.date.fromisoformat(before["business_date"]).weekday() < 5
    moved = L.NewTransfer(id=uuid.uuid4(), debit_account_id=L.bank_account_id("cash_vault", "INR"),
                          credit_account_id=L.bank_account_id("suspense", "INR"), amount=1_234, currency="INR", code="test")  # fmt: skip
    assert (await bus.ok(L.CreateTransfers(transfers=[moved])))["results"][0]["result"] == "ok"
    event = await close(bus, admin_db)
    closed_date = dt.date.fromisoformat(before["business_date"])
    assert event["next_business_date"] == domain.next_business_date(closed_date, set()).isoformat()
    inr = next(line for line in event["trial_balance"] if line["currency"] == "INR")
    assert inr["debits_posted"] == inr["credits_posted"] and inr["accounts"] > 0
    after = await business_day(bus)
    assert (after["business_date"], after["status"], after["last_closed"]) == (
        event["next_business_date"], "open", closed_date.isoformat())
    opened = await admin_db.fetchval("SELECT count(*) FROM day.outbox WHERE routing_key = 'day.opened' "
                                     "AND payload->>'business_date' = $1", event["next_business_date"])  # fmt: skip
    assert opened == 1
    # The books as that date closed: by general-ledger account, and the statements drawn from them.
    books = await bus.ok(L.GetTrialBalance(business_date=closed_date))
    rows = {(r["currency"], r["code"]): r for r in books["rows"]}
    assert rows[("INR", "cash_vault")]["gl_code"] == "1000" and rows[("INR", "fee_income")]["gl_class"] == "income"
    assert sum(r["debits_posted"] for r in books["rows"] if r["currency"] == "INR") == inr["debits_posted"]
    assert all(t["balanced"] for t in books["totals"]) and all(s["balanced"] for s in books["balance_sheet"])
    never = await bus.send(L.GetTrialBalance(business_date=dt.date(2000, 1, 3)))
    assert never.error is not None and never.error.code == "trial_balance_not_found"
    # The day's journal: the transfer, one line a side, and every page's debits equal its credits.
    lines, after = [], None
    while True:
        page = await bus.ok(L.GetJournal(business_date=closed_date, after=after, limit=50))
        lines += page["lines"]
        if (after := page["next_after"]) is None:
            break
    mine = sorted((line["side"], line["account_id"], line["amount"]) for line in lines if line["transfer_id"] == str(moved.id))
    assert mine == [("credit", str(L.bank_account_id("suspense", "INR")), 1_234),
                    ("debit", str(L.bank_account_id("cash_vault", "INR")), 1_234)]  # fmt: skip
    assert sum(x["amount"] for x in lines if x["side"] == "debit") == sum(x["amount"] for x in lines if x["side"] == "credit")
    not_closed = await bus.send(L.GetJournal(business_date=dt.date(2000, 1, 3)))
    assert not_closed.error is not None and not_closed.error.code == "books_not_closed"
    # The ledger's report is on the bus, and audit recorded the close.
    report = await admin_db.fetchval("SELECT count(*) FROM ledger.outbox WHERE routing_key = 'ledger.cob_step_reported' "
                                     "AND payload->>'business_date' = $1", closed_date.isoformat())  # fmt: skip
    assert report >= 1


async def test_closing_a_date_that_is_not_the_open_one_is_refused(bus: BusClient) -> None:
    open_date = dt.date.fromisoformat((await business_day(bus))["business_date"])
    reply = await bus.send(c.CloseDay(business_date=open_date - dt.timedelta(days=1)))
    assert reply.error is not None and reply.error.code == "wrong_business_date"
    assert reply.error.details == {"business_date": open_date.isoformat()}
    assert (await business_day(bus))["status"] == "open"


async def test_a_holiday_is_skipped_and_the_calendar_refuses_the_past_and_weekends(
    bus: BusClient, admin_db: asyncpg.Pool,
) -> None:  # fmt: skip
    view = await business_day(bus)
    open_date, next_date = (dt.date.fromisoformat(view[k]) for k in ("business_date", "next_business_date"))
    assert (await bus.ok(c.AddHoliday(date=next_date, name="Founders' Day")))["name"] == "Founders' Day"
    assert (await business_day(bus))["next_business_date"] == domain.next_business_date(open_date, {next_date}).isoformat()
    listed = await bus.ok(c.ListHolidays())
    assert {"date": next_date.isoformat(), "name": "Founders' Day"} in listed["items"]
    for date in (open_date, open_date - dt.timedelta(days=3)):
        refused = await bus.send(c.AddHoliday(date=date, name="too late"))
        assert refused.error is not None and refused.error.code == "invalid_holiday"
    saturday = next_date + dt.timedelta(days=(5 - next_date.weekday()) % 7)
    refused = await bus.send(c.AddHoliday(date=saturday, name="a weekend"))
    assert refused.error is not None and refused.error.code == "invalid_holiday"
    event = await close(bus, admin_db)
    assert dt.date.fromisoformat(event["next_business_date"]) > next_date, "the holiday is no business day"
    missing = await bus.send(c.RemoveHoliday(date=next_date + dt.timedelta(days=400)))
    assert missing.error is not None and missing.error.code == "holiday_not_found"


async def test_an_unbalanced_ledger_stops_the_close_until_it_is_mended(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    account = L.bank_account_id("suspense", "INR")  # no flags: no check constraint stops the skew
    await admin_db.execute("UPDATE ledger.ledger_account SET debits_posted = debits_posted + 1 WHERE id = $1", account)
    try:
        open_date = dt.date.fromisoformat((await business_day(bus))["business_date"])
        await bus.ok(c.CloseDay(business_date=open_date))

        async def failed() -> Any:
            view = await business_day(bus)
            return next((s for s in view["steps"] if s["status"] == "failed"), None)

        step = await eventually(failed)
        assert step["step"] == "ledger.trial_balance" and "INR" in step["error"]
        assert (await business_day(bus))["status"] == "closing" and await closed_event(admin_db, open_date) is None
    finally:
        await admin_db.execute("UPDATE ledger.ledger_account SET debits_posted = debits_posted - 1 WHERE id = $1", account)
    # Mended: asked again, the step runs again and the day closes.
    await bus.ok(c.CloseDay(business_date=open_date))

    async def closed() -> Any:
        return await closed_event(admin_db, open_date)

    event = await eventually(closed)
    assert all(line["debits_posted"] == line["credits_posted"] for line in event["trial_balance"])


async def test_a_step_never_reported_is_asked_again(bus: BusClient, admin_db: asyncpg.Pool, workers: dict[str, Any]) -> None:
    """As if the ledger died after the ask: the step is left pending, long ago; the duty asks again."""
    open_date = dt.date.fromisoformat((await business_day(bus))["business_date"])
    runtime = workers["day"].runtime
    await admin_db.execute("UPDATE day.business_day SET status = 'closing'")
    await admin_db.execute(
        "INSERT INTO day.cob_step (business_date, step, status, attempts, asked_at) "
        "VALUES ($1, 'ledger.trial_balance', 'pending', 1, now() - interval '1 hour')", open_date,
    )  # fmt: skip
    await runtime.in_transaction(lambda conn: day_handlers.ask_unreported_again(runtime.duty_context(conn, "test")))

    async def closed() -> Any:
        return await closed_event(admin_db, open_date)

    await eventually(closed)
    asks = await admin_db.fetch("SELECT payload FROM day.outbox WHERE routing_key = 'day.closing' "
                                "AND payload->>'business_date' = $1 AND payload->'steps' ? 'ledger.trial_balance'",
                                open_date.isoformat())  # fmt: skip
    assert [json.loads(r["payload"])["attempt"] if isinstance(r["payload"], str) else r["payload"]["attempt"]
            for r in asks] == [2]  # fmt: skip


async def test_many_days_close_one_after_another(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    first = dt.date.fromisoformat((await business_day(bus))["business_date"])
    for _ in range(20):
        await close(bus, admin_db)
    rows = await admin_db.fetch("SELECT business_date, next_business_date FROM day.closed_day "
                                "WHERE business_date >= $1 ORDER BY business_date", first)  # fmt: skip
    assert len(rows) == 20
    for earlier, later in zip(rows, rows[1:], strict=False):
        assert later["business_date"] == earlier["next_business_date"], "each day closes once, in order"


async def open_to(bus: BusClient, admin_db: asyncpg.Pool, business_date: dt.date) -> None:
    """Set the open date (as a restored installation would be), the later history gone."""
    await admin_db.execute("DELETE FROM day.closed_day WHERE business_date >= $1", business_date)
    await admin_db.execute("UPDATE day.business_day SET business_date = $1, status = 'open'", business_date)


async def account_worker_knows(admin_db: asyncpg.Pool, business_date: dt.date) -> None:
    """day.opened reaches the account worker a moment after the day worker publishes it."""
    async def learnt() -> bool:
        return await admin_db.fetchval("SELECT business_date = $1 FROM account.business_day", business_date)

    await eventually(learnt, timeout_s=30)


async def deposit(bus: BusClient, account_id: uuid.UUID, amount: int) -> None:
    cash = L.NewTransfer(id=uuid.uuid4(), debit_account_id=L.bank_account_id("cash_vault", "INR"),
                         credit_account_id=account_id, amount=amount, currency="INR", code="deposit",
                         reference="TELLER-1", narration="Cash deposit")  # fmt: skip
    assert (await bus.ok(L.CreateTransfers(transfers=[cash])))["results"][0]["result"] == "ok"


async def balance(bus: BusClient, account_id: uuid.UUID) -> int:
    return (await bus.ok(L.LookupAccounts(ids=[account_id])))["accounts"][0]["balance"]


async def test_a_date_closed_before_closes_again_once_the_bank_is_set_back_to_it(bus: BusClient, admin_db: asyncpg.Pool) -> None:
    """An installation restored to an earlier date closes it anew: the steps its earlier close left
    done count for nothing (each is asked again)."""
    date = dt.date.fromisoformat((await business_day(bus))["business_date"])
    await close(bus, admin_db)
    await open_to(bus, admin_db, date)
    asked_before = await admin_db.fetchval("SELECT count(*) FROM day.outbox WHERE routing_key = 'day.closing' "
                                           "AND payload->>'business_date' = $1", date.isoformat())  # fmt: skip
    await bus.ok(c.CloseDay(business_date=date))

    async def closed_twice() -> Any:
        return await admin_db.fetchval("SELECT count(*) = 2 FROM day.outbox WHERE routing_key = 'day.closed' "
                                       "AND payload->>'business_date' = $1", date.isoformat())  # fmt: skip

    await eventually(closed_twice)
    asked = await admin_db.fetchval("SELECT count(*) FROM day.outbox WHERE routing_key = 'day.closing' "
                                    "AND payload->>'business_date' = $1", date.isoformat())  # fmt: skip
    assert asked - asked_before == len(c.COB_STEPS)


async def test_savings_interest_accrues_each_day_on_the_day_end_balance_and_posts_at_the_quarter_end(
    bus: BusClient, edge_bus: BusClient, admin_db: asyncpg.Pool,
) -> None:  # fmt: skip
    """Thursday 24 June 2027 to the quarter's end at 3.5%: 100,000.00 for four days (Friday's close
    covers the weekend), 150,000.00 for three: (4 × 10,000,000 + 3 × 15,000,000) × 350 / 3,650,000
    = 8,150.68… → 81.51, posted once by Wednesday 30 June's close. A frozen account's credit is
    refused and stays due; unfrozen, the next close posts it."""
    customer = await eligible_customer(bus, admin_db)
    saver, frozen = uuid.uuid4(), uuid.uuid4()
    for account_id in (saver, frozen):
        await bus.ok(a.OpenAccount(account_id=account_id, customer_id=customer, product_code="savings"))
        await deposit(bus, account_id, 10_000_000)
    await open_to(bus, admin_db, dt.date(2027, 6, 24))
    await close(bus, admin_db)  # Thursday
    await close(bus, admin_db)  # Friday, with Saturday and Sunday
    await deposit(bus, saver, 5_000_000)  # Monday's balance: 150,000.00
    await bus.ok(a.FreezeAccount(account_id=frozen, actor="officer-1", reason="court order"))
    for _ in range(3):  # Monday, Tuesday, Wednesday 30 June: the quarter posts
        event = await close(bus, admin_db)
    assert event["business_date"] == "2027-06-30"
    assert await balance(bus, saver) == 15_000_000 + 8_151
    view = await bus.ok(a.GetInterest(account_id=saver))
    quarter = view["periods"][0]
    assert (quarter["period_end"], quarter["accrued_from"], quarter["accrued_through"]) == ("2027-06-30", "2027-06-24", "2027-06-30")
    assert (quarter["status"], quarter["amount"], quarter["posted_on"]) == ("posted", 8_151, "2027-06-30")
    assert quarter["accrued"] == "8150.684931506849"
    posted = await admin_db.fetch("SELECT payload FROM account.outbox WHERE routing_key = 'account.interest_posted' "
                                  "AND payload->>'account_id' = $1", str(saver))  # fmt: skip
    assert len(posted) == 1
    # The books of 30 June include the interest paid (the trial balance is taken after it posts).
    books = await bus.ok(L.GetTrialBalance(business_date=dt.date(2027, 6, 30)))
    assert next(r for r in books["rows"] if r["code"] == "interest_expense" and r["currency"] == "INR")["balance"] >= 8_151
    # Frozen: due, with the ledger's reason; unfrozen, Thursday 1 July's close posts it (7 days at 100,000.00).
    due = (await bus.ok(a.GetInterest(account_id=frozen)))["periods"]
    assert [(p["period_end"], p["status"], p["error"]) for p in due] == [("2027-06-30", "due", "credit_account_frozen")]
    assert await balance(bus, frozen) == 10_000_000
    await bus.ok(a.UnfreezeAccount(account_id=frozen, actor="officer-1", reason="order lifted"))
    await close(bus, admin_db)
    assert await balance(bus, frozen) == 10_000_000 + 6_712  # 7 × 10,000,000 × 350 / 3,650,000 = 6,712.33…
    # A close that runs its step again (its worker died after accruing) adds nothing twice.
    await admin_db.execute("UPDATE account.interest_run SET status = 'accruing', cursor = NULL WHERE business_date = '2027-06-30'")
    await publish_as("day", "day.closing", c.DayClosing(
        business_date=dt.date(2027, 6, 30), next_business_date=dt.date(2027, 7, 1), steps=["account.interest"],
        attempt=9, occurred_at=dt.datetime.now(dt.UTC)))  # fmt: skip

    async def ran_again() -> Any:
        return await admin_db.fetchval("SELECT status = 'done' FROM account.interest_run WHERE business_date = '2027-06-30'")

    await eventually(ran_again)
    assert await balance(bus, saver) == 15_000_000 + 8_151
    periods = {p["period_end"]: p for p in (await bus.ok(a.GetInterest(account_id=saver)))["periods"]}
    assert periods["2027-06-30"]["accrued"] == "8150.684931506849"
    assert periods["2027-09-30"]["accrued"] == "1439.137767123288"  # 1 July on 150,081.51, once
    # A customer reads their own account's interest, never another's, and never the ledger's day-end balances.
    def as_customer(customer_id: uuid.UUID) -> dict[str, Any]:
        return {"x-actor": json.dumps({"sub": "cust", "roles": ["customer"], "customer_id": str(customer_id)})}

    own = await edge_bus.correlator.send(a.GetInterest(account_id=saver), message_id=uuid.uuid4().hex, timeout_s=10,
                                         headers=as_customer(customer))  # fmt: skip
    assert own.ok and own.result["periods"][0]["period_end"] == "2027-09-30"
    for asked, code in ((a.GetInterest(account_id=saver), "not_owner"),
                        (L.GetDayEndBalances(business_date=dt.date(2027, 6, 30)), "forbidden")):  # fmt: skip
        refused = await edge_bus.correlator.send(asked, message_id=uuid.uuid4().hex, timeout_s=10,
                                                 headers=as_customer(uuid.uuid4()))  # fmt: skip
        assert refused.error is not None and refused.error.code == code, refused
    # Closing settles the open period's interest in the ledger's closing chain, before the payout;
    # a close the ledger refuses (a lien stands) settles nothing, and the period accrues on.
    lien = uuid.uuid4()
    await bus.ok(a.PlaceHold(hold_id=lien, account_id=saver, kind="lien", amount=100, reason="court order", actor="officer-1"))
    refused = await bus.send(a.CloseAccount(account_id=saver, actor="officer-1", reason="leaves", payout_in_cash=True))
    assert refused.error is not None and refused.error.code == "close_refused_pending_transfers"
    assert (await bus.ok(a.GetInterest(account_id=saver)))["periods"][0]["status"] == "accruing"
    await bus.ok(a.ReleaseHold(hold_id=lien, account_id=saver, reason="lifted", actor="officer-1"))
    closed = await bus.ok(a.CloseAccount(account_id=saver, actor="officer-1", reason="leaves", payout_in_cash=True))
    assert closed["status"] == "closed" and await balance(bus, saver) == 0
    settled = (await bus.ok(a.GetInterest(account_id=saver)))["periods"][0]
    assert (settled["period_end"], settled["status"], settled["amount"], settled["posted_on"]) == ("2027-09-30", "posted", 1_439, None)
    [payout] = (await bus.ok(L.LookupTransfers(ids=[L.closure_transfer_id(saver)])))["transfers"]
    assert payout["amount"] == 15_000_000 + 8_151 + 1_439


async def test_monthly_fees_are_charged_at_the_month_end_from_what_each_account_holds_above_its_floor(
    bus: BusClient, admin_db: asyncpg.Pool,
) -> None:  # fmt: skip
    """September 2027 under a product with a 50.00 maintenance fee and a 100.00 shortfall fee below
    an average day-end balance of 1,000.00: 5,000.00 pays the maintenance fee; 600.00 owes both but
    holds nothing above its floor, so nothing is taken (and nothing is refused); a frozen account's
    fee stays due and the next close, once it is unfrozen, takes it."""
    code = f"fees_{uuid.uuid4().hex[:8]}"
    terms = {**(await bus.ok(a.GetProduct(code="savings"))), "name": "Fee Saver", "minimum_balance": 100_000,
             "maintenance_fee": 5_000, "shortfall_fee": 10_000}  # fmt: skip
    for field in ("code", "version", "defined_by", "defined_at"):
        terms.pop(field)
    await bus.ok(a.DefineProduct(**terms, code=code, actor="officer-1"))
    customer = await eligible_customer(bus, admin_db)
    rich, poor, frozen, leaver = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for account_id, amount in ((rich, 500_000), (poor, 60_000), (frozen, 500_000), (leaver, 500_000)):
        await bus.ok(a.OpenAccount(account_id=account_id, customer_id=customer, product_code=code))
        await deposit(bus, account_id, amount)
    for account_id in (frozen, leaver):
        await bus.ok(a.FreezeAccount(account_id=account_id, actor="officer-1", reason="court order"))
    await open_to(bus, admin_db, dt.date(2027, 9, 1))
    await close(bus, admin_db)
    await account_worker_knows(admin_db, dt.date(2027, 9, 2))
    mover = uuid.uuid4()  # opened, funded and closed in the month: its last statement shows it all
    await bus.ok(a.OpenAccount(account_id=mover, customer_id=customer, product_code=code))
    await deposit(bus, mover, 300_000)
    await bus.ok(a.CloseAccount(account_id=mover, actor="officer-1", reason="moves away", payout_in_cash=True))
    # The poor account's history lies by a unit (as a bug or a hand in the database would make
    # it): its statement will not add up, and is withheld.
    tamper = ("UPDATE ledger.account_history SET amount = amount + $2 WHERE account_id = $1 AND seq = "
              "(SELECT min(seq) FROM ledger.account_history WHERE account_id = $1)")  # fmt: skip
    await admin_db.execute(tamper, poor, 1)
    try:
        while (event := await close(bus, admin_db))["business_date"] != "2027-09-30":
            pass
    finally:
        await admin_db.execute(tamper, poor, -1)

    async def charges_of(account_id: uuid.UUID) -> list[tuple[Any, ...]]:
        items = (await bus.ok(a.ListCharges(account_id=account_id)))["items"]
        return [(i["kind"], i["month_end"], i["fee"], i["collected"], i["status"]) for i in items]

    assert await charges_of(rich) == [("maintenance", "2027-09-30", 5_000, 5_000, "charged")]
    interest = (await bus.ok(a.GetInterest(account_id=rich)))["periods"][0]
    assert (interest["period_end"], interest["status"]) == ("2027-09-30", "posted")
    assert await balance(bus, rich) == 500_000 + interest["amount"] - 5_000
    assert await charges_of(poor) == [("maintenance", "2027-09-30", 5_000, 0, "charged"),
                                      ("shortfall", "2027-09-30", 10_000, 0, "charged")]  # fmt: skip
    assert await balance(bus, poor) == 60_000 + (await bus.ok(a.GetInterest(account_id=poor)))["periods"][0]["amount"]
    assert await charges_of(frozen) == [("maintenance", "2027-09-30", 5_000, None, "due")]
    report = await admin_db.fetchval("SELECT result FROM day.cob_step WHERE business_date = '2027-09-30' AND step = 'account.charges'")
    report = json.loads(report) if isinstance(report, str) else report
    assert {(r["kind"], r["collected"]) for r in report["charged"]} >= {("maintenance", 5_000)}
    books = await bus.ok(L.GetTrialBalance(business_date=dt.date(2027, 9, 30)))
    assert next(r for r in books["rows"] if r["code"] == "fee_income" and r["currency"] == "INR")["balance"] >= 5_000
    # September's statements, cut where the books of 30 September were taken (interest and fees in).
    [statement] = (await bus.ok(a.ListStatements(account_id=rich)))["items"]
    assert (statement["month_end"], statement["status"], statement["opening"]) == ("2027-09-30", "issued", 0)
    assert (statement["credits"], statement["debits"]) == (500_000 + interest["amount"], 5_000)
    assert statement["closing"] == await balance(bus, rich) and statement["transfers"] == 3
    # Its lines: what each movement was, its reference, and who was on the other side (the bank's
    # own accounts by their chart names), each with the balance after it.
    issued = await bus.ok(a.GetStatement(account_id=rich, month_end=dt.date(2027, 9, 30)))
    number = (await bus.ok(a.GetAccount(account_id=rich)))["number"]
    assert (issued["account_number"], issued["closing"]) == (number, statement["closing"])
    history = await bus.ok(L.GetAccountHistory(account_id=rich, since=issued["period_from"], until=issued["period_until"]))
    assert [(h["narration"], h["reference"], h["counterparty"], h["side"], h["amount"]) for h in history["items"]] == [
        ("Cash deposit", "TELLER-1", "Cash in vault", "credit", 500_000),
        ("Interest to 2027-09-30", "INT-20270930", "Interest expense", "credit", interest["amount"]),
        ("Maintenance fee 2027-09", "FEE-MAINTENANCE-202709", "Fee income", "debit", 5_000),
    ]  # fmt: skip
    assert history["items"][-1]["credits_posted"] - history["items"][-1]["debits_posted"] == statement["closing"]
    assert [h["business_date"] for h in history["items"][1:]] == ["2027-09-30", "2027-09-30"]  # in that close's books
    [last] = (await bus.ok(a.ListStatements(account_id=mover)))["items"]
    assert (last["status"], last["opening"], last["credits"], last["debits"], last["closing"], last["transfers"]) == (
        "issued", 0, 300_000, 300_000, 0, 2)
    [lie] = (await bus.ok(a.ListStatements(account_id=poor)))["items"]
    assert lie["status"] == "withheld" and lie["opening"] + lie["credits"] - lie["debits"] != lie["closing"]
    withheld = await bus.send(a.GetStatement(account_id=poor, month_end=dt.date(2027, 9, 30)))
    assert withheld.error is not None and withheld.error.code == "statement_not_found"  # a withheld one is never shown
    statements = await admin_db.fetchval("SELECT result FROM day.cob_step WHERE business_date = '2027-09-30' "
                                         "AND step = 'account.statements'")  # fmt: skip
    statements = json.loads(statements) if isinstance(statements, str) else statements
    assert statements["issued"] >= 2 and statements["withheld"] == 1
    ready = await admin_db.fetchval("SELECT count(*) FROM account.outbox WHERE routing_key = 'account.statement_ready' "
                                    "AND payload->>'account_id' = ANY($1::text[])", [str(rich), str(poor)])  # fmt: skip
    assert ready == 1
    # The leaver's fee and interest were refused while frozen; closing settles both in its chain,
    # the fee from whatever it holds (its minimum balance goes with it), before the payout.
    await bus.ok(a.UnfreezeAccount(account_id=leaver, actor="officer-1", reason="order lifted"))
    due_interest = (await bus.ok(a.GetInterest(account_id=leaver)))["periods"][0]
    assert (due_interest["status"], await charges_of(leaver)) == ("due", [("maintenance", "2027-09-30", 5_000, None, "due")])
    left = await bus.ok(a.CloseAccount(account_id=leaver, actor="officer-1", reason="leaves", payout_in_cash=True))
    assert left["status"] == "closed"
    assert await charges_of(leaver) == [("maintenance", "2027-09-30", 5_000, 5_000, "charged")]
    [payout] = (await bus.ok(L.LookupTransfers(ids=[L.closure_transfer_id(leaver)])))["transfers"]
    assert payout["amount"] == 500_000 + due_interest["amount"] - 5_000
    await bus.ok(a.UnfreezeAccount(account_id=frozen, actor="officer-1", reason="order lifted"))
    await close(bus, admin_db)  # Friday 1 October: the due fee again, under a new id
    assert await charges_of(frozen) == [("maintenance", "2027-09-30", 5_000, 5_000, "charged")]
    posted = await admin_db.fetchval("SELECT count(*) FROM account.outbox WHERE routing_key = 'account.fee_charged' "
                                     "AND payload->>'account_id' = ANY($1::text[])", [str(rich), str(poor), str(frozen)])  # fmt: skip
    assert posted == 2  # the rich account's and the unfrozen one's (the poor one's took nothing: nothing to tell)
    closing_fee = await admin_db.fetchval("SELECT count(*) FROM account.outbox WHERE routing_key = 'account.fee_charged' "
                                          "AND payload->>'account_id' = $1", str(leaver))  # fmt: skip
    assert closing_fee == 1



async def test_an_overdrawn_current_account_pays_overdraft_interest_at_the_month_end(
    bus: BusClient, admin_db: asyncpg.Pool,
) -> None:  # fmt: skip
    """February 2028 (29 days) overdrawn by 5,000.00 on a current account at 12% a year: Σ
    overdrawn day-end balance × days × rate, rounded once, half-up, taken at the close of the 29th
    to interest income, within the overdraft (a balancing debit)."""
    from workers.account.domain.interest import interest_minor

    code = f"odi_{uuid.uuid4().hex[:8]}"
    terms = {**(await bus.ok(a.GetProduct(code="current"))), "name": "Overdraft at 12%", "overdraft_limit": 1_000_000,
             "overdraft_rate_bps": 1_200, "maintenance_fee": 0, "shortfall_fee": 0}  # fmt: skip
    for field in ("code", "version", "defined_by", "defined_at"):
        terms.pop(field)
    await bus.ok(a.DefineProduct(**terms, code=code, actor="officer-1"))
    current = uuid.uuid4()
    await bus.ok(a.OpenAccount(account_id=current, customer_id=await eligible_customer(bus, admin_db), product_code=code))
    await bus.ok(a.SetOverdraft(account_id=current, overdraft_limit=1_000_000, actor="officer-1", reason="agreed"))
    await deposit(bus, current, 100_000)
    out = L.NewTransfer(id=uuid.uuid4(), debit_account_id=current, credit_account_id=L.bank_account_id("cash_vault", "INR"),
                        amount=600_000, currency="INR", code="withdrawal", narration="Cash withdrawal")  # fmt: skip
    assert (await bus.ok(L.CreateTransfers(transfers=[out])))["results"][0]["result"] == "ok"
    assert await balance(bus, current) == -500_000
    await open_to(bus, admin_db, dt.date(2028, 2, 1))
    while (await close(bus, admin_db))["business_date"] != "2028-02-29":
        pass
    owed = interest_minor(500_000 * 29 * 1_200)
    assert owed == 4_767  # 5,000.00 × 12% × 29/365 = 47.671…
    [charge] = (await bus.ok(a.ListCharges(account_id=current)))["items"]
    assert (charge["kind"], charge["month_end"], charge["fee"], charge["collected"], charge["status"]) == (
        "overdraft_interest", "2028-02-29", owed, owed, "charged")
    assert await balance(bus, current) == -500_000 - owed
    last = (await bus.ok(L.GetAccountHistory(account_id=current)))["items"][-1]
    assert (last["narration"], last["reference"], last["counterparty"], last["code"]) == (
        "Overdraft interest 2028-02", "ODI-202802", "Interest income", "interest")

async def test_an_account_without_customer_activity_for_a_year_turns_dormant_refuses_customer_debits_and_is_reactivated(
    bus: BusClient, admin_db: asyncpg.Pool,
) -> None:  # fmt: skip
    from contracts import payment as p
    from tests.integration.test_payment_bus import code, open_account, pay

    used, idle = await open_account(bus, admin_db), await open_account(bus, admin_db)
    for account_id in (used, idle):
        assert (await pay(bus, p.PaymentKind.cash_deposit, 500_000, to=account_id)).ok  # the customer's own deposit

    async def activity_learnt() -> bool:
        return bool(await admin_db.fetchval("SELECT bool_and(last_customer_activity_at > opened_at) FROM account.account "
                                            "WHERE account_id = ANY($1::uuid[])", [used, idle]))  # fmt: skip

    await eventually(activity_learnt)
    # As if the idle account's customer last acted in October 2026, and nothing since.
    await admin_db.execute("UPDATE account.account SET last_customer_activity_at = '2026-10-01T10:00:00Z' "
                           "WHERE account_id = $1", idle)  # fmt: skip
    await open_to(bus, admin_db, dt.date(2027, 12, 3))
    await close(bus, admin_db)
    assert (await bus.ok(a.GetAccount(account_id=idle)))["status"] == "dormant"
    assert (await bus.ok(a.GetAccount(account_id=used)))["status"] == "active"  # last active 6 December 2026
    told = await admin_db.fetchval("SELECT payload->>'business_date' FROM account.outbox WHERE routing_key = 'account.dormant' "
                                   "AND payload->>'account_id' = $1", str(idle))  # fmt: skip
    assert told == "2027-12-03"

    async def payments_know(status: str) -> bool:
        return await admin_db.fetchval("SELECT status = $2 FROM payment.payment_account WHERE account_id = $1", idle, status)

    await eventually(lambda: payments_know("dormant"))
    refused = await pay(bus, p.PaymentKind.internal, 1_000, payer=idle, to=used, actor="cust", channel=p.Channel.mobile)
    assert code(refused) == "account_dormant" and "reactivate" in refused.error.message  # type: ignore[union-attr]
    credited = await pay(bus, p.PaymentKind.internal, 1_000, payer=used, to=idle, actor="cust", channel=p.Channel.mobile)
    assert credited.ok and credited.result["status"] == "completed"  # credits still reach it
    # On the customer's request, with KYC valid: active again, and the customer may pay from it.
    again = await bus.ok(a.ReactivateAccount(account_id=idle, actor="officer-1", reason="customer asked at the branch"))
    assert again["status"] == "active"
    assert dt.datetime.fromisoformat(again["last_customer_activity_at"]) > dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    await eventually(lambda: payments_know("active"))
    paid = await pay(bus, p.PaymentKind.internal, 1_000, payer=idle, to=used, actor="cust", channel=p.Channel.mobile)
    assert paid.ok, paid.error
    refused_twice = await bus.send(a.ReactivateAccount(account_id=idle, actor="officer-1", reason="again"))
    assert code(refused_twice) == "invalid_transition"


async def test_fixed_deposits_are_funded_locked_and_paid_out_renewed_or_closed_early_by_close_of_business(
    bus: BusClient, admin_db: asyncpg.Pool,
) -> None:  # fmt: skip
    from workers.account.domain.deposits import compound_interest

    customer, stranger = await eligible_customer(bus, admin_db), await eligible_customer(bus, admin_db)
    savings, strangers = uuid.uuid4(), uuid.uuid4()
    await bus.ok(a.OpenAccount(account_id=savings, customer_id=customer, product_code="savings"))
    await bus.ok(a.OpenAccount(account_id=strangers, customer_id=stranger, product_code="savings"))
    await deposit(bus, savings, 30_000_000)
    await open_to(bus, admin_db, dt.date(2027, 11, 5))  # within a year of today: the savings account stays active
    await close(bus, admin_db)  # Monday 8 November 2027 opens: deposits start on it
    await account_worker_knows(admin_db, dt.date(2027, 11, 8))

    def fd(amount: int, days: int, **more: Any) -> a.OpenFixedDeposit:
        fields = {"funding_account_id": savings, **more}
        return a.OpenFixedDeposit(account_id=uuid.uuid4(), customer_id=customer, product_code="fixed_deposit",
                                  amount=amount, term_days=days, **fields)  # fmt: skip

    async def started(command: a.OpenFixedDeposit) -> dict[str, Any]:
        async def known() -> Any:
            reply = await bus.send(command)
            return reply.result if reply.ok else (None if reply.error.code == "unavailable" else reply)  # type: ignore[union-attr]

        view = await eventually(known)
        assert isinstance(view, dict), view
        return view

    paid, renewing, early = fd(10_000_000, 7), fd(10_000_000, 7, at_maturity="renew"), fd(100_000, 30)
    opened = await started(paid)
    assert (opened["status"], opened["start_date"], opened["maturity_date"]) == ("running", "2027-11-08", "2027-11-15")
    assert opened["account"]["status"] == "active" and opened["account"]["number"].startswith("FD")
    assert opened["interest_at_maturity"] == compound_interest(10_000_000, 700, 7)
    await started(renewing)
    await started(early)
    assert await balance(bus, savings) == 30_000_000 - 20_100_000
    # Refused with their reasons: a term the product does not offer, a stranger's money, too little money.
    for command, refusal in ((fd(100_000, 6), "invalid_deposit"),
                             (fd(100_000, 30, funding_account_id=strangers), "invalid_funding_account"),
                             (fd(10_000_000, 30), "funding_refused")):  # fmt: skip
        reply = await bus.send(command)
        assert reply.error is not None and reply.error.code == refusal, reply
    unfunded = await bus.ok(a.GetAccount(account_id=command.account_id))
    assert unfunded["status"] == "closed" and await balance(bus, savings) == 30_000_000 - 20_100_000
    [empty] = (await bus.ok(L.LookupAccounts(ids=[command.account_id])))["accounts"]
    assert empty["closed"] and empty["balance"] == 0  # its ledger account closed with it
    # Locked: nothing leaves a running deposit.
    out = L.NewTransfer(id=uuid.uuid4(), debit_account_id=paid.account_id, credit_account_id=savings, amount=1,
                        currency="INR", code="internal_transfer")  # fmt: skip
    assert (await bus.ok(L.CreateTransfers(transfers=[out])))["results"][0]["result"] == "exceeds_credits"
    # And payments neither pay into it nor out of it.
    from contracts import payment as p
    from tests.integration.test_payment_bus import code, pay

    async def payments_know() -> bool:
        return bool(await admin_db.fetchval("SELECT type = 'fixed_deposit' FROM payment.payment_account "
                                            "WHERE account_id = $1", paid.account_id))  # fmt: skip

    await eventually(payments_know)
    for payer, payee in ((savings, paid.account_id), (paid.account_id, savings)):
        refused = await pay(bus, p.PaymentKind.internal, 1_000, payer=payer, to=payee, actor="cust", channel=p.Channel.mobile)
        assert code(refused) == "deposit_account", refused
    await close(bus, admin_db)
    await close(bus, admin_db)  # Monday 8 → Wednesday 10 November: two days held
    await account_worker_knows(admin_db, dt.date(2027, 11, 10))
    closed_early = await bus.ok(a.CloseDepositEarly(account_id=early.account_id, actor="officer-1", reason="customer needs it"))
    assert closed_early["status"] == "closed_early" and closed_early["account"]["status"] == "closed"
    assert closed_early["last_interest"] == compound_interest(100_000, 600, 2)  # 7% − 1 point
    while (await close(bus, admin_db))["business_date"] != "2027-11-15":
        pass
    matured = await bus.ok(a.GetDeposit(account_id=paid.account_id))
    interest = compound_interest(10_000_000, 700, 7)
    assert (matured["status"], matured["last_interest"], matured["account"]["status"]) == ("matured", interest, "closed")
    renewed = await bus.ok(a.GetDeposit(account_id=renewing.account_id))
    assert (renewed["status"], renewed["principal"], renewed["start_date"], renewed["maturity_date"]) == (
        "running", 10_000_000 + interest, "2027-11-15", "2027-11-22")
    assert await balance(bus, renewing.account_id) == 10_000_000 + interest
    assert await balance(bus, savings) == 30_000_000 - 20_100_000 + 100_000 + closed_early["last_interest"] + 10_000_000 + interest
    told = await admin_db.fetch("SELECT payload->>'outcome' AS outcome FROM account.outbox WHERE routing_key = "
                                "'account.deposit_matured' AND payload->>'customer_id' = $1", str(customer))  # fmt: skip
    assert sorted(r["outcome"] for r in told) == ["closed_early", "paid_out", "renewed"]


async def test_a_recurring_deposit_takes_its_instalments_retries_a_missed_one_and_pays_out_at_maturity(
    bus: BusClient, admin_db: asyncpg.Pool,
) -> None:  # fmt: skip
    """100.00 a month for 6 months from 8 November 2027. The funding account can pay the first only;
    December's is tried at each close until money arrives on 3 January, then January's to March's
    are taken on their days; April's never finds the money and is missed at maturity, 8 May 2028,
    when the five paid and their interest, each for its own days, go back to the funding account."""
    from workers.account.domain.deposits import recurring_interest

    customer = await eligible_customer(bus, admin_db)
    savings = uuid.uuid4()
    await bus.ok(a.OpenAccount(account_id=savings, customer_id=customer, product_code="savings"))
    await deposit(bus, savings, 25_000)  # 150.00 above the 100.00 minimum
    await open_to(bus, admin_db, dt.date(2027, 11, 5))
    await close(bus, admin_db)  # Monday 8 November 2027
    await account_worker_knows(admin_db, dt.date(2027, 11, 8))
    rd = a.OpenRecurringDeposit(account_id=uuid.uuid4(), customer_id=customer, product_code="recurring_deposit",
                                instalment=10_000, instalments=6, funding_account_id=savings)  # fmt: skip

    async def opened() -> Any:
        reply = await bus.send(rd)
        return reply.result if reply.ok else (None if reply.error.code == "unavailable" else reply)  # type: ignore[union-attr]

    view = await eventually(opened)
    assert (view["kind"], view["status"], view["maturity_date"], view["instalments_paid"]) == ("recurring", "running", "2028-05-08", 1)
    assert view["account"]["number"].startswith("RD") and await balance(bus, savings) == 15_000
    while (event := await close(bus, admin_db))["business_date"] != "2028-05-08":
        if event["next_business_date"] == "2028-01-03":
            late = await bus.ok(a.GetDeposit(account_id=rd.account_id))
            assert (late["instalments_paid"], late["principal"]) == (1, 10_000)  # December's still due
            await deposit(bus, savings, 40_000)  # enough for four more
    matured = await bus.ok(a.GetDeposit(account_id=rd.account_id))
    paid_on = [dt.date(2027, 11, 8), dt.date(2028, 1, 3), dt.date(2028, 1, 10), dt.date(2028, 2, 8), dt.date(2028, 3, 8)]
    interest = recurring_interest([(10_000, day) for day in paid_on], 700, dt.date(2028, 5, 8))
    assert (matured["status"], matured["instalments_paid"], matured["instalments_missed"]) == ("matured", 5, 1)
    assert (matured["principal"], matured["last_interest"], matured["account"]["status"]) == (50_000, interest, "closed")
    own_interest = sum(p["amount"] for p in (await bus.ok(a.GetInterest(account_id=savings)))["periods"]
                       if p["status"] == "posted")  # the savings account's own, at each quarter's end  # fmt: skip
    assert own_interest > 0
    assert await balance(bus, savings) == 25_000 + 40_000 - 50_000 + 50_000 + interest + own_interest


async def test_a_cluster_that_was_away_closes_each_missed_day_in_order(
    bus: BusClient, admin_db: asyncpg.Pool, monkeypatch: Any, workers: dict[str, Any],
) -> None:  # fmt: skip
    """The open date 400 days ago and a close time configured: one sweep starts the catch-up, and
    each close starts the next until the open date is past today (bank time), skipping a holiday.
    A savings account of 100,000.00 at 4% all the while earns, for the first whole quarter, exactly
    the §9 rate (328.77 for 30 days) over the quarter's calendar days, holiday and weekends in, on
    its balance with the quarter before's interest in; the books balance after every closed day."""
    from workers.account.domain.interest import interest_minor

    start = dt.date.today() - dt.timedelta(days=400)
    start = domain.first_business_date(start, set())
    quarter_start = next(dt.date(y, m, 1) for y in (start.year, start.year + 1) for m in (1, 4, 7, 10)
                         if dt.date(y, m, 1) > start)  # fmt: skip
    quarter_end = (quarter_start.replace(day=28) + dt.timedelta(days=70)).replace(day=1) - dt.timedelta(days=1)
    holiday = domain.first_business_date(quarter_start + dt.timedelta(days=20), set())
    code = f"sav4_{uuid.uuid4().hex[:8]}"
    terms = {**(await bus.ok(a.GetProduct(code="savings"))), "name": "Savings at 4%", "rate_bps": 400}
    for field in ("code", "version", "defined_by", "defined_at"):
        terms.pop(field)
    await bus.ok(a.DefineProduct(**terms, code=code, actor="officer-1"))
    saver = uuid.uuid4()
    await bus.ok(a.OpenAccount(account_id=saver, customer_id=await eligible_customer(bus, admin_db), product_code=code))
    await deposit(bus, saver, 10_000_000)
    # Back in time, as an installation restored from an old backup would be (the later history goes).
    await admin_db.execute("DELETE FROM day.closed_day WHERE business_date >= $1", start)
    await admin_db.execute("UPDATE day.business_day SET business_date = $1, status = 'open'", start)
    await bus.ok(c.AddHoliday(date=holiday, name="a holiday in the quarter"))
    monkeypatch.setattr(day_handlers, "CLOSE_AT", "00:00")
    day_runtime = workers["day"].runtime
    await day_runtime.in_transaction(lambda conn: day_handlers.close_when_due(day_runtime.duty_context(conn, "test")))
    today = dt.datetime.now(day_handlers.BANK_TZ).date()

    async def caught_up() -> bool:
        view = await business_day(bus)
        return view["status"] == "open" and dt.date.fromisoformat(view["business_date"]) > today

    # About 285 closes, 16 event hops each: 40 to 80 s alone on the 2-core machine (the e2e tests'
    # loans are in a database of their own), and once over 120 s inside the whole suite. The bound
    # is what a stuck close would exceed, not a speed target.
    await eventually(caught_up, timeout_s=300, interval_s=0.5)
    rows = await admin_db.fetch("SELECT business_date, next_business_date, trial_balance FROM day.closed_day "
                                "WHERE business_date >= $1 ORDER BY business_date", start)  # fmt: skip
    expected, date = [], start
    while date <= today:
        expected.append(date)
        date = domain.next_business_date(date, {holiday})
    assert [r["business_date"] for r in rows] == expected, "every missed business day, once, in order"
    assert len(rows) > 250 and holiday not in expected
    for row in rows:
        lines = json.loads(row["trial_balance"]) if isinstance(row["trial_balance"], str) else row["trial_balance"]
        assert all(line["debits_posted"] == line["credits_posted"] for line in lines), row["business_date"]
    periods = {p["period_end"]: p for p in (await bus.ok(a.GetInterest(account_id=saver, limit=12)))["periods"]}
    quarter = periods[quarter_end.isoformat()]
    days = (quarter_end - quarter_start).days + 1
    assert (quarter["accrued_from"], quarter["accrued_through"], quarter["status"]) == (
        quarter_start.isoformat(), quarter_end.isoformat(), "posted")
    # The quarter before posted at its end and earns from then on: interest compounds each quarter.
    before = periods[(quarter_start - dt.timedelta(days=1)).isoformat()]
    assert before["status"] == "posted" and before["amount"] > 0
    assert quarter["amount"] == interest_minor((10_000_000 + before["amount"]) * 400 * days)
