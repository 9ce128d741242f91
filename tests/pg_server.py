"""A PostgreSQL server of a test's own: the installed PostgreSQL's `initdb` and `pg_ctl`, a data
directory in a temporary folder, a free loopback port; stopped and deleted at the end, leaving
nothing behind (no /etc/postgresql entry, unlike `pg_createcluster`).

It runs as the `postgres` user when the tests run as root (PostgreSQL refuses root), with trust
authentication on loopback only, as the shared test server has.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

MAX_CONNECTIONS = 60  # its own budget, apart from the shared server's
START_TIMEOUT_S = 60


def bindir() -> Path:
    """PostgreSQL's programs: CBS_TEST_PG_BINDIR, else the Debian layout's newest, else PATH's."""
    if os.environ.get("CBS_TEST_PG_BINDIR"):
        return Path(os.environ["CBS_TEST_PG_BINDIR"])
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if not found:
        raise RuntimeError("no initdb: install PostgreSQL or set CBS_TEST_PG_BINDIR")
    return Path(found).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], **kwargs: Any) -> None:
    subprocess.run(_as_postgres(argv), check=True, capture_output=True, timeout=START_TIMEOUT_S, **kwargs)


@contextlib.contextmanager
def private_server(label: str = "second") -> Iterator[str]:
    """A started server; yields its administrative DSN without a database
    (`postgresql://postgres@127.0.0.1:PORT`), as tests/conftest.py's ADMIN_DSN is."""
    folder = Path(tempfile.mkdtemp(prefix=f"cbs-pg-{label}-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, log = folder / "data", folder / "server.log"
    programs = bindir()
    started = False
    try:
        _run([str(programs / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
              "--locale=C", "--no-sync"])  # fmt: skip
        port = free_port()
        # fsync off: a test's data need not survive a power cut, and the disk is shared.
        options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections={MAX_CONNECTIONS} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
        _run([str(programs / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t",
              str(START_TIMEOUT_S), "start"])  # fmt: skip
        started = True
        yield f"postgresql://postgres@127.0.0.1:{port}"
    except subprocess.CalledProcessError as exc:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"private PostgreSQL server: {exc.cmd}: {exc.stderr!r} {tail}") from exc
    finally:
        if started:
            _run([str(programs / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


_LITERAL = re.compile(r"'(?:[^']|'')*'")


class SchemaRoutedPool:
    """`admin_db` when some workers' schemas live on another server: a statement naming one of
    those schemas (`ledger.…`) runs there, any other on the shared database. One statement never
    reads both (no server can); `acquire()` gives a connection to the shared database."""

    def __init__(self, shared: asyncpg.Pool, moved: dict[str, asyncpg.Pool]) -> None:
        self.shared = shared
        self.moved = moved
        self._named = re.compile(r"\b(" + "|".join(map(re.escape, moved)) + r")\.", re.IGNORECASE)

    def _pool(self, query: str) -> asyncpg.Pool:
        # Names in string literals ('ledger.transfers_committed', a routing key) are not schemas.
        named = {m.lower() for m in self._named.findall(_LITERAL.sub("''", query))}
        if len(named) > 1:
            raise AssertionError(f"one statement reads schemas on two servers: {sorted(named)}")
        return self.moved[named.pop()] if named else self.shared

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await self._pool(query).execute(query, *args, **kwargs)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await self._pool(query).fetch(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await self._pool(query).fetchrow(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await self._pool(query).fetchval(query, *args, **kwargs)

    def acquire(self, *args: Any, **kwargs: Any) -> Any:
        return self.shared.acquire(*args, **kwargs)

    async def close(self) -> None:
        for pool in (self.shared, *self.moved.values()):
            await pool.close()
