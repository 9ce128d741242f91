"""A month's statement drawn up as a document: its header from the account worker, its lines from
the ledger's history between the statement's two cuts, as JSON, CSV or PDF. Pure: no I/O.

Decisions:
- A line is one posted movement; holds (pending entries) are not lines, they never changed the
  posted balance the statement accounts for.
- A document is drawn up only when it reconciles twice: opening + credits − debits = closing over
  the lines, and each line's running balance is the one before plus its credit less its debit.
  The account worker issued the statement on the same sums; a document that disagrees is never
  shown (the route answers 500 and the operators are logged at).
- Amounts: integer minor units in JSON; CSV and PDF show them in the currency's major unit with
  its ISO 4217 exponent, formatted from the integer (no float ever touches them).
- Times are the ledger's, shown in the bank's time zone.
- CSV cells a spreadsheet would run as a formula (=, +, -, @, tab, CR first) are quoted with a
  leading apostrophe (OWASP's CSV injection advice): a narration is partly text someone typed.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from contracts.account import StatementView
from contracts.common import CURRENCY_EXPONENTS
from contracts.day import BANK_TIME_ZONE
from contracts.ledger import HistoryEntry

MAX_LINES = 5_000  # a month's document; an account busier than that reads its history in pages
# A Unicode font, so names beyond Latin-1 print; Debian's fonts-dejavu-core (scripts/prepare.sh):
# Latin, Greek, Cyrillic and more, not the Indic scripts (point CBS_PDF_FONT at a Noto font for those).
PDF_FONT = Path(os.environ.get("CBS_PDF_FONT", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"))
CSV_COLUMNS = ("business_date", "posted_at", "narration", "reference", "counterparty", "debit", "credit", "balance",
               "currency")  # fmt: skip
_FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Line:
    business_date: date | None  # whose books it is in; a statement's lines are all in closed books
    at: datetime
    narration: str
    reference: str | None
    counterparty: str
    debit: int  # minor units taken from the account by this line; 0 for a credit
    credit: int
    balance: int  # the posted balance after it


def lines_of(entries: Iterable[HistoryEntry]) -> list[Line]:
    """The statement's lines: posted movements only, in the ledger's order."""
    return [
        Line(business_date=e.business_date, at=e.timestamp, narration=e.narration or e.code.replace("_", " ").capitalize(), reference=e.reference,
             counterparty=e.counterparty, debit=e.amount if e.side == "debit" else 0,
             credit=e.amount if e.side == "credit" else 0, balance=e.credits_posted - e.debits_posted)
        for e in entries if not e.pending
    ]  # fmt: skip


def disagreement(statement: StatementView, lines: list[Line]) -> str | None:
    """Why these lines are not this statement's, or None when they reconcile."""
    credits, debits = sum(x.credit for x in lines), sum(x.debit for x in lines)
    if (credits, debits, len(lines)) != (statement.credits, statement.debits, statement.transfers):
        return (f"lines sum to credits {credits}, debits {debits} over {len(lines)} movements; the statement says "
                f"{statement.credits}, {statement.debits} over {statement.transfers}")  # fmt: skip
    balance = statement.opening
    for x in lines:
        balance += x.credit - x.debit
        if balance != x.balance:
            return f"the running balance at {x.at.isoformat()} is {x.balance}, expected {balance}"
    if balance != statement.closing:
        return f"the lines close at {balance}, the statement at {statement.closing}"
    return None


def as_json(statement: StatementView, lines: list[Line]) -> dict[str, Any]:
    return {
        **statement.model_dump(mode="json"),
        "lines": [{"business_date": x.business_date.isoformat() if x.business_date else None, "at": x.at.isoformat(),
                   "narration": x.narration, "reference": x.reference,
                   "counterparty": x.counterparty, "debit": x.debit, "credit": x.credit, "balance": x.balance}
                  for x in lines],
    }  # fmt: skip


