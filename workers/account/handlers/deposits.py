"""Fixed deposits (banking-rules §2): opened and funded at once from the customer's own account,
locked in the ledger for the term, and ended by close of business's `account.deposits` step at
maturity (interest credited and everything paid out in the ledger's closing chain, or the interest
added to the principal for another term at the rate then in force), or before it by an officer
(`close_deposit_early`: the contract rate less the product's penalty, for the days held).

Saga steps, each one transaction: create the deposit's ledger account (its floor keeps every unit
in) → move the principal from the funding account (refused: the deposit's account closes unused)
→ running. At maturity: `ledger.set_account_flags(close, payout, settle=[interest])` per deposit
paid out, one `ledger.create_transfers` of interest credits for those renewing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from bus.handling import Context, Deferred
from contracts import account as c
from contracts import day, ledger
from contracts.common import Reply
from workers.account import store
from workers.account.domain import accounts as domain
from workers.account.domain import deposits
from workers.account.domain.accounts import Refusal
from workers.account.handlers import steps
from workers.account.handlers.accounts import fact, not_found, owned_account, refuse

STEP = "account.deposits"
STEP_CREATE = "deposit_ledger_account"
STEP_FUND = "deposit_funding"
STEP_MATURE = "deposit_payout"  # a maturity paid out, or a premature closure
STEP_RENEW = "deposit_renewal"
STEP_INSTALMENTS = "deposit_instalments"
STEP_UNFUNDED = "deposit_unfunded"  # the ledger account of a deposit that was never funded, closed
ROUND = 100  # deposits a round of the close (each payout is its own ledger command)
SYSTEM = "close-of-business"
_DONE = Reply.success()


async def on_day_opened(ctx: Context, event: day.DayOpened) -> None:
    await store.learn_business_date(ctx.conn, event.business_date, event.occurred_at)


# --- opening -------------------------------------------------------------------------------------


def _funding_refusal(customer_id: UUID, currency: str, account: c.AccountView | None, what: str) -> Refusal | None:
    if account is None or account.customer_id != customer_id or account.currency != currency \
            or account.status != c.AccountStatus.active or account.type in domain.TERM_DEPOSITS:  # fmt: skip
        return Refusal(c.AccountError.invalid_funding_account,
                       f"the {what} account must be the customer's own active savings or current account in {currency}")  # fmt: skip
    return None


async def open_fixed_deposit(ctx: Context, cmd: c.OpenFixedDeposit) -> Reply | Deferred:
    return await _open(ctx, cmd, cmd.amount, lambda terms: deposits.deposit_refusal(terms, cmd.amount, cmd.term_days),
                       term_days=cmd.term_days, at_maturity=cmd.at_maturity, instalments=None)  # fmt: skip


async def open_recurring_deposit(ctx: Context, cmd: c.OpenRecurringDeposit) -> Reply | Deferred:
    # The term in days is known once the first instalment sets the start: 31 a month until then.
    return await _open(ctx, cmd, cmd.instalment,
                       lambda terms: deposits.recurring_refusal(terms, cmd.instalment, cmd.instalments),
                       term_days=31 * cmd.instalments, at_maturity=c.AtMaturity.payout, instalments=cmd.instalments)  # fmt: skip


async def _open(ctx: Context, cmd: c.OpenFixedDeposit | c.OpenRecurringDeposit, amount: int,
                terms_refusal: Any, *, term_days: int, at_maturity: c.AtMaturity,
                instalments: int | None) -> Reply | Deferred:  # fmt: skip
    """A deposit's account and contract, then its ledger account (locked), then its first money."""
    existing = await store.get_account(ctx.conn, cmd.account_id)
    if existing is not None:
        found = await store.get_deposit(ctx.conn, cmd.account_id)
        if found is not None and (existing.customer_id, existing.product_code, found["instalment"] or found["principal"]) == (
                cmd.customer_id, cmd.product_code, amount):  # fmt: skip
            return Reply.success(await _view(ctx, cmd.account_id))  # a retry
        return Reply.refusal(c.AccountError.account_exists, f"account {cmd.account_id} exists with other fields")
    if await store.business_date(ctx.conn) is None:
        return Reply.refusal(c.AccountError.unavailable, "the business date is not known yet: a deposit cannot start")
    product = domain.decide_opening(await store.customer_standing(ctx.conn, cmd.customer_id), cmd.product_code,
                                    await store.product(ctx.conn, cmd.product_code))  # fmt: skip
    if isinstance(product, Refusal):
        return refuse(product)
    if refusal := terms_refusal(product):
        return refuse(refusal)
    payout_id = cmd.payout_account_id or cmd.funding_account_id
    for what, account_id in (("funding", cmd.funding_account_id), ("payout", payout_id)):
        if refusal := _funding_refusal(cmd.customer_id, product.currency, await store.get_account(ctx.conn, account_id), what):
            return refuse(refusal)
    sequence = await store.next_sequence(ctx.conn, cmd.branch)
    account = c.AccountView(
        account_id=cmd.account_id, number=domain.account_number(product.type, cmd.branch, sequence),
        customer_id=cmd.customer_id, product_code=product.code, product_version=product.version, type=product.type,
        currency=product.currency, status=domain.opening_status(product.type), ledger_account_id=cmd.account_id,
        branch=cmd.branch, opened_at=ctx.now, version=1,
    )  # fmt: skip
    await store.insert_account(ctx.conn, account)
    await store.insert_deposit(ctx.conn, account.account_id, amount, product.rate_bps, term_days, at_maturity.value,
                               payout_id, cmd.funding_account_id, instalments=instalments)  # fmt: skip
    locked = ledger.NewAccount(
        id=account.ledger_account_id, currency=account.currency, code=domain.CUSTOMER_DEPOSIT_CODE,
        flags=ledger.AccountFlags(**dict.fromkeys(domain.DEPOSIT_LEDGER_FLAGS, True)),
        overdraft_limit=deposits.LOCKED_FLOOR, owner_id=account.customer_id,
    )  # fmt: skip
    return await ctx.request(ledger.CreateAccounts(accounts=[locked]), step=STEP_CREATE,
                             state={"account_id": str(account.account_id)})  # fmt: skip


