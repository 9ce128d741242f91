"""The account worker through its messages, against the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from bus import topology
from contracts import account as a
from contracts import customer as cu
from tests.integration.conftest import BusClient, eventually, publish_as


async def publish_customer_event(bus: BusClient, event: cu._CustomerEvent) -> None:
    """Customer facts as the customer worker's outbox would publish them."""
    await publish_as("customer", event.routing_key, event)


def registered(customer_id: uuid.UUID, at: datetime) -> cu.CustomerRegistered:
    return cu.CustomerRegistered(
        customer_id=customer_id, occurred_at=at, customer_number="C0000001", customer_type="individual",
        name="Asha Rao", email="asha@example.com", phone="+919800000001", language="en",
        status="inactive", kyc_status="pending", risk_category="low",
    )


def kyc_completed(customer_id: uuid.UUID, at: datetime) -> cu.CustomerKycStatusChanged:
    return cu.CustomerKycStatusChanged(
        customer_id=customer_id, occurred_at=at, old_status="in_progress", new_status="completed", status="active"
    )


async def eligible_customer(bus: BusClient, admin_db) -> uuid.UUID:
    customer_id = uuid.uuid4()
    now = datetime.now(UTC)
    await publish_customer_event(bus, registered(customer_id, now))
    await publish_customer_event(bus, kyc_completed(customer_id, now + timedelta(seconds=1)))

    async def standing():
        return await admin_db.fetchval(
            "SELECT kyc_status = 'completed' FROM account.customer_standing WHERE customer_id = $1", customer_id
        )

    await eventually(standing)
    return customer_id


async def test_products_are_listed(bus: BusClient) -> None:
    result = await bus.ok(a.ListProducts())
    codes = {p["code"]: p for p in result["items"]}
    assert codes["savings"]["minimum_balance"] == 10_000
    assert codes["current"]["daily_payments_out_limit"] == 100_000_000


async def test_open_refused_until_kyc_completed(bus: BusClient, admin_db) -> None:
    customer_id = uuid.uuid4()
    reply = await bus.send(a.OpenAccount(account_id=uuid.uuid4(), customer_id=customer_id, product_code="savings"))
    assert reply.error is not None and reply.error.code == "customer_unknown"

    await publish_customer_event(bus, registered(customer_id, datetime.now(UTC)))

    async def known():
        return await admin_db.fetchval("SELECT true FROM account.customer_standing WHERE customer_id = $1", customer_id)

    await eventually(known)
    reply = await bus.send(a.OpenAccount(account_id=uuid.uuid4(), customer_id=customer_id, product_code="savings"))
    assert reply.error is not None and reply.error.code == "customer_not_eligible"


async def test_a_late_older_event_does_not_undo_a_newer_one(bus: BusClient, admin_db) -> None:
    customer_id = uuid.uuid4()
    now = datetime.now(UTC)
    await publish_customer_event(bus, kyc_completed(customer_id, now + timedelta(seconds=1)))
    await publish_customer_event(bus, registered(customer_id, now))  # arrives last, happened first

    async def settled():
        return await admin_db.fetchval(
            "SELECT count(*) FROM account.inbox WHERE consumer = 'account.events' AND reply IS NOT NULL"
            " AND message_id IN (SELECT message_id FROM account.inbox)"
        )

    await eventually(settled)
    account_id = uuid.uuid4()

    async def opened():
        reply = await bus.send(a.OpenAccount(account_id=account_id, customer_id=customer_id, product_code="savings"))
        return reply.ok

    await eventually(opened)


