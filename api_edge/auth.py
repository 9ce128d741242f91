"""The authentication seam. Every route depends on `principal`; identity (issue 4) fills it in.

Until then everyone is the anonymous development principal: the edge is open, and says so in
the README.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: tuple[str, ...] = ()

    def actor_header(self) -> str:
        return self.subject


ANONYMOUS = Principal(subject="anonymous", roles=("development",))


async def principal() -> Principal:
    return ANONYMOUS