async def ledger_account_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """The deposit's ledger account exists: move the principal in; refused, the deposit never starts."""
    account = await store.get_account(ctx.conn, UUID(state["account_id"]), for_update=True)
    assert account is not None
    result = (reply.result or {}).get("results", [{}])[0].get("result") if reply.ok else None
    if result not in ("ok", "exists"):
        await store.change_status(ctx.conn, account.account_id, domain.ledger_account_refused(account.status), ctx.now)
        await store.update_deposit(ctx.conn, account.account_id, status=c.DepositStatus.refused.value, error=str(result))
        return Reply.refusal(c.AccountError.ledger_refused, "the ledger would not create the deposit's account",
                             {"ledger_result": result})  # fmt: skip
    change = domain.ledger_account_created(account.status, account.type)
    if isinstance(change, Refusal):
        return Reply.success(await _view(ctx, account.account_id))  # a repeated answer
    await store.change_status(ctx.conn, account.account_id, change, ctx.now)
    found = await store.get_deposit(ctx.conn, account.account_id)
    assert found is not None
    funding = await store.get_account(ctx.conn, found["funding_account_id"])
    assert funding is not None
    move = ledger.NewTransfer(id=deposits.funding_transfer_id(account.account_id), debit_account_id=funding.ledger_account_id,
                              credit_account_id=account.ledger_account_id, amount=found["principal"], currency=account.currency,
                              code="fixed_deposit", reference=f"FD-{account.number}",
                              narration=f"Fixed deposit {account.number} opened")  # fmt: skip
    return await ctx.request(ledger.CreateTransfers(transfers=[move]), step=STEP_FUND, state=state)