async def test_open_get_list_and_lifecycle(bus: BusClient, admin_db) -> None:
    customer_id = await eligible_customer(bus, admin_db)
    account_id = uuid.uuid4()
    opened = await bus.ok(a.OpenAccount(account_id=account_id, customer_id=customer_id, product_code="current"))
    assert opened["status"] == "active" and opened["number"].startswith("CUR000")
    assert opened["ledger_account_id"] == str(account_id)

    assert (await bus.ok(a.GetAccount(account_id=account_id)))["number"] == opened["number"]
    second = await bus.ok(a.OpenAccount(account_id=uuid.uuid4(), customer_id=customer_id, product_code="savings"))
    page = await bus.ok(a.ListCustomerAccounts(customer_id=customer_id, limit=1))
    assert [x["account_id"] for x in page["items"]] == [str(account_id)]
    page2 = await bus.ok(a.ListCustomerAccounts(customer_id=customer_id, limit=1, cursor=page["next_cursor"]))
    assert [x["account_id"] for x in page2["items"]] == [second["account_id"]] and page2["next_cursor"] is None

    frozen = await bus.ok(a.FreezeAccount(account_id=account_id, actor="officer-1", reason="court order"))
    assert frozen["status"] == "frozen" and frozen["status_before_freeze"] == "active"
    refused = await bus.send(a.CloseAccount(account_id=account_id, actor="officer-1", reason="request"))
    assert refused.error is not None and refused.error.code == "account_frozen"
    assert (await bus.ok(a.UnfreezeAccount(account_id=account_id, actor="officer-1", reason="lifted")))["status"] == "active"
    closed = await bus.ok(a.CloseAccount(account_id=account_id, actor="officer-1", reason="request"))
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    again = await bus.send(a.FreezeAccount(account_id=account_id, actor="officer-1", reason="late"))
    assert again.error is not None and again.error.code == "account_closed"

    events = await admin_db.fetch(
        "SELECT routing_key FROM account.outbox WHERE exchange = 'cbs.events' AND payload->>'account_id' = $1 ORDER BY id",
        str(account_id),
    )
    assert [e["routing_key"] for e in events] == ["account.opened", "account.frozen", "account.unfrozen", "account.closed"]


async def test_same_message_id_gives_one_effect_and_the_same_reply(bus: BusClient, admin_db) -> None:
    customer_id = await eligible_customer(bus, admin_db)
    command = a.OpenAccount(account_id=uuid.uuid4(), customer_id=customer_id, product_code="savings")
    key = f"open-{uuid.uuid4()}"
    first = await bus.send(command, message_id=key)
    second = await bus.send(command, message_id=key)
    assert first.ok and first == second
    count = await admin_db.fetchval("SELECT count(*) FROM account.account WHERE customer_id = $1", customer_id)
    opened_events = await admin_db.fetchval(
        "SELECT count(*) FROM account.outbox WHERE routing_key = 'account.opened' AND payload->>'customer_id' = $1",
        str(customer_id),
    )
    assert (count, opened_events) == (1, 1)

    other = a.OpenAccount(account_id=uuid.uuid4(), customer_id=customer_id, product_code="current")
    reused = await bus.send(other, message_id=key)
    assert reused.error is not None and reused.error.code == "idempotency_key_reused"


async def test_unknown_account_is_not_found(bus: BusClient) -> None:
    reply = await bus.send(a.GetAccount(account_id=uuid.uuid4()))
    assert reply.error is not None and reply.error.code == "account_not_found"


async def test_closing_with_money_pays_it_to_the_customers_other_account_only(bus: BusClient, admin_db) -> None:
    from contracts import ledger as L

    customer_id, stranger_id = await eligible_customer(bus, admin_db), await eligible_customer(bus, admin_db)
    savings = uuid.uuid4()
    await bus.ok(a.OpenAccount(account_id=savings, customer_id=customer_id, product_code="savings"))
    current = uuid.uuid4()
    await bus.ok(a.OpenAccount(account_id=current, customer_id=customer_id, product_code="current"))
    strangers = uuid.uuid4()
    await bus.ok(a.OpenAccount(account_id=strangers, customer_id=stranger_id, product_code="savings"))
    vault = L.bank_account_id("cash_vault", "INR")
    deposit = L.NewTransfer(id=uuid.uuid4(), debit_account_id=vault, credit_account_id=savings, amount=250_000,
                            currency="INR", code="deposit")  # fmt: skip
    assert (await bus.ok(L.CreateTransfers(transfers=[deposit])))["results"][0]["result"] == "ok"

    async def close(**payout: object) -> object:
        return await bus.send(a.CloseAccount(account_id=savings, actor="officer-1", reason="leaves", **payout))

    unpaid = await close()
    assert unpaid.error is not None and unpaid.error.code == "close_refused_nonzero_balance"
    stranger = await close(payout_account_id=strangers)
    assert stranger.error is not None and stranger.error.code == "invalid_payout_account"
    assert "another customer" in stranger.error.message
    closed = await close(payout_account_id=current)
    assert closed.ok and closed.result["status"] == "closed", closed
    balances = (await bus.ok(L.LookupAccounts(ids=[savings, current])))["accounts"]
    assert {x["id"]: x["balance"] for x in balances} == {str(savings): 0, str(current): 250_000}


