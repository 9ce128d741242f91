"""The guard that refuses a run on a RabbitMQ node whose file handle cache would hang it
(tests/conftest.py), and scripts/prepare.sh's restart of such a node, kept in step."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import MIN_BROKER_FILE_HANDLES, broker_too_small

ROOT = Path(__file__).resolve().parents[2]


def test_a_node_started_with_the_default_limit_is_refused_and_one_prepared_is_not() -> None:
    nodes = [
        {"name": "rabbit@a", "fd_total": 1024},  # `rabbitmq-server -detached` as root: su's soft limit
        {"name": "rabbit@b", "fd_total": 20_000},  # as scripts/prepare.sh starts it
        {"name": "rabbit@c"},  # a node the API knows but that does not report (down): nothing to tell
    ]
    assert broker_too_small(nodes) == ["rabbit@a: 1024 file handles"]


def test_prepare_restarts_a_node_below_the_floor_the_tests_refuse() -> None:
    script = (ROOT / "scripts" / "prepare.sh").read_text()
    found = re.search(r"^MIN_RABBITMQ_FILES=(\d+)$", script, re.MULTILINE)
    assert found, "scripts/prepare.sh no longer names its floor"
    # A node prepare.sh leaves alone must pass the tests' guard (RabbitMQ reserves some handles).
    assert int(found.group(1)) > MIN_BROKER_FILE_HANDLES > 1024
