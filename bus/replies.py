"""A reply's bytes, and a group commit's replies as the few `ReplyCopies` messages that carry them
to audit's outcome tap (contracts/common.py). Pure: the runtime publishes what this builds."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.common import MAX_REPLY_COPIES, Reply, ReplyCopy

_HEAD, _TAIL = b'{"replies":[', b"]}"


def reply_body(reply: Reply) -> bytes:
    """The bytes a reply is sent as; its copy for audit carries the same text, so the outcome
    record's sha256 is that of what the asker received."""
    return reply.model_dump_json().encode()


def copies_bodies(copies: Sequence[ReplyCopy], max_bytes: int) -> list[bytes]:
    """`copies` as `ReplyCopies` bodies, in order: each holds at most MAX_REPLY_COPIES copies and
    at most `max_bytes` (the cluster's bound on a body), unless one copy alone is larger: that one
    goes alone, and audit records it as too large to read, as it would a reply that size."""
    bodies: list[bytes] = []
    parts: list[bytes] = []
    size = len(_HEAD) + len(_TAIL)
    for copy in copies:
        part = copy.model_dump_json().encode()
        if parts and (len(parts) == MAX_REPLY_COPIES or size + 1 + len(part) > max_bytes):
            bodies.append(_HEAD + b",".join(parts) + _TAIL)
            parts, size = [], len(_HEAD) + len(_TAIL)
        size += len(part) + (1 if parts else 0)
        parts.append(part)
    if parts:
        bodies.append(_HEAD + b",".join(parts) + _TAIL)
    return bodies
