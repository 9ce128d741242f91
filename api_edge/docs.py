"""`/asyncapi`: the partners' manual — every command, reply and event on the bus."""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

router = APIRouter(tags=["docs"])


@lru_cache(maxsize=1)
def _document() -> str:
    from bus.asyncapi import asyncapi_yaml  # built once: the contracts do not change at run time

    return asyncapi_yaml()


@router.get("/asyncapi", response_class=PlainTextResponse)
async def asyncapi() -> PlainTextResponse:
    return PlainTextResponse(_document(), media_type="application/yaml")
