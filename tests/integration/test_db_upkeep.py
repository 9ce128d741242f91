"""The test server analyzes its tables (scripts/prepare.sh turns autovacuum on where a machine's
configuration had it off): what `cbs migrate` and every worker check at start."""

from __future__ import annotations

from bus.migrate import upkeep_warnings
from bus.settings import WORKERS, load


async def test_the_servers_of_every_worker_schema_keep_their_tables_analyzed(infra: dict[str, str]) -> None:
    assert await upkeep_warnings(load(), WORKERS) == []
