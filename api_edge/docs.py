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


class YamlResponse(PlainTextResponse):
    media_type = "application/yaml"  # what the OpenAPI document says this route answers


_DOCUMENT = {"type": "object", "required": ["asyncapi"], "description": "the AsyncAPI 3 document"}


@router.get("/asyncapi", response_class=YamlResponse,
            responses={200: {"content": {YamlResponse.media_type: {"schema": _DOCUMENT}}}})  # fmt: skip
async def asyncapi() -> YamlResponse:
    return YamlResponse(_document())