def major(minor: int, currency: str) -> str:
    """12345 INR → `123.45`; -5 → `-0.05`; JPY has no minor unit. Exact: integers only."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    sign, units = ("-" if minor < 0 else ""), abs(minor)
    if exponent == 0:
        return f"{sign}{units}"
    whole, part = divmod(units, 10**exponent)
    return f"{sign}{whole}.{part:0{exponent}d}"


def _cell(text: str | None) -> str:
    text = text or ""
    return "'" + text if text.startswith(_FORMULA_FIRST) else text


def as_csv(statement: StatementView, lines: list[Line]) -> str:
    """One row a line, amounts in the major unit; the opening and closing as the first and last rows."""
    out, cur = io.StringIO(), statement.currency
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerow(("", _local(statement.period_from), "Opening balance", "", "", "", "", major(statement.opening, cur), cur))
    for x in lines:
        writer.writerow((x.business_date.isoformat() if x.business_date else "", _local(x.at), _cell(x.narration),
                         _cell(x.reference), _cell(x.counterparty), major(x.debit, cur) if x.debit else "",
                         major(x.credit, cur) if x.credit else "", major(x.balance, cur), cur))  # fmt: skip
    writer.writerow((statement.month_end.isoformat(), _local(statement.period_until), "Closing balance", "", "", "", "",
                     major(statement.closing, cur), cur))  # fmt: skip
    return out.getvalue()


def _local(at: datetime | None) -> str:
    """Bank time, to the second: `2026-12-31 23:05:09`."""
    return at.astimezone(BANK_TIME_ZONE).strftime("%Y-%m-%d %H:%M:%S") if at else ""


def as_pdf(statement: StatementView, lines: list[Line]) -> bytes:
    """A4 landscape: the header and totals, then the lines in a table whose heading repeats on
    every page (fpdf2 lays it out)."""
    from fpdf import FPDF, FontFace  # imported here: only a PDF asks for it, and it costs start-up time

    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(f"Statement {statement.account_number} {statement.month_end:%Y-%m}")
    pdf.set_auto_page_break(auto=True, margin=12)
    font, printable = _font(pdf)
    pdf.add_page()
    cur = statement.currency
    pdf.set_font(font, size=14)
    pdf.cell(0, 9, printable(f"Statement of account {statement.account_number}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, size=9)
    period_from = statement.period_from.astimezone(BANK_TIME_ZONE).strftime("%Y-%m-%d %H:%M") if statement.period_from else "opening"
    period_until = statement.period_until.astimezone(BANK_TIME_ZONE).strftime("%Y-%m-%d %H:%M")
    for text in (f"Month: {statement.month_end:%B %Y}    Currency: {cur}    Issued on business date {statement.issued_on}",
                 f"Movements from {period_from} until {period_until} (bank time, {BANK_TIME_ZONE.key})",
                 f"Opening {major(statement.opening, cur)}    Credits {major(statement.credits, cur)}    "
                 f"Debits {major(statement.debits, cur)}    Closing {major(statement.closing, cur)}"):  # fmt: skip
        pdf.cell(0, 6, printable(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    widths = (22, 78, 38, 62, 26, 26, 25)
    with pdf.table(col_widths=widths, text_align=("LEFT", "LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"),
                   line_height=5, repeat_headings=1, headings_style=FontFace(emphasis=None, fill_color=(230, 230, 230)),
                   ) as table:  # fmt: skip
        table.row(("Date", "Narration", "Reference", "Counterparty", "Debit", "Credit", "Balance"))
        for x in lines:
            table.row((str(x.business_date or x.at.astimezone(BANK_TIME_ZONE).date()), printable(x.narration), printable(x.reference or ""),
                       printable(x.counterparty), major(x.debit, cur) if x.debit else "",
                       major(x.credit, cur) if x.credit else "", major(x.balance, cur)))  # fmt: skip
    return bytes(pdf.output())


def _font(pdf: Any) -> tuple[str, Any]:
    """The Unicode font when the machine has it; else Helvetica, which prints Latin-1 only (what it
    cannot print shows as `?`, never fails the document)."""
    if PDF_FONT.is_file():
        pdf.add_font("statement", fname=str(PDF_FONT))
        return "statement", lambda text: text
    return "helvetica", lambda text: text.encode("latin-1", "replace").decode("latin-1")
