"""Issue 12's loan journey through the edge, with real processes.

Two customers each apply for 10,000.00 of the personal product at 12% for 6 months (banking-rules
§9's schedule); an officer submits and underwrites each but may not approve it, another officer
approves it (maker-checker), and the first disburses both on the same business date: each
customer's balance is the net disbursed, each loan's own ledger account owes the principal. Then
business days are closed one at a time through the edge, and after every close each loan's
outstanding (its principal less the principal repaid, from `GET /v1/loans/{id}`) is what its
ledger account owes.

Loan A: the closes of its first two due dates debit each instalment whole; the account is emptied
to its floor before the third, which the close leaves `partially_paid`; the next close finds the
loan `overdue` (bucket 1–30) and each close adds a penalty; past the grace days the customer
must pay the instalment and its penalty (less is `amount_below_due`), does, and the next close
finds the loan `active` again; then today's foreclosure quote, paid exactly, closes the loan and
its ledger account at zero.

Loan B: its account is emptied at once and nothing is ever paid. The close that finds it more
than 90 days past due turns it `defaulted` and moves its accrued, unreceived interest to interest
in suspense. An officer may not write it off; the admin does; the customer's later payment is a
recovery, to recoveries income.

`ledger.verify` recomputes every balance at the end of each phase, and the ledger's loan interest
receivable and interest in suspense are exactly what the loan worker holds accrued (read with the
admin DSN as tests/e2e/test_loan_crash.py does). The days are closed in the package's shared
cluster without assuming a date: the walk starts on a day of the month by the 24th, so no
instalment is collected at a month's end (when savings interest and charges move balances too).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from bus.settings import load
from contracts import ledger as L
from ops.ask import ask_once
from tests.e2e.conftest import Cluster
from tests.e2e.test_auth import login, new_user
from tests.e2e.test_flows import open_account_when_eligible, post, verified_customer
from workers.loan.domain.repayment import penalty_additions
from workers.loan.domain.schedule import foreclosure_quote
from workers.payment.domain.orders import branch_withdrawal_fee

pytestmark = pytest.mark.e2e

PRINCIPAL, RATE_BPS, MONTHS = 1_000_000, 1_200, 6
EMIS = [172_548] * 5 + [172_551]  # §9: 10,000.00 at 12% for 6 months
BALANCE_AFTER_3 = 507_464  # §9: what instalments 4–6 still owe of the principal
LAST_DAY = 24  # disbursed by the 24th of a month: every due date's close is before the month's end
POLL_S = 0.02
CLOSE_TIMEOUT_S = 120
SETTLE_S = 20  # how long a worker may take to learn what another did


@dataclass(frozen=True)
class Borrower:
    customer_id: str
    account_id: str
    username: str


# --- the business day ------------------------------------------------------------------------------


def _open_day(admin: httpx.Client) -> dict[str, Any]:
    """The business day once no close is running (another test's may be)."""
    deadline = time.monotonic() + CLOSE_TIMEOUT_S
    while (view := admin.get("/v1/business-day").json())["status"] != "open":
        assert time.monotonic() < deadline, view
        time.sleep(POLL_S)
    return view


def _close(admin: httpx.Client) -> dt.date:
    """Close the open business date and wait for the next to open: the date closed."""
    closing = _open_day(admin)["business_date"]
    started = admin.post("/v1/business-day/close", json={"business_date": closing})
    assert started.status_code == 200, started.text
    deadline = time.monotonic() + CLOSE_TIMEOUT_S
    while (view := admin.get("/v1/business-day").json())["status"] != "open" or view["business_date"] == closing:
        assert time.monotonic() < deadline, view
        time.sleep(POLL_S)
    return dt.date.fromisoformat(closing)


def _today(admin: httpx.Client) -> dt.date:
    return dt.date.fromisoformat(_open_day(admin)["business_date"])


def _loan_worker_on(admin: httpx.Client, loan_id: str, today: dt.date) -> None:
    """Wait for the loan worker to learn the open date (from `day.opened`): a quote names it."""
    deadline = time.monotonic() + SETTLE_S
    while (quote := admin.get(f"/v1/loans/{loan_id}/foreclosure-quote").json()).get("business_date") != today.isoformat():
        assert time.monotonic() < deadline, quote
        time.sleep(POLL_S)


# --- money and the ledger --------------------------------------------------------------------------


def _ledger(admin: httpx.Client, account_id: str) -> dict[str, Any]:
    """A ledger account (a customer's, a loan's or the bank's) as the admin reads it through the edge."""
    found = admin.get(f"/v1/accounts/{account_id}/balance")
    assert found.status_code == 200, found.text
    return dict(found.json())


def _balance(admin: httpx.Client, account_id: str) -> int:
    return int(_ledger(admin, account_id)["balance"])


def _bank(admin: httpx.Client, code: str) -> dict[str, Any]:
    return _ledger(admin, str(L.bank_account_id(code, "INR")))


def _deposit(admin: httpx.Client, account_id: str, amount: int) -> None:
    body = {"payment_id": str(uuid.uuid4()), "kind": "cash_deposit", "channel": "branch", "payee": {"account_id": account_id},
            "amount": amount, "currency": "INR"}  # fmt: skip
    done = post(admin, "/v1/payments", body)
    assert done.status_code == 201 and done.json()["status"] == "completed", done.text


def _floor(admin: httpx.Client, account_id: str) -> int:
    return -int(_ledger(admin, account_id)["overdraft_limit"])  # a negative overdraft limit is a minimum balance


def _empty(admin: httpx.Client, account_id: str) -> None:
    """Cash withdrawn at the branch until only the account's floor is left (each withdrawal's fee too)."""
    floor = _floor(admin, account_id)
    while (left := _balance(admin, account_id) - floor) > 0:
        fits = [x for x in (left, left - 2_500, round(left / 1.003), 99_999) if 0 < x and x + branch_withdrawal_fee(x) <= left]
        amount = max(fits, key=lambda x: x + branch_withdrawal_fee(x))
        body = {"payment_id": str(uuid.uuid4()), "kind": "cash_withdrawal", "channel": "branch", "payer_account_id": account_id,
                "amount": amount, "currency": "INR"}  # fmt: skip
        done = post(admin, "/v1/payments", body)
        assert done.status_code == 201 and done.json()["status"] == "completed", done.text
    assert _balance(admin, account_id) == floor


def _verify() -> None:
    """`ledger.verify`: every balance recomputed from the transfers, asked on the bus as the operator."""
    reply = asyncio.run(ask_once(L.Verify(), load().process_amqp_url("ops"), timeout_s=120))
    assert reply.ok and reply.result is not None and reply.result["ok"], reply


def _query(database_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        db = await asyncpg.connect(database_url)
        try:
            return list(await db.fetch(sql, *args))
        finally:
            await db.close()

    return asyncio.run(fetch())


def _accrued(database_url: str) -> dict[str, tuple[int, int]]:
    """Each loan's interest accrued and not received, and the part of it in suspense (the loan worker's)."""
    rows = _query(database_url, "SELECT loan_id::text, coalesce(sum(GREATEST(accrued_interest - paid_interest, 0)) FILTER "
                                "(WHERE status NOT IN ('foreclosed', 'written_off', 'restructured')), 0) AS receivable, "
                                "coalesce(sum(suspended_interest), 0) AS suspended FROM loan.instalment GROUP BY 1")  # fmt: skip
    return {r["loan_id"]: (int(r["receivable"]), int(r["suspended"])) for r in rows}


def _accrual_books_agree(admin: httpx.Client, database_url: str) -> tuple[dict[str, tuple[int, int]], int]:
    """The ledger's loan interest receivable and interest in suspense are the sums of what the loan
    worker holds over every loan: each loan's (receivable, suspended), and the suspense's balance."""
    loans = _accrued(database_url)
    receivable, suspense = _bank(admin, "loan_interest_receivable"), _bank(admin, "interest_suspense")
    books = (receivable["debits_posted"] - receivable["credits_posted"], suspense["credits_posted"] - suspense["debits_posted"])
    assert books == (sum(r for r, _ in loans.values()), sum(s for _, s in loans.values())), (books, loans)
    return loans, books[1]


# --- the loans -------------------------------------------------------------------------------------


def _borrower(cluster: Cluster, admin: httpx.Client) -> Borrower:
    customer_id = verified_customer(admin)
    account = open_account_when_eligible(admin, customer_id)
    _, username = new_user(cluster, ["customer"], customer_id=customer_id)
    return Borrower(customer_id, account["account_id"], username)


def _as(cluster: Cluster, username: str) -> httpx.Client:
    return cluster.client(timeout=30, token=login(cluster, username).json()["access_token"])


def _disbursed(cluster: Cluster, who: Borrower, maker: str, checker: str) -> dict[str, Any]:
    """Applied for by the customer, submitted and underwritten by `maker`, who may not approve it
    (maker-checker), approved by `checker`, disbursed by `maker`: the loan."""
    application_id, loan_id = str(uuid.uuid4()), str(uuid.uuid4())
    base = f"/v1/loan-applications/{application_id}"
    body = {"application_id": application_id, "customer_id": who.customer_id, "product_code": "personal",
            "linked_account_id": who.account_id, "purpose": "a kitchen", "principal": PRINCIPAL, "currency": "INR",
            "months": MONTHS, "monthly_income": 8_000_000, "existing_emi": 0, "credit_score": 780,
            "employment_months": 84}  # fmt: skip
    terms = {"principal": PRINCIPAL, "rate_bps": RATE_BPS}
    with _as(cluster, who.username) as customer:
        made = post(customer, "/v1/loan-applications", body)
        assert made.status_code == 201 and made.json()["status"] == "draft", made.text
    with _as(cluster, maker) as officer:
        deadline = time.monotonic() + SETTLE_S  # the loan worker learns the account from account.opened
        while (submitted := post(officer, f"{base}/submit", {})).status_code != 200:
            assert submitted.json()["code"] == "not_eligible" and time.monotonic() < deadline, submitted.text
            time.sleep(0.2)
        reviewed = post(officer, f"{base}/underwrite", {})
        assert reviewed.status_code == 200 and reviewed.json()["assessment"]["outcome"] == "recommend", reviewed.text
        own = post(officer, f"{base}/approve", terms)
        assert own.status_code in (409, 422) and own.json()["code"] == "same_maker", own.text
    with _as(cluster, checker) as officer:
        approved = post(officer, f"{base}/approve", terms)
        assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
    with _as(cluster, maker) as officer:
        disbursed = post(officer, f"{base}/disburse", {"loan_id": loan_id})
        assert disbursed.status_code == 200 and disbursed.json()["status"] == "active", disbursed.text
    return dict(disbursed.json())


def _pay(client: httpx.Client, path: str, amount: int) -> httpx.Response:
    """`POST /v1/loans/{id}/pay` or `…/foreclose`, under a new payment id."""
    return post(client, path, {"payment_id": str(uuid.uuid4()), "amount": amount})


def _outstanding(loan: dict[str, Any]) -> int:
    """What `GET /v1/loans/{id}` says the loan still owes of its principal."""
    return int(loan["principal"]) - sum(i["paid_principal"] for i in loan["instalments"])


def _agreed(admin: httpx.Client, loan_id: str) -> dict[str, Any]:
    """The loan, once its outstanding is checked against what its ledger account owes (debit-normal)."""
    loan = admin.get(f"/v1/loans/{loan_id}")
    assert loan.status_code == 200, loan.text
    owed = _ledger(admin, loan_id)
    assert owed["debits_posted"] - owed["credits_posted"] == _outstanding(loan.json()), (owed, loan.json()["instalments"])
    return dict(loan.json())


def _owing(instalment: dict[str, Any]) -> int:
    return int(instalment["amount"] - instalment["paid_interest"] - instalment["paid_principal"])


class Walk:
    """Closes days one at a time; after each close both loans' outstanding agree with their ledger
    accounts, and loan B's status, days past due and bucket are kept as the closes found them."""

    def __init__(self, admin: httpx.Client, loan_a: str, loan_b: str) -> None:
        self.admin, self.loan_a, self.loan_b = admin, loan_a, loan_b
        self.closed = 0
        self.seen_b: list[tuple[str, int, str]] = []

    def close(self) -> tuple[dt.date, dict[str, Any], dict[str, Any]]:
        """The date closed, then loan A and loan B as the close left them."""
        closed = _close(self.admin)
        self.closed += 1
        a, b = _agreed(self.admin, self.loan_a), _agreed(self.admin, self.loan_b)
        if not self.seen_b or self.seen_b[-1] != (b["status"], b["days_past_due"], b["bucket"]):
            self.seen_b.append((b["status"], b["days_past_due"], b["bucket"]))
        return closed, a, b

    def close_before(self, date: dt.date) -> None:
        """Close every business date before `date`: the next close is the one that collects what falls due then."""
        while _today(self.admin) < date:
            self.close()


def test_a_loan_is_repaid_falls_overdue_catches_up_and_is_foreclosed_while_another_defaults_is_written_off_and_recovers(
    cluster: Cluster, infra: dict[str, str],
) -> None:  # fmt: skip
    started = time.monotonic()
    database_url = infra["database_url"]
    _, maker = new_user(cluster, ["officer"])
    _, checker = new_user(cluster, ["officer"])
    with cluster.client(timeout=30) as admin:
        while _today(admin).day > LAST_DAY:
            _close(admin)
        product = admin.get("/v1/loan-products/personal").json()
        grace, penalty_bps = product["grace_days"], product["penalty_rate_bps"]
        a, b = _borrower(cluster, admin), _borrower(cluster, admin)

        # --- apply → underwrite → approve (another officer) → disburse, both loans on one date ---
        disbursed = {who: _disbursed(cluster, who, maker, checker) for who in (a, b)}
        loan_a, loan_b = (disbursed[who]["loan_id"] for who in (a, b))
        assert disbursed[a]["disbursed_on"] == disbursed[b]["disbursed_on"] == _today(admin).isoformat()
        for who, loan in disbursed.items():
            assert [i["amount"] for i in loan["schedule"]["instalments"]] == EMIS
            assert (loan["net_disbursed"], loan["processing_fee"]) == (990_000, 10_000)  # §9: net of its 1% fee
            assert _balance(admin, who.account_id) == loan["net_disbursed"]
            owed = _ledger(admin, loan["loan_id"])
            assert (owed["code"], owed["debits_posted"], owed["credits_posted"]) == ("loan_principal", PRINCIPAL, 0)
            assert _agreed(admin, loan["loan_id"])["status"] == "active"
        floor = _floor(admin, a.account_id)
        _empty(admin, b.account_id)  # loan B is never paid
        _verify()
        walk = Walk(admin, loan_a, loan_b)
        dues = [dt.date.fromisoformat(i["due_date"]) for i in disbursed[a]["schedule"]["instalments"]]

        # --- loan A: two instalments auto-debited whole, the third missed (the account emptied) ---
        for number, due in enumerate(dues[:3], start=1):
            walk.close_before(due)
            if number == 3:
                _empty(admin, a.account_id)
            before = _balance(admin, a.account_id)
            collected_on, loan, _ = walk.close()
            assert due <= collected_on < due.replace(day=28)  # the first close on or after it, never a month's end
            instalment = loan["instalments"][number - 1]
            paid = instalment["paid_interest"] + instalment["paid_principal"]
            assert before - _balance(admin, a.account_id) == paid  # the customer paid exactly what the instalment took
            if number < 3:
                assert (instalment["status"], paid, loan["status"]) == ("paid", EMIS[number - 1], "active"), instalment
                assert _outstanding(loan) == loan["schedule"]["instalments"][number - 1]["balance_after"]  # §9's schedule
            else:
                assert (instalment["status"], paid, _balance(admin, a.account_id)) == ("partially_paid", 0, floor), instalment
        _accrual_books_agree(admin, database_url)
        _verify()

        # --- overdue: days past due and bucket at the next close, then a penalty each day past the grace ---
        closed, loan, _ = walk.close()
        assert (loan["status"], loan["days_past_due"], loan["bucket"]) == ("overdue", (closed - dues[2]).days, "1-30")
        while (closed - dues[2]).days <= grace:
            closed, loan, _ = walk.close()
        third = loan["instalments"][2]
        owing = _owing(third)
        assert owing == EMIS[2] and loan["status"] == "overdue"
        assert third["penalty_due"] == penalty_additions(owing, penalty_bps, dues[2], None, closed) > 0
        penalty = third["penalty_due"]

        # --- the catch-up payment: the instalment and its penalty, no less ---
        _loan_worker_on(admin, loan_a, _today(admin))  # so its days late are counted from today
        _deposit(admin, a.account_id, owing + penalty)
        before, penalty_income = _balance(admin, a.account_id), _bank(admin, "penalty_income")["credits_posted"]
        with _as(cluster, a.username) as customer:
            short = _pay(customer, f"/v1/loans/{loan_a}/pay", owing)
            assert short.status_code == 422 and short.json()["code"] == "amount_below_due", short.text
            assert short.json()["details"]["oldest_due"] == owing + penalty
            paid = _pay(customer, f"/v1/loans/{loan_a}/pay", owing + penalty)
            assert paid.status_code == 200, paid.text
        third = paid.json()["instalments"][2]
        assert (third["status"], third["penalty_paid"], third["penalty_due"]) == ("paid", penalty, penalty)
        assert _bank(admin, "penalty_income")["credits_posted"] == penalty_income + penalty  # booked when paid
        assert before - _balance(admin, a.account_id) == owing + penalty
        assert _agreed(admin, loan_a)["status"] == "overdue"  # until the next close finds nothing past due
        _, loan, _ = walk.close()
        assert (loan["status"], loan["days_past_due"], loan["bucket"]) == ("active", 0, "current")
        _accrual_books_agree(admin, database_url)
        _verify()

        # --- foreclosure: exactly today's quote pays the loan off and closes its ledger account ---
        today = _today(admin)
        assert today < dues[3]
        _loan_worker_on(admin, loan_a, today)
        quote = admin.get(f"/v1/loans/{loan_a}/foreclosure-quote").json()
        expected = foreclosure_quote(BALANCE_AFTER_3, RATE_BPS, (today - dues[2]).days)
        parts = ("outstanding_principal", "interest", "arrears", "penalties", "prepayment_charge", "total")
        assert tuple(quote[k] for k in parts) == (BALANCE_AFTER_3, expected.interest_minor, 0, 0,
                                                  expected.prepayment_charge_minor, expected.total_minor), quote  # fmt: skip
        _deposit(admin, a.account_id, quote["total"])
        before = _balance(admin, a.account_id)
        with _as(cluster, a.username) as customer:
            stale = _pay(customer, f"/v1/loans/{loan_a}/foreclose", quote["total"] - 1)
            assert stale.status_code == 422 and stale.json()["code"] == "quote_changed", stale.text
            closed_loan = _pay(customer, f"/v1/loans/{loan_a}/foreclose", quote["total"])
            assert closed_loan.status_code == 200, closed_loan.text
        assert closed_loan.json()["status"] == "closed"
        assert [i["status"] for i in closed_loan.json()["instalments"]] == ["paid"] * 3 + ["foreclosed"] * 3
        owed = _ledger(admin, loan_a)
        assert (owed["closed"], owed["debits_posted"] - owed["credits_posted"]) == (True, 0)
        assert before - _balance(admin, a.account_id) == quote["total"]
        loans, _ = _accrual_books_agree(admin, database_url)
        assert loans[loan_a] == (0, 0)  # nothing of its accrual is left receivable
        _verify()
        foreclosed_at = time.monotonic()

        # --- loan B: past 90 days it defaults, and its accrued interest moves to suspense ---
        loans_before, suspense_before = _accrual_books_agree(admin, database_url)
        while True:
            _, _, loan = walk.close()
            if loan["status"] == "defaulted":
                break
            assert loan["days_past_due"] <= 90, loan
            loans_before, suspense_before = _accrual_books_agree(admin, database_url)
        assert loans_before[loan_b][1] == 0 and loans_before[loan_b][0] > 0  # accrued to income until now
        assert loan["days_past_due"] >= 91 and loan["bucket"] == "91+"
        loans_after, suspense_after = _accrual_books_agree(admin, database_url)
        receivable, suspended = loans_after[loan_b]
        assert suspended == receivable > loans_before[loan_b][0]  # all of it in suspense, the day's accrual too
        others = sum(loans_after[k][1] - loans_before.get(k, (0, 0))[1] for k in loans_after if k != loan_b)
        assert suspense_after - suspense_before == suspended + others  # others: another test's defaulted loans, a day more
        assert [s for s, _, _ in walk.seen_b if s != "active"][:1] == ["overdue"] and walk.seen_b[-1][0] == "defaulted"
        assert [b for _, _, b in walk.seen_b].index("61-90") < [b for _, _, b in walk.seen_b].index("91+")
        paid_b = [(i["paid_principal"], i["paid_interest"]) for i in loan["instalments"]]
        assert sum(p for p, _ in paid_b) == 0 and sum(i for _, i in paid_b) < 1_000  # the quarter's savings interest at most
        _verify()

        # --- written off by the admin (not an officer); a later payment is a recovery ---
        with _as(cluster, checker) as officer:
            denied = post(officer, f"/v1/loans/{loan_b}/write-off", {"reason": "no contact for 90 days"})
            assert denied.status_code == 403 and denied.json()["code"] == "forbidden", denied.text
        today = _today(admin)
        _loan_worker_on(admin, loan_b, today)  # the claim counts the instalments due by today
        losses = _bank(admin, "loan_write_off")["debits_posted"]
        written = post(admin, f"/v1/loans/{loan_b}/write-off", {"reason": "no contact for 90 days; security none"})
        assert written.status_code == 200 and written.json()["status"] == "written_off", written.text
        claim = written.json()["write_off"]
        assert claim["principal"] == _outstanding(loan) and claim["recovered"] == 0
        due_b = [i for i in loan["instalments"] if dt.date.fromisoformat(i["due_date"]) <= today]
        assert claim["interest"] == sum(i["interest"] - i["paid_interest"] for i in due_b)
        assert claim["penalties"] == sum(i["penalty_due"] - i["penalty_paid"] for i in due_b) > 0
        assert claim["claim"] == claim["principal"] + claim["interest"] + claim["penalties"]
        assert _bank(admin, "loan_write_off")["debits_posted"] == losses + claim["principal"]
        owed = _ledger(admin, loan_b)
        assert (owed["closed"], owed["debits_posted"] - owed["credits_posted"]) == (True, 0)
        loans, suspense = _accrual_books_agree(admin, database_url)
        assert loans[loan_b] == (0, 0) and suspense == suspense_after - suspended  # its suspense written back
        recovery_income = _bank(admin, "loan_recovery_income")["credits_posted"]
        _deposit(admin, b.account_id, 150_000)
        before = _balance(admin, b.account_id)
        with _as(cluster, b.username) as customer:
            recovered = _pay(customer, f"/v1/loans/{loan_b}/pay", 100_000)
            assert recovered.status_code == 200, recovered.text
        assert (recovered.json()["status"], recovered.json()["write_off"]["recovered"]) == ("written_off", 100_000)
        assert _bank(admin, "loan_recovery_income")["credits_posted"] == recovery_income + 100_000
        assert before - _balance(admin, b.account_id) == 100_000
        _verify()
    took = time.monotonic() - started
    print(f"\nloan journey: {walk.closed} closes, loan A foreclosed after {foreclosed_at - started:.0f} s, all in {took:.0f} s")