async def funding_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    account = await store.get_account(ctx.conn, UUID(state["account_id"]), for_update=True)
    assert account is not None
    result = (reply.result or {}).get("results", [{}])[0].get("result") if reply.ok else None
    if result not in ("ok", "exists"):
        await store.change_status(ctx.conn, account.account_id, domain.deposit_unfunded(account.status), ctx.now)
        await store.update_deposit(ctx.conn, account.account_id, status=c.DepositStatus.refused.value, error=str(result))
        # Its ledger account holds nothing and never will: closed too, before the refusal is answered.
        close = ledger.SetAccountFlags(account_id=account.ledger_account_id, action="close", actor="system",
                                       reason="a deposit that was never funded")  # fmt: skip
        return await ctx.request(close, step=STEP_UNFUNDED, state={"ledger_result": str(result)})
    change = domain.deposit_funded(account.status)
    if isinstance(change, Refusal):
        return Reply.success(await _view(ctx, account.account_id))
    account = await store.change_status(ctx.conn, account.account_id, change, ctx.now)
    start = await store.business_date(ctx.conn)
    assert start is not None, "a deposit opens only once the business date is known"
    found = await store.get_deposit(ctx.conn, account.account_id)
    assert found is not None
    if found["kind"] == "recurring":
        maturity = deposits.add_months(start, found["instalments"])
        await store.insert_instalments(ctx.conn, account.account_id, deposits.instalment_due_dates(start, found["instalments"]),
                                       found["instalment"], start, deposits.funding_transfer_id(account.account_id))  # fmt: skip
    else:
        maturity = deposits.maturity_date(start, found["term_days"])
    await store.update_deposit(ctx.conn, account.account_id, status=c.DepositStatus.running.value, start_date=start,
                               maturity_date=maturity, term_days=(maturity - start).days)  # fmt: skip
    await ctx.emit(c.AccountOpened(**fact(account, ctx.now), type=account.type, product_version=account.product_version,
                                   branch=account.branch, ledger_account_id=account.ledger_account_id))  # fmt: skip
    return Reply.success(await _view(ctx, account.account_id))