async def test_holds_and_liens_reduce_available_block_closing_and_end(bus: BusClient, admin_db) -> None:
    from contracts import ledger as L

    customer_id = await eligible_customer(bus, admin_db)
    savings, current = uuid.uuid4(), uuid.uuid4()
    await bus.ok(a.OpenAccount(account_id=savings, customer_id=customer_id, product_code="savings"))
    await bus.ok(a.OpenAccount(account_id=current, customer_id=customer_id, product_code="current"))
    deposit = L.NewTransfer(id=uuid.uuid4(), debit_account_id=L.bank_account_id("cash_vault", "INR"),
                            credit_account_id=savings, amount=250_000, currency="INR", code="deposit")  # fmt: skip
    assert (await bus.ok(L.CreateTransfers(transfers=[deposit])))["results"][0]["result"] == "ok"

    async def available() -> int:
        return (await bus.ok(L.LookupAccounts(ids=[savings])))["accounts"][0]["available"]

    hold_id = uuid.uuid4()
    hold = a.PlaceHold(hold_id=hold_id, account_id=savings, kind=a.HoldKind.hold, amount=100_000, reason="cheque in clearing",
                       actor="officer-1", expires_in_s=3_600)  # fmt: skip
    placed = await bus.ok(hold)
    assert placed["status"] == "active" and placed["expires_at"] is not None
    assert await bus.ok(hold) == placed, "the same hold asked again is the same hold"
    assert await available() == 250_000 - 10_000 - 100_000
    too_much = await bus.send(a.PlaceHold(hold_id=uuid.uuid4(), account_id=savings, kind=a.HoldKind.lien, amount=140_001,
                                          reason="court order", actor="officer-1"))  # fmt: skip
    assert too_much.error is not None and too_much.error.code == "insufficient_available"
    blocked = await bus.send(a.CloseAccount(account_id=savings, actor="officer-1", reason="leaves", payout_account_id=current))
    assert blocked.error is not None and blocked.error.code == "close_refused_pending_transfers"

    released = await bus.ok(a.ReleaseHold(hold_id=hold_id, account_id=savings, actor="officer-1", reason="cleared"))
    assert released["status"] == "released" and await available() == 240_000
    again = await bus.send(a.ReleaseHold(hold_id=hold_id, account_id=savings, actor="officer-1", reason="twice"))
    assert again.error is not None and again.error.code == "hold_not_active"

    short = await bus.ok(a.PlaceHold(hold_id=uuid.uuid4(), account_id=savings, kind=a.HoldKind.hold, amount=5_000,
                                     reason="card authorisation", actor="officer-1", expires_in_s=1))  # fmt: skip

    async def expired() -> bool:
        listed = (await bus.ok(a.ListHolds(account_id=savings)))["items"]
        return next(h for h in listed if h["hold_id"] == short["hold_id"])["status"] == "expired" and await available() == 240_000

    await eventually(expired, timeout_s=10)
    listed = {h["hold_id"]: h["status"] for h in (await bus.ok(a.ListHolds(account_id=savings)))["items"]}
    assert listed[str(hold_id)] == "released" and sorted(listed.values()) == ["expired", "refused", "released"]
    events = await admin_db.fetch("SELECT routing_key FROM account.outbox WHERE payload->>'account_id' = $1 "
                                  "AND routing_key LIKE 'account.hold_%' ORDER BY id", str(savings))  # fmt: skip
    assert [e["routing_key"] for e in events] == ["account.hold_placed", "account.hold_released", "account.hold_placed"]
    closed = await bus.ok(a.CloseAccount(account_id=savings, actor="officer-1", reason="leaves", payout_account_id=current))
    assert closed["status"] == "closed"


