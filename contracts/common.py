"""Shared building blocks of every contract: money, paging, the reply envelope, error codes."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

# ISO 4217 exponents of the currencies CBS knows. Money is always integer minor units.
CURRENCY_EXPONENTS: dict[str, int] = {"INR": 2, "USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3}

MAX_AMOUNT = 10**17  # fits in bigint with room for sums; larger is refused, never wrapped


class Contract(BaseModel):
    """Base of every message body: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # `<worker>.<name>.v<N>`; sent as the AMQP `type` property.
    message_type: ClassVar[str] = ""


class _Routed(Contract):
    """A message with a routing key: its `message_type` is `<routing key>.v1` unless the class says
    otherwise (a breaking change is a new class with its own `.v2` type, never an edit)."""

    routing_key: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "routing_key" in cls.__dict__ and "message_type" not in cls.__dict__:
            cls.message_type = f"{cls.routing_key}.v1"


class Command(_Routed):
    """A request for a change or an answer; its routing key is `<worker>.<command>`."""

    # Read-only commands keep no inbox row: repeating them has no effect to guard.
    read_only: ClassVar[bool] = False


class Event(_Routed):
    """A fact that happened, published through the owner's outbox."""


def currency_field(description: str = "ISO 4217 currency code") -> Any:
    return Field(pattern=r"^[A-Z]{3}$", description=description)


def amount_field(description: str = "amount in minor units of the currency") -> Any:
    return Field(ge=0, le=MAX_AMOUNT, description=description)


class ErrorCode(StrEnum):
    """Codes every worker may answer; domain modules add their own stable codes."""

    invalid_message = "invalid_message"
    not_found = "not_found"
    conflict = "conflict"
    operation_unknown = "operation_unknown"
    internal_error = "internal_error"


class ErrorBody(Contract):
    code: str = Field(description="stable snake_case refusal code")
    message: str = Field(description="human-readable explanation")
    details: dict[str, Any] | list[Any] | None = Field(default=None, description="structured details")


class Reply(Contract):
    """The envelope of every reply: `ok` with a result, or a refusal with an error."""

    message_type: ClassVar[str] = "reply.v1"

    ok: bool = Field(description="true when the command took effect or the query answered")
    result: dict[str, Any] | list[Any] | None = Field(default=None, description="the answer when ok")
    error: ErrorBody | None = Field(default=None, description="the refusal when not ok")

    @classmethod
    def success(cls, result: BaseModel | dict[str, Any] | list[Any] | None = None) -> "Reply":
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json")
        return cls(ok=True, result=result)

    @classmethod
    def refusal(cls, code: str, message: str, details: Any = None) -> "Reply":
        return cls(ok=False, error=ErrorBody(code=str(code), message=message, details=details))


# A group commit's replies travel to audit's outcome tap as one message of at most this many.
MAX_REPLY_COPIES = 256


class ReplyCopy(Contract):
    """One reply as its asker received it, for audit's record of the command's outcome."""

    message_id: str = Field(min_length=1, max_length=1_000, description="the reply's message_id: "
                            "`<command message_id>.reply`")  # fmt: skip
    command: str = Field(min_length=1, max_length=200, description="routing key of the command it answers")
    correlation_id: str | None = Field(default=None, max_length=1_000, description="the command's correlation_id")
    body: str = Field(description="the reply's body exactly as sent: the JSON text of a `reply.v1`")


class ReplyCopies(Contract):
    """The replies of one group commit (DESIGN §7), copied to audit's outcome tap
    (`audit.tap.replies`) as one message instead of one copy per reply: a stream write and read
    per command was 40% of RabbitMQ's work per transfer (issue 10). Each copy becomes its own
    outcome record, exactly as a single reply's copy does; believed only from the broker user of
    the worker owning each command. A reply answering anything else keeps its own copy."""

    message_type: ClassVar[str] = "reply_copies.v1"

    replies: list[ReplyCopy] = Field(min_length=1, max_length=MAX_REPLY_COPIES,
                                     description=f"1 to {MAX_REPLY_COPIES} replies, in the order sent")  # fmt: skip


T = TypeVar("T")


class Page(Contract, Generic[T]):
    """A page of results with an opaque cursor for the next one."""

    items: list[T] = Field(description="the results of this page")
    next_cursor: str | None = Field(default=None, description="pass back to get the next page; null at the end")


# A cursor is a few values in base64 (`bus/paging.py`); anything longer is not one we gave.
MAX_CURSOR_CHARS = 500


def page_size(*, default: int, most: int) -> Any:
    """The `limit` of a list command: how many results one page holds."""
    return Field(default=default, ge=1, le=most, description=f"page size, at most {most}")


def cursor_field() -> Any:
    """The `cursor` of a list command: the previous page's `next_cursor`; null for the first page."""
    return Field(default=None, max_length=MAX_CURSOR_CHARS, description="cursor from the previous page")


class GetOperation(Contract):
    """Ask a worker for the stored reply of a command by its message_id (the operation id).
    Only the command's own asker learns it; to anyone else the operation is unknown."""

    message_type: ClassVar[str] = "common.get_operation.v1"

    operation_id: str = Field(min_length=1, max_length=200, description="message_id of the command")
    request_hash: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{16,64}$",
        description="a prefix of the SHA-256 of the command's body as sent: when given, another request that "
        "used the same message_id is answered `idempotency_key_reused`, never with the other's reply",
    )  # fmt: skip


class OperationStatus(Contract):
    operation_id: str
    status: str = Field(description="'done' with the stored reply, or 'unknown' when never received")
    reply: Reply | None = None
    received_at: datetime | None = None



# PostgreSQL text cannot hold U+0000, so no message may: a worker would fail on it at every
# delivery. JSON spells it `\u0000` after an even number of backslashes (an odd number escapes
# the backslash instead).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def holds_nul(json_body: bytes) -> bool:
    """Whether a message's JSON holds U+0000, raw or escaped."""
    return b"\x00" in json_body or (b"\\u0000" in json_body and _ESCAPED_NUL.search(json_body) is not None)