async def unfunded_closed(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply:
    """The refusal the funding earned, whatever the ledger answered the close (an empty account's
    close is refused only if it was closed already)."""
    result = state["ledger_result"]
    return Reply.refusal(c.AccountError.funding_refused, f"the funding account could not pay the deposit: {result}",
                         {"ledger_result": result})  # fmt: skip


# --- reads -----------------------------------------------------------------------------------------


async def _view(ctx: Context, account_id: UUID) -> c.DepositView:
    account = await store.get_account(ctx.conn, account_id)
    found = await store.get_deposit(ctx.conn, account_id)
    assert account is not None and found is not None
    running = found["status"] in (c.DepositStatus.running, c.DepositStatus.maturing)
    counts = await store.instalment_counts(ctx.conn, account_id) if found["kind"] == "recurring" else {}
    return c.DepositView(
        account=account, **{k: found[k] for k in ("kind", "principal", "instalment", "instalments", "rate_bps", "term_days",
                                                   "start_date", "maturity_date", "at_maturity", "payout_account_id",
                                                   "funding_account_id", "status", "last_interest", "error")},
        instalments_paid=counts.get("paid") if counts else None, instalments_missed=counts.get("missed", 0) if counts else None,
        interest_at_maturity=await _interest_to(ctx, found, found["rate_bps"], found["maturity_date"]) if running else None,
    )  # fmt: skip


async def _interest_to(ctx: Context, found: Any, rate_bps: int, until: dt.date) -> int:
    """A fixed deposit's compound interest over its term; a recurring one's, each paid instalment
    for its own days to `until`."""
    if found["kind"] == "recurring":
        return deposits.recurring_interest(await store.paid_instalments(ctx.conn, found["account_id"]), rate_bps, until)
    return deposits.compound_interest(found["principal"], rate_bps, (until - found["start_date"]).days)


async def get_deposit(ctx: Context, cmd: c.GetDeposit) -> Reply:
    if await store.get_deposit(ctx.conn, cmd.account_id) is None:
        return not_found(cmd.account_id)
    account = await owned_account(ctx, cmd.account_id)
    return account if isinstance(account, Reply) else Reply.success(await _view(ctx, cmd.account_id))


# --- ending: maturity, renewal, premature closure ---------------------------------------------------


async def _ask_payout(ctx: Context, found: Any, interest: int, *, outcome: str, business_date: dt.date | None,
                      actor: str, reason: str) -> Deferred:  # fmt: skip
    """The deposit's closing chain: its interest credited, everything paid out, the account closed."""
    account = await store.get_account(ctx.conn, found["account_id"])
    payout = await store.get_account(ctx.conn, found["payout_account_id"])
    assert account is not None and payout is not None
    kind = "premature" if outcome == "closed_early" else "maturity"
    settle = [ledger.NewTransfer(
        id=deposits.interest_transfer_id(account.account_id, found["maturity_date"], kind),
        debit_account_id=ledger.bank_account_id("interest_expense", account.currency), credit_account_id=account.ledger_account_id,
        amount=interest, currency=account.currency, code="interest", reference=f"FD-{account.number}",
        narration=f"Deposit interest ({'closed early' if kind == 'premature' else 'at maturity'})",
    )] if interest else []  # fmt: skip
    close = ledger.SetAccountFlags(account_id=account.ledger_account_id, action="close", actor=actor, reason=reason,
                                   payout_account_id=payout.ledger_account_id, settle=settle)  # fmt: skip
    state = {"account_id": str(account.account_id), "interest": interest, "outcome": outcome, "actor": actor,
             "reason": reason, "business_date": business_date.isoformat() if business_date else None}  # fmt: skip
    return await ctx.request(close, step=STEP_MATURE, key=str(account.account_id), state=state)


async def close_deposit_early(ctx: Context, cmd: c.CloseDepositEarly) -> Reply | Deferred:
    found = await store.get_deposit(ctx.conn, cmd.account_id, for_update=True)
    if found is None:
        return not_found(cmd.account_id)
    if found["status"] != c.DepositStatus.running:
        return Reply.refusal(c.AccountError.deposit_not_matured, f"the deposit is {found['status']}, not running")
    today = await store.business_date(ctx.conn)
    assert today is not None
    product = await _product_of(ctx, cmd.account_id)
    rate = deposits.premature_rate_bps(found["rate_bps"], product.premature_penalty_bps)
    interest = await _interest_to(ctx, found, rate, max(today, found["start_date"]))
    await store.update_deposit(ctx.conn, cmd.account_id, status=c.DepositStatus.maturing.value, tried_on=None)
    return await _ask_payout(ctx, found, interest, outcome="closed_early", business_date=None, actor=cmd.actor,
                             reason=cmd.reason)  # fmt: skip


async def payout_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """The closing chain ran (the deposit ended) or was refused (it runs on; a close retries)."""
    account_id = UUID(state["account_id"])
    found = await store.get_deposit(ctx.conn, account_id, for_update=True)
    assert found is not None
    business_date = dt.date.fromisoformat(state["business_date"]) if state["business_date"] else None
    if found["status"] != c.DepositStatus.maturing:
        return Reply.success(await _view(ctx, account_id))  # a repeated answer
    if not reply.ok:
        assert reply.error is not None
        await store.update_deposit(ctx.conn, account_id, status=c.DepositStatus.running.value, error=reply.error.message)
        answer = Reply.refusal(reply.error.code if reply.error.code.startswith("close_refused") else
                               c.AccountError.payout_refused, reply.error.message, reply.error.details)  # fmt: skip
        return await _next_round(ctx, business_date) if business_date else answer
    outcome = state["outcome"]
    ended = c.DepositStatus.closed_early if outcome == "closed_early" else c.DepositStatus.matured
    await store.update_deposit(ctx.conn, account_id, status=ended.value, last_interest=state["interest"], error=None)
    account = await store.get_account(ctx.conn, account_id, for_update=True)
    assert account is not None
    account = await store.change_status(ctx.conn, account_id, domain.StatusChange(c.AccountStatus.closed), ctx.now)
    await ctx.emit(c.DepositMatured(account_id=account_id, customer_id=account.customer_id, outcome=outcome,
                                    principal=found["principal"], interest=state["interest"], currency=account.currency,
                                    payout_account_id=found["payout_account_id"], occurred_at=ctx.now))  # fmt: skip
    await ctx.emit(c.AccountClosed(**fact(account, ctx.now), actor=state["actor"], reason=state["reason"]))
    return await _next_round(ctx, business_date) if business_date else Reply.success(await _view(ctx, account_id))


async def renewal_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """Each renewing deposit's interest credited: the next term starts at its maturity, at the
    rate its product's newest version offers then; refused, it runs on and the next close retries."""
    business_date = dt.date.fromisoformat(state["business_date"])
    interest_of = {UUID(k): v for k, v in state["interest"].items()}
    results = steps.batch_results(reply)
    transfer_of = {r.id: r.result for r, _ in results} if not isinstance(results, str) else {}
    for account_id, (transfer_id, interest) in interest_of.items():
        found = await store.get_deposit(ctx.conn, account_id, for_update=True)
        assert found is not None
        if found["status"] != c.DepositStatus.maturing:
            continue
        result = "ok" if interest == 0 else transfer_of.get(UUID(transfer_id), "missing" if reply.ok else "no answer")
        if result not in ("ok", "exists"):
            await store.update_deposit(ctx.conn, account_id, status=c.DepositStatus.running.value, error=str(result))
            continue
        product = await _product_of(ctx, account_id, newest=True)
        start = found["maturity_date"]
        renewed = await store.update_deposit(
            ctx.conn, account_id, status=c.DepositStatus.running.value, principal=found["principal"] + interest,
            rate_bps=product.rate_bps, start_date=start, maturity_date=deposits.maturity_date(start, found["term_days"]),
            last_interest=interest, error=None,
        )  # fmt: skip
        account = await store.get_account(ctx.conn, account_id)
        assert account is not None
        await ctx.emit(c.DepositMatured(account_id=account_id, customer_id=account.customer_id, outcome="renewed",
                                        principal=found["principal"], interest=interest, currency=account.currency,
                                        next_maturity_date=renewed["maturity_date"], occurred_at=ctx.now))  # fmt: skip
    return await _next_round(ctx, business_date)


async def _product_of(ctx: Context, account_id: UUID, *, newest: bool = False) -> c.ProductView:
    account = await store.get_account(ctx.conn, account_id)
    assert account is not None
    product = await store.product(ctx.conn, account.product_code, None if newest else account.product_version)
    assert product is not None, "a product version is never deleted"
    return product


# --- close of business -----------------------------------------------------------------------------


async def on_day_closing(ctx: Context, event: day.DayClosing) -> None:
    if STEP not in event.steps:
        return
    if await store.maturing(ctx.conn, event.business_date):
        return  # asked again while answers are on their way: the last of them finishes the step
    await _next_round(ctx, event.business_date)


async def _next_round(ctx: Context, business_date: dt.date) -> Reply | Deferred:
    """Mature the next round of due deposits; none due and none awaited: the step is done."""
    if await store.maturing(ctx.conn, business_date) or await store.instalments_paying(ctx.conn, business_date):
        return _DONE  # this round's other answers are still coming
    if instalments := await store.due_instalments(ctx.conn, business_date, ledger.MAX_BATCH):
        return await _ask_instalments(ctx, business_date, instalments)
    due = await store.due_deposits(ctx.conn, business_date, ROUND)
    if not due:
        await steps.report(ctx, business_date, STEP, result=await store.deposits_tried_on(ctx.conn, business_date))
        return _DONE
    renewals: dict[str, Any] = {}
    credits: list[ledger.NewTransfer] = []
    for found in due:
        if found["kind"] == "recurring":
            await store.miss_unpaid_instalments(ctx.conn, found["account_id"])  # unpaid at maturity: missed
        interest = await _interest_to(ctx, found, found["rate_bps"], found["maturity_date"])
        await store.update_deposit(ctx.conn, found["account_id"], status=c.DepositStatus.maturing.value, tried_on=business_date)
        if found["at_maturity"] == c.AtMaturity.payout:
            await _ask_payout(ctx, found, interest, outcome="paid_out", business_date=business_date, actor=SYSTEM,
                              reason=f"matured {found['maturity_date']}")  # fmt: skip
            continue
        account = await store.get_account(ctx.conn, found["account_id"])
        assert account is not None
        transfer_id = deposits.interest_transfer_id(account.account_id, found["maturity_date"], "renewal")
        renewals[str(account.account_id)] = [str(transfer_id), interest]
        if interest:  # a deposit too small to earn a minor unit renews as it is
            credits.append(ledger.NewTransfer(
                id=transfer_id, debit_account_id=ledger.bank_account_id("interest_expense", account.currency),
                credit_account_id=account.ledger_account_id, amount=interest, currency=account.currency, code="interest",
                reference=f"FD-{account.number}", narration=f"Deposit interest to {found['maturity_date']}, renewed",
            ))  # fmt: skip
    if renewals and not credits:
        return await renewal_answered(ctx, {"business_date": business_date.isoformat(), "interest": renewals},
                                      Reply.success(ledger.CreateTransfersResult(results=[])))  # fmt: skip
    if renewals:
        await ctx.request(ledger.CreateTransfers(transfers=credits), step=STEP_RENEW, key=f"{business_date}:{credits[0].id}",
                          state={"business_date": business_date.isoformat(), "interest": renewals})  # fmt: skip
    return _DONE


async def _ask_instalments(ctx: Context, business_date: dt.date, due: list[Any]) -> Deferred:
    """Recurring deposits' instalments due: each from its funding account, whole or not at all."""
    moves = []
    for i in due:
        transfer_id = deposits.instalment_transfer_id(i["account_id"], i["seq"], business_date)
        await store.instalment_asked(ctx.conn, i["account_id"], i["seq"], transfer_id, business_date)
        moves.append(ledger.NewTransfer(id=transfer_id, debit_account_id=i["funding_ledger_id"], credit_account_id=i["ledger_account_id"],
                                        amount=i["amount"], currency=i["currency"].strip(), code="recurring_deposit",
                                        reference=f"RD-{i['number']}-{i['seq'] + 1}",
                                        narration=f"Recurring deposit {i['number']}: instalment {i['seq'] + 1}"))  # fmt: skip
    return await ctx.request(ledger.CreateTransfers(transfers=moves), step=STEP_INSTALMENTS,
                             key=f"{business_date}:{moves[0].id}", state={"business_date": business_date.isoformat()})  # fmt: skip


async def instalments_answered(ctx: Context, state: dict[str, Any], reply: Reply) -> Reply | Deferred:
    """Each instalment paid, or due again (the funding account could not pay: tried at the next close)."""
    business_date = dt.date.fromisoformat(state["business_date"])
    results = steps.batch_results(reply)
    if isinstance(results, str):  # the whole batch refused: every instalment of it is due again
        await store.instalments_refused(ctx.conn, business_date, results)
    else:
        for r, paid in results:
            await store.instalment_answered(ctx.conn, r.id, business_date, None if paid else str(r.result))
    return await _next_round(ctx, business_date)
