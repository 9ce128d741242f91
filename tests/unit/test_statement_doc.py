"""A statement drawn up as a document (api_edge/statement_doc.py): its lines, the two checks that
keep a wrong one from being shown, and the JSON, CSV and PDF it becomes."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from api_edge import statement_doc as doc
from contracts.account import StatementStatus, StatementView
from contracts.common import CURRENCY_EXPONENTS
from contracts.ledger import HistoryEntry

ACCOUNT = UUID(int=7)
FROM = dt.datetime(2026, 11, 30, 18, 30, tzinfo=dt.UTC)  # the cuts: books of 30 Nov and of 31 Dec
UNTIL = dt.datetime(2026, 12, 31, 18, 31, tzinfo=dt.UTC)


def entry(side: str, amount: int, balance_before: tuple[int, int], *, pending: bool = False, narration: str | None = None,
          counterparty: str = "Cash in vault", minutes: int = 0) -> HistoryEntry:  # fmt: skip
    debits, credits = balance_before
    if not pending:
        debits, credits = (debits + amount, credits) if side == "debit" else (debits, credits + amount)
    return HistoryEntry(transfer_id=uuid4(), timestamp=FROM + dt.timedelta(days=1, minutes=minutes), code="deposit",
                        business_date=dt.date(2026, 12, 1),
                        amount=amount, side=side, pending=pending, debits_pending=amount if pending else 0,  # type: ignore[arg-type]
                        debits_posted=debits, credits_pending=0, credits_posted=credits, reference="R1",
                        narration=narration, counterparty_account_id=uuid4(), counterparty=counterparty)  # fmt: skip


def statement(opening: int, credits: int, debits: int, transfers: int) -> StatementView:
    return StatementView(account_id=ACCOUNT, account_number="10000042", month_end=dt.date(2026, 12, 31), currency="INR",
                         opening=opening, credits=credits, debits=debits, closing=opening + credits - debits,
                         transfers=transfers, period_from=FROM, period_until=UNTIL, status=StatementStatus.issued,
                         issued_on=dt.date(2026, 12, 31))  # fmt: skip


def a_month() -> tuple[StatementView, list[doc.Line]]:
    """Opening 1,000.00; 2,500.00 in; a lien held (not a line); 500.00 out to an outside payee; interest."""
    entries = [
        entry("credit", 250_000, (0, 100_000), narration="Cash deposit"),
        entry("debit", 50_000, (0, 350_000), pending=True, narration="Lien: court order", counterparty="Holds control"),
        entry("debit", 50_000, (0, 350_000), narration="=HYPERLINK(\"http://evil\")", counterparty="Asha Rao · HDFC0001234"),
        entry("credit", 2_397, (50_000, 350_000), narration=None, counterparty="Interest expense"),
    ]
    return statement(100_000, 252_397, 50_000, 3), doc.lines_of(entries)


def test_lines_are_posted_movements_with_the_balance_after_each() -> None:
    s, lines = a_month()
    assert [(x.narration, x.debit, x.credit, x.balance) for x in lines] == [
        ("Cash deposit", 0, 250_000, 350_000), ('=HYPERLINK("http://evil")', 50_000, 0, 300_000),
        ("Deposit", 0, 2_397, 302_397)]  # no narration: the code says what it was
    assert doc.disagreement(s, lines) is None


def test_a_statement_whose_lines_do_not_add_up_is_not_drawn_up() -> None:
    s, lines = a_month()
    assert "credits" in (doc.disagreement(s.model_copy(update={"credits": s.credits + 1}), lines) or "")
    skipped = [lines[0], lines[2]]  # a line lost: the running balance breaks where it was
    sums = statement(100_000, 252_397, 0, 2)
    assert "running balance" in (doc.disagreement(sums, skipped) or "")
    assert "close" in (doc.disagreement(s.model_copy(update={"closing": s.closing + 1}), lines) or "")


@pytest.mark.parametrize(("minor", "currency", "shown"), [
    (12_345, "INR", "123.45"), (-5, "INR", "-0.05"), (0, "INR", "0.00"), (1_000, "JPY", "1000"), (1_234_567, "KWD", "1234.567"),
])  # fmt: skip
def test_amounts_in_the_major_unit(minor: int, currency: str, shown: str) -> None:
    assert doc.major(minor, currency) == shown


@given(st.integers(min_value=-(10**17), max_value=10**17), st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_the_major_unit_is_exactly_the_minor_units(minor: int, currency: str) -> None:
    assert Decimal(doc.major(minor, currency)).scaleb(CURRENCY_EXPONENTS[currency]) == minor


def test_csv_has_the_opening_every_line_and_the_closing_and_no_formula() -> None:
    s, lines = a_month()
    rows = list(csv.reader(io.StringIO(doc.as_csv(s, lines))))
    assert rows[0] == list(doc.CSV_COLUMNS)
    assert rows[1] == ["", "2026-12-01 00:00:00", "Opening balance", "", "", "", "", "1000.00", "INR"]  # bank time
    assert rows[2] == ["2026-12-01", "2026-12-02 00:00:00", "Cash deposit", "R1", "Cash in vault", "", "2500.00", "3500.00", "INR"]
    assert rows[3][2] == "'=HYPERLINK(\"http://evil\")" and rows[3][5] == "500.00"
    assert rows[-1][:3] == ["2026-12-31", "2027-01-01 00:01:00", "Closing balance"] and len(rows) == 6
    assert rows[-1][3:] == ["", "", "", "", "3023.97", "INR"]


def test_the_pdf_says_what_the_statement_says_in_any_script_across_pages() -> None:
    opening, entries = 0, []
    for i in range(120):  # enough lines for several pages
        entries.append(entry("credit", 100, (0, opening), narration=f"IMPS from Zoë Дмитриев {i}", minutes=i))
        opening += 100
    s = statement(0, 12_000, 0, 120)
    lines = doc.lines_of(entries)
    assert doc.disagreement(s, lines) is None
    pdf = PdfReader(io.BytesIO(doc.as_pdf(s, lines)))
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert len(pdf.pages) >= 3
    assert "Statement of account 10000042" in text and "December 2026" in text
    assert "Closing 120.00" in text and "IMPS from" in text and "119" in text
    if doc.PDF_FONT.is_file():  # the Unicode font (DejaVu: Latin, Greek, Cyrillic…): the name prints as written
        assert "Zoë Дмитриев 7" in text
    assert sum(page.extract_text().count("Narration") for page in pdf.pages) == len(pdf.pages)  # the heading repeats
