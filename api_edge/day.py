"""The business day: the open date and its close of business (`day:read`, `day:close`), and the
holidays of the calendar (`day:calendar`)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api_edge.auth import Principal, require
from api_edge.gateway import gateway_of
from contracts import day as c

router = APIRouter(tags=["business day"])


class CloseBody(BaseModel):
    business_date: dt.date = Field(description="the date you mean to close: refused (409) unless it is the open one")


class HolidayBody(BaseModel):
    name: str = Field(min_length=1, max_length=c.MAX_HOLIDAY_NAME)


@router.get("/v1/business-day")
async def get_business_day(request: Request, who: Principal = require("day:read")) -> Response:
    """The open business date, the next one, and while closing each step's state."""
    return await gateway_of(request).query(c.GetBusinessDay, {}, who)


@router.post("/v1/business-day/close")
async def close_day(request: Request, body: CloseBody, who: Principal = require("day:close")) -> Response:
    """Close of business of the open date: runs on after the answer (follow `GET /v1/business-day`).
    Asked again while closing, it asks the failed and unreported steps again."""
    return await gateway_of(request).change(c.CloseDay, {"business_date": body.business_date}, who, None,
                                            require_key=False)  # fmt: skip


@router.get("/v1/business-day/holidays")
async def list_holidays(
    request: Request, since: dt.date | None = Query(default=None), limit: int = Query(default=100, ge=1, le=1_000),
    who: Principal = require("day:read"),
) -> Response:  # fmt: skip
    return await gateway_of(request).query(c.ListHolidays, {"since": since, "limit": limit}, who)


@router.put("/v1/business-day/holidays/{date}")
async def add_holiday(request: Request, date: dt.date, body: HolidayBody, who: Principal = require("day:calendar")) -> Response:
    """Make a weekday after the open business date a holiday (setting it again renames it)."""
    return await gateway_of(request).change(c.AddHoliday, {"date": date, "name": body.name}, who, None, require_key=False)


@router.delete("/v1/business-day/holidays/{date}")
async def remove_holiday(request: Request, date: dt.date, who: Principal = require("day:calendar")) -> Response:
    return await gateway_of(request).change(c.RemoveHoliday, {"date": date}, who, None, require_key=False)