async def test_an_officer_defines_and_versions_a_product_and_accounts_keep_the_version_they_opened_under(
    bus: BusClient, edge_bus: BusClient, admin_db,
) -> None:  # fmt: skip
    import json

    from contracts import ledger as L

    code = f"saver_{uuid.uuid4().hex[:8]}"
    terms = {**(await bus.ok(a.GetProduct(code="savings"))), "name": "Saver Plus", "rate_bps": 425}
    for field in ("code", "version", "defined_by", "defined_at"):
        terms.pop(field)
    first = await bus.ok(a.DefineProduct(**terms, code=code, actor="officer-1"))
    assert (first["version"], first["rate_bps"], first["defined_by"]) == (1, 425, "officer-1")
    again = await bus.ok(a.DefineProduct(**terms, code=code, actor="officer-2"))  # the same terms: nothing new
    assert (again["version"], again["defined_by"]) == (1, "officer-1")
    customer_id = await eligible_customer(bus, admin_db)
    old, new = uuid.uuid4(), uuid.uuid4()
    opened = await bus.ok(a.OpenAccount(account_id=old, customer_id=customer_id, product_code=code))
    assert (opened["product_code"], opened["product_version"]) == (code, 1)
    second = await bus.ok(a.DefineProduct(**{**terms, "rate_bps": 500, "minimum_balance": 20_000, "free_atm_withdrawals": 2,
                                             "atm_fee": 2_500}, code=code, actor="officer-1"))  # fmt: skip
    assert second["version"] == 2
    await bus.ok(a.OpenAccount(account_id=new, customer_id=customer_id, product_code=code))
    views = {v["account_id"]: v for v in [await bus.ok(a.GetAccount(account_id=i)) for i in (old, new)]}
    assert (views[str(old)]["product_version"], views[str(new)]["product_version"]) == (1, 2)
    # Each account's floor in the ledger is its own version's minimum balance.
    ledger_accounts = {x["id"]: x for x in (await bus.ok(L.LookupAccounts(ids=[old, new])))["accounts"]}
    assert (ledger_accounts[str(old)]["overdraft_limit"], ledger_accounts[str(new)]["overdraft_limit"]) == (-10_000, -20_000)
    assert (await bus.ok(a.GetProduct(code=code, version=1)))["rate_bps"] == 425
    # Unless migrated: an officer moves the old account to version 2, and the ledger's floor follows.
    migrated = await bus.ok(a.MigrateProduct(account_id=old, to_version=2, actor="officer-1", reason="repricing"))
    assert migrated["product_version"] == 2
    assert (await bus.ok(L.LookupAccounts(ids=[old])))["accounts"][0]["overdraft_limit"] == -20_000

    async def payments_learnt_the_new_terms() -> bool:  # from account.product_migrated
        row = await admin_db.fetchrow("SELECT free_atm_withdrawals, atm_fee FROM payment.payment_account "
                                      "WHERE account_id = $1", old)  # fmt: skip
        return row is not None and (row["free_atm_withdrawals"], row["atm_fee"]) == (2, 2_500)

    await eventually(payments_learnt_the_new_terms)
    for version, refusal in ((2, "invalid_transition"), (9, "product_not_found")):
        again = await bus.send(a.MigrateProduct(account_id=old, to_version=version, actor="officer-1", reason="again"))
        assert again.error is not None and again.error.code == refusal
    listed = {p["code"]: p for p in (await bus.ok(a.ListProducts()))["items"]}
    assert listed[code]["version"] == 2
    # Terms a bank may not have, and a product that changes its nature, are refused with the reason.
    for bad, why in (({"overdraft_limit": 1}, "never overdraws"), ({"type": "current", "rate_bps": 0}, "keeps its type")):
        refused = await bus.send(a.DefineProduct(**{**terms, **bad}, code=code, actor="officer-1"))
        assert refused.error is not None and refused.error.code == "invalid_product" and why in refused.error.message
    # A customer defines nothing, whatever the body says.
    actor = json.dumps({"sub": "cust-1", "roles": ["customer"], "customer_id": str(customer_id)})
    forged = await edge_bus.correlator.send(a.DefineProduct(**terms, code=code, actor="officer-1"), message_id=uuid.uuid4().hex,
                                            timeout_s=10, headers={"x-actor": actor})  # fmt: skip
    assert forged.error is not None and forged.error.code == "forbidden"
    assert (await bus.ok(a.GetProduct(code=code)))["version"] == 2


