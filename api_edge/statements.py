"""A month's statement as a document (`GET /v1/accounts/{id}/statements/{month_end}`): the header
the account worker issued, the lines the ledger holds between its two cuts, drawn up as JSON, CSV
or PDF (api_edge/statement_doc.py). A customer reads only their own: both workers check."""

from __future__ import annotations

import logging
from datetime import date
from typing import Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from api_edge import statement_doc as doc
from api_edge.auth import Principal, require
from api_edge.errors import problem
from api_edge.gateway import Gateway, gateway_of, reply_response
from contracts import account, ledger

router = APIRouter(tags=["accounts"])
log = logging.getLogger("cbs.edge.statements")

HISTORY_PAGE = 500  # the ledger's largest history page
Format = Literal["json", "csv", "pdf"]
_BY_ACCEPT = {"text/csv": "csv", "application/pdf": "pdf"}


@router.get("/v1/accounts/{account_id}/statements/{month_end}")
async def get_statement(
    account_id: UUID, month_end: date, request: Request,
    format: Format | None = Query(default=None, description="json (default), csv or pdf; else the Accept header decides"),
    who: Principal = require("accounts:read", "accounts"),
) -> Response:  # fmt: skip
    """One issued statement with its lines: each posted movement with its narration, reference,
    counterparty and the balance after it; opening + credits − debits = closing, or it is not shown."""
    drawn = await _draw_up(gateway_of(request), who, account_id, month_end)
    if isinstance(drawn, Response):
        return drawn
    statement, lines = drawn
    chosen = format or _BY_ACCEPT.get(request.headers.get("accept", "").split(",")[0].strip(), "json")
    name = f"statement-{statement.account_number}-{statement.month_end:%Y-%m}"
    if chosen == "csv":
        return Response(doc.as_csv(statement, lines), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})  # fmt: skip
    if chosen == "pdf":
        return Response(doc.as_pdf(statement, lines), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})  # fmt: skip
    return JSONResponse(doc.as_json(statement, lines))


async def _draw_up(gateway: Gateway, who: Principal, account_id: UUID,
                   month_end: date) -> tuple[account.StatementView, list[doc.Line]] | Response:  # fmt: skip
    reply = await gateway.read(account.GetStatement(account_id=account_id, month_end=month_end), who)
    if isinstance(reply, Response):
        return reply
    if not reply.ok:
        return reply_response(reply)
    statement = account.StatementView.model_validate(reply.result)
    entries: list[ledger.HistoryEntry] = []
    cursor: str | None = None
    while True:
        ask = ledger.GetAccountHistory(account_id=account_id, since=statement.period_from, until=statement.period_until,
                                       limit=HISTORY_PAGE, cursor=cursor)  # fmt: skip
        answer = await gateway.read(ask, who)
        if isinstance(answer, Response):
            return answer
        if not answer.ok:
            return reply_response(answer)
        page = ledger.HistoryPage.model_validate(answer.result)
        entries += page.items
        if len(entries) > doc.MAX_LINES:
            return problem(422, "statement_too_long", f"more than {doc.MAX_LINES} movements: read "
                           f"/v1/accounts/{account_id}/history in pages between the statement's cuts")  # fmt: skip
        if not (cursor := page.next_cursor):
            break
    lines = doc.lines_of(entries)
    if why := doc.disagreement(statement, lines):
        log.error("statement %s %s does not reconcile with its lines: %s", account_id, month_end, why)
        return problem(500, "statement_unreconciled", "this statement's lines do not add up; the operators are told")
    return statement, lines
