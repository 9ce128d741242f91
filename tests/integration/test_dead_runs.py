"""What a killed test run leaves on the shared RabbitMQ and PostgreSQL is deleted by the next run
(tests/conftest.py, "runs that died"); a run that is alive is never touched."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

from tests.conftest import RUN_ID, hold_run_lock, on_admin_database, reap_dead_runs, run_databases


def _ctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=True).stdout


def _leave_behind(run_id: str) -> None:
    """What a run killed mid-way leaves: its vhosts (its own and a package's), a database, a user."""
    for vhost in (f"cbs_test_{run_id}", f"cbs_test_{run_id}_e2e"):
        _ctl("add_vhost", vhost)
    _ctl("add_user", f"cbs-t{run_id}.edge", uuid.uuid4().hex)
    asyncio.run(on_admin_database(f'CREATE DATABASE "cbs_test_{run_id}"'))


def test_a_dead_runs_vhosts_users_and_databases_go_and_a_living_runs_stay(tmp_path: Path) -> None:
    dead, alive = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    hold_run_lock(tmp_path, dead).close()  # the run ended without its teardown: nothing holds its file
    living = hold_run_lock(tmp_path, alive)
    try:
        _leave_behind(dead)
        _leave_behind(alive)
        gone = reap_dead_runs(tmp_path, RUN_ID)

        assert sorted(gone) == sorted([f"vhost cbs_test_{dead}", f"vhost cbs_test_{dead}_e2e",
                                       f"user cbs-t{dead}.edge", f"database cbs_test_{dead}"])  # fmt: skip
        vhosts, users, databases = _ctl("list_vhosts").split(), _ctl("list_users").split(), set(asyncio.run(run_databases()))
        assert not [v for v in vhosts if dead in v] and not [u for u in users if dead in u]
        assert f"cbs_test_{dead}" not in databases
        assert not (tmp_path / f"{dead}.lock").exists()
        # The living run's are all there, and its file too.
        assert {f"cbs_test_{alive}", f"cbs_test_{alive}_e2e"} <= set(vhosts)
        assert f"cbs-t{alive}.edge" in users and f"cbs_test_{alive}" in databases
        assert (tmp_path / f"{alive}.lock").exists()
    finally:
        living.close()  # now dead too: reaped, which also cleans up after this test
        reap_dead_runs(tmp_path, RUN_ID)
    assert not [v for v in _ctl("list_vhosts").split() if alive in v]