async def test_an_officer_sets_a_current_accounts_overdraft_within_its_products_ceiling(bus: BusClient, admin_db) -> None:
    from contracts import ledger as L

    code = f"od_{uuid.uuid4().hex[:8]}"
    terms = {**(await bus.ok(a.GetProduct(code="current"))), "name": "Overdraft Current", "overdraft_limit": 1_000_000}
    for field in ("code", "version", "defined_by", "defined_at"):
        terms.pop(field)
    await bus.ok(a.DefineProduct(**terms, code=code, actor="officer-1"))
    customer_id = await eligible_customer(bus, admin_db)
    current, savings = uuid.uuid4(), uuid.uuid4()
    await bus.ok(a.OpenAccount(account_id=current, customer_id=customer_id, product_code=code))
    await bus.ok(a.OpenAccount(account_id=savings, customer_id=customer_id, product_code="savings"))

    async def set_to(account_id: uuid.UUID, limit: int):
        return await bus.send(a.SetOverdraft(account_id=account_id, overdraft_limit=limit, actor="officer-1", reason="review"))

    async def withdraw(amount: int) -> str:
        cash = L.NewTransfer(id=uuid.uuid4(), debit_account_id=current, credit_account_id=L.bank_account_id("cash_vault", "INR"),
                             amount=amount, currency="INR", code="withdrawal")  # fmt: skip
        return (await bus.ok(L.CreateTransfers(transfers=[cash])))["results"][0]["result"]

    assert await withdraw(1) == "exceeds_credits"  # no overdraft until an officer grants one
    granted = await set_to(current, 500_000)
    assert granted.ok and granted.result["overdraft_limit"] == 500_000, granted.error
    ledger_view = (await bus.ok(L.LookupAccounts(ids=[current])))["accounts"][0]
    assert ledger_view["overdraft_limit"] == 500_000 - 50_000  # the overdraft less the 500.00 minimum balance
    assert await withdraw(450_000) == "ok" and await withdraw(1) == "exceeds_credits"
    in_use = await set_to(current, 400_000)  # the ledger would allow 350,000: 450,000 is in use
    assert in_use.error is not None and in_use.error.code == "overdraft_in_use"
    over = await set_to(current, 1_000_001)
    assert over.error is not None and over.error.code == "invalid_overdraft"
    never = await set_to(savings, 1)
    assert never.error is not None and never.error.code == "invalid_overdraft"
    events = await admin_db.fetchval("SELECT count(*) FROM account.outbox WHERE routing_key = 'account.overdraft_changed' "
                                     "AND payload->>'account_id' = $1", str(current))  # fmt: skip
    assert events == 1


async def test_a_customer_who_leaves_has_every_account_closed_and_paid_out_in_turn(bus: BusClient, admin_db) -> None:
    from contracts import ledger as L

    async def opened(customer_id: uuid.UUID, product: str, amount: int) -> uuid.UUID:
        account_id = uuid.uuid4()
        await bus.ok(a.OpenAccount(account_id=account_id, customer_id=customer_id, product_code=product))
        if amount:
            cash = L.NewTransfer(id=uuid.uuid4(), debit_account_id=L.bank_account_id("cash_vault", "INR"),
                                 credit_account_id=account_id, amount=amount, currency="INR", code="deposit")  # fmt: skip
            assert (await bus.ok(L.CreateTransfers(transfers=[cash])))["results"][0]["result"] == "ok"
        return account_id

    async def leave(customer_id: uuid.UUID):
        return await bus.send(a.CloseCustomerAccounts(customer_id=customer_id, actor="officer-1", reason="leaves the bank"))

    leaver = await eligible_customer(bus, admin_db)
    savings, current = await opened(leaver, "savings", 50_000), await opened(leaver, "current", 0)
    done = await leave(leaver)
    assert done.ok and done.result["closed"] == [str(savings), str(current)], done.error
    views = [await bus.ok(a.GetAccount(account_id=i)) for i in (savings, current)]
    assert [v["status"] for v in views] == ["closed", "closed"]
    [payout] = (await bus.ok(L.LookupTransfers(ids=[L.closure_transfer_id(savings)])))["transfers"]
    assert (payout["amount"], payout["credit_account_id"]) == (50_000, str(L.bank_account_id("cash_vault", "INR")))
    assert (await leave(leaver)).result == {"customer_id": str(leaver), "closed": []}  # nothing left to close
    # A frozen account stops it before anything moves; a close the ledger refuses stops the rest.
    frozen_customer = await eligible_customer(bus, admin_db)
    first, frozen = await opened(frozen_customer, "savings", 20_000), await opened(frozen_customer, "savings", 20_000)
    await bus.ok(a.FreezeAccount(account_id=frozen, actor="officer-1", reason="court order"))
    refused = await leave(frozen_customer)
    assert refused.error is not None and refused.error.code == "account_frozen"
    assert refused.error.details == {"account_id": str(frozen)}
    assert (await bus.ok(a.GetAccount(account_id=first)))["status"] == "active"
    held_customer = await eligible_customer(bus, admin_db)
    free, held = await opened(held_customer, "savings", 20_000), await opened(held_customer, "savings", 20_000)
    await bus.ok(a.PlaceHold(hold_id=uuid.uuid4(), account_id=held, kind="lien", amount=5_000, reason="court order",
                             actor="officer-1"))  # fmt: skip
    stopped = await leave(held_customer)
    assert stopped.error is not None and stopped.error.code == "close_refused_pending_transfers"
    assert stopped.error.details == {"account_id": str(held), "closed": [str(free)]}
    assert (await bus.ok(a.GetAccount(account_id=held)))["status"] == "active"
