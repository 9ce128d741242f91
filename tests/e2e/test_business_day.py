"""The business day through the edge and `cbs day`: who may read and close it, a stale close
refused as a conflict, a close followed to its end, holidays kept by an operator."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
import uuid

from pypdf import PdfReader

from tests.e2e.conftest import ROOT, Cluster
from tests.e2e.test_auth import login, new_user


def _wait_closed(cluster: Cluster, date: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    with cluster.client() as admin:
        while True:
            view = admin.get("/v1/business-day").json()
            if view["last_closed"] is not None and view["last_closed"] >= date:
                return view
            assert time.monotonic() < deadline, view
            time.sleep(0.2)


def test_staff_read_the_business_day_and_only_holders_of_day_close_close_it(cluster: Cluster) -> None:
    _, teller = new_user(cluster, ["teller"])
    with cluster.client(token=login(cluster, teller).json()["access_token"]) as client:
        view = client.get("/v1/business-day")
        assert view.status_code == 200 and view.json()["status"] in ("open", "closing")
        refused = client.post("/v1/business-day/close", json={"business_date": view.json()["business_date"]})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert client.put("/v1/business-day/holidays/2099-01-01", json={"name": "x"}).status_code == 403


def test_an_admin_closes_the_open_date_and_a_stale_close_is_a_conflict(cluster: Cluster) -> None:
    with cluster.client() as admin:
        open_date = admin.get("/v1/business-day").json()["business_date"]
        stale = (dt.date.fromisoformat(open_date) - dt.timedelta(days=1)).isoformat()
        conflict = admin.post("/v1/business-day/close", json={"business_date": stale})
        assert conflict.status_code == 409 and conflict.json()["code"] == "wrong_business_date"
        started = admin.post("/v1/business-day/close", json={"business_date": open_date})
        assert started.status_code == 200, started.text
    view = _wait_closed(cluster, open_date)
    assert view["status"] == "open" and view["business_date"] > open_date
    with cluster.client() as admin:
        books = admin.get("/v1/ledger/trial-balance", params={"business_date": open_date})
        assert books.status_code == 200 and books.json()["business_date"] == open_date, books.text
        assert all(t["balanced"] for t in books.json()["totals"])
    _, teller = new_user(cluster, ["teller"])  # tellers do not read the bank's books
    with cluster.client(token=login(cluster, teller).json()["access_token"]) as client:
        assert client.get("/v1/ledger/trial-balance", params={"business_date": open_date}).status_code == 403
    cli = subprocess.run([sys.executable, "-m", "ops.cli", "ledger", "trial-balance", "--date", open_date],
                         env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert json.loads(cli.stdout)["result"]["business_date"] == open_date
    # The day's journal for the finance team: CSV through the edge, and the whole of it from `cbs`.
    with cluster.client() as admin:
        csv_page = admin.get("/v1/ledger/journal", params={"business_date": open_date})
        assert csv_page.status_code == 200 and csv_page.headers["content-type"].startswith("text/csv"), csv_page.text
        assert csv_page.text.splitlines()[0] == "seq,at,transfer_id,account_id,side,amount_minor,currency,code"
    journal = subprocess.run([sys.executable, "-m", "ops.cli", "ledger", "journal", "--date", open_date],
                             env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert journal.returncode == 0 and journal.stdout.splitlines()[0].startswith("seq,at,"), journal.stderr


def test_holidays_are_kept_by_an_operator_and_cbs_day_reports_the_date(cluster: Cluster) -> None:
    with cluster.client() as admin:
        view = admin.get("/v1/business-day").json()
        holiday = view["next_business_date"]
        put = admin.put(f"/v1/business-day/holidays/{holiday}", json={"name": "Bank holiday"})
        assert put.status_code == 200 and put.json() == {"date": holiday, "name": "Bank holiday"}
        assert admin.get("/v1/business-day").json()["next_business_date"] > holiday
        assert {"date": holiday, "name": "Bank holiday"} in admin.get("/v1/business-day/holidays").json()["items"]
        assert admin.delete(f"/v1/business-day/holidays/{holiday}").status_code == 200
        assert admin.get("/v1/business-day").json()["next_business_date"] == holiday
        gone = admin.delete(f"/v1/business-day/holidays/{holiday}")
        assert gone.status_code == 404 and gone.json()["code"] == "holiday_not_found"
    done = subprocess.run([sys.executable, "-m", "ops.cli", "day", "status"], env=cluster.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["result"]["business_date"] == view["business_date"]
    closed = subprocess.run([sys.executable, "-m", "ops.cli", "day", "close", "--wait"], env=cluster.env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert json.loads(closed.stdout)["result"]["last_closed"] == view["business_date"]


def test_a_close_of_business_killed_midway_resumes_and_closes_the_day_once(cluster: Cluster) -> None:
    """The ledger and the account worker are killed before they can run their steps, the day worker
    right after the close began; all come back: the day closes, once, with one trial balance kept
    for it and each step reported done."""
    import asyncio

    import asyncpg

    with cluster.client() as admin:
        open_date = admin.get("/v1/business-day").json()["business_date"]
        # This run's other tests may have closed the date before (and set the clock back).
        since = dt.datetime.now(dt.UTC)
        cluster.kill("ledger")
        cluster.kill("account")
        try:
            started = admin.post("/v1/business-day/close", json={"business_date": open_date})
            assert started.status_code == 200 and started.json()["status"] == "closing", started.text
            cluster.kill("day")
        finally:
            cluster.start("day", env={"CBS_DAY_STEP_RESEND_S": "1", "CBS_DAY_SWEEP_S": "0.5"})
            cluster.start("ledger")
            cluster.start("account")
    view = _wait_closed(cluster, open_date, timeout_s=60)
    assert view["status"] == "open" and view["business_date"] > open_date

    async def counts() -> tuple[int, int, int, int]:
        db = await asyncpg.connect(cluster.env["CBS_DATABASE_URL"])
        try:
            closed = await db.fetchval("SELECT count(*) FROM day.closed_day WHERE business_date = $1",
                                       dt.date.fromisoformat(open_date))  # fmt: skip
            events = await db.fetchval("SELECT count(*) FROM day.outbox WHERE routing_key = 'day.closed' "
                                       "AND payload->>'business_date' = $1 AND created_at >= $2", open_date, since)  # fmt: skip
            kept = await db.fetchval("SELECT count(*) - count(DISTINCT (currency, code)) FROM ledger.trial_balance "
                                     "WHERE business_date = $1", dt.date.fromisoformat(open_date))  # fmt: skip
            done = await db.fetchval("SELECT count(*) FROM day.cob_step WHERE business_date = $1 AND status = 'done'",
                                     dt.date.fromisoformat(open_date))  # fmt: skip
            return closed, events, kept, done
        finally:
            await db.close()

    from contracts.day import COB_STEPS

    assert asyncio.run(counts()) == (1, 1, 0, len(COB_STEPS))
    cluster.stop("day")
    cluster.start("day")
    cluster.wait_ready()


def test_the_readmes_day_in_the_bank_runs(cluster: Cluster) -> None:
    """scripts/day-in-the-bank.sh, as the README shows it, against this cluster."""
    done = subprocess.run(["bash", "scripts/day-in-the-bank.sh"], env={**cluster.env, "CBS_URL": cluster.base_url},
                          cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # The month's statement: the deposit (the lien was never a posted line) and, at a quarter's end,
    # the interest; it reconciles, and its CSV and PDF say the same.
    opening, credits, debits, closing = map(int, re.search(  # type: ignore[union-attr]
        r"opening (\d+) \+ credits (\d+) - debits (\d+) = closing (\d+)", done.stdout).groups())
    assert opening == 0 and debits == 0 and closing == credits >= 250_000
    assert re.search(r"Cash deposit +\S+ +Cash in vault +250000 +250000", done.stdout), done.stdout
    assert "business_date,posted_at,narration,reference,counterparty,debit,credit,balance,currency" in done.stdout
    pdf = re.search(r"PDF: (\S+), (\d+) bytes", done.stdout)
    assert pdf is not None and int(pdf.group(2)) > 1_000
    text = "".join(page.extract_text() for page in PdfReader(ROOT / pdf.group(1)).pages)
    assert "Cash deposit" in text and "Cash in vault" in text and f"Closing {closing // 100}.{closing % 100:02d}" in text
    # Another customer cannot read it; a month with no statement is 404.
    account = re.search(r"a savings account (\S+)", done.stdout).group(1)  # type: ignore[union-attr]
    month_end = re.search(r"statement of (\S+) for account", done.stdout).group(1)  # type: ignore[union-attr]
    _, stranger = new_user(cluster, ["customer"], customer_id=str(uuid.uuid4()))
    with cluster.client(token=login(cluster, stranger).json()["access_token"]) as client:
        for fmt in ("json", "csv", "pdf"):
            denied = client.get(f"/v1/accounts/{account}/statements/{month_end}", params={"format": fmt})
            assert denied.status_code == 403 and denied.json()["code"] == "not_owner", denied.text
    with cluster.client() as admin:
        assert admin.get(f"/v1/accounts/{account}/statements/2001-01-31").json()["code"] == "statement_not_found"
        by_accept = admin.get(f"/v1/accounts/{account}/statements/{month_end}", headers={"Accept": "text/csv"})
        assert by_accept.headers["content-type"].startswith("text/csv") and "Opening balance" in by_accept.text
    assert "balance 250000 available 240000" in done.stdout
    assert "with the lien: available 190000" in done.stdout
    assert "balanced: True" in done.stdout and done.stdout.rstrip().endswith("balance 0 closed True")
    # Two closes of 2,500.00 at 3.5%: 23.97… minor units a calendar day, posted at a quarter's end
    # or settled on closing, rounded once a period.
    settled, paid = re.search(r"interest paid (\d+), paid out (\d+)", done.stdout).groups()  # type: ignore[union-attr]
    assert int(settled) >= 48 and int(paid) == 250_000 + int(settled)
