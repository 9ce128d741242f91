"""What `worker_app` and the runtime check of a worker's sheet before and while it runs: event
routes agree with the queue's bindings, and a worker commits only events it declares."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from bus import topology
from bus.handling import EventRoute, Routes
from bus.outbox import Outgoing
from bus.runtime import Runtime
from bus.worker import check_event_routes
from contracts import account, customer, ledger, security

WORKERS = ("account", "customer", "identity", "ledger", "payment", "audit", "day", "loan")


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("customer.#", "customer.registered", True),
        ("customer.#", "customer", True),  # `#` is zero or more words
        ("customer.*", "customer.kyc.changed", False),
        ("*.opened", "account.opened", True),
        ("account.opened", "account.closed", False),
        ("#", "anything.at.all", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
    ],
)
def test_topic_patterns_match_as_rabbitmq_matches_them(pattern: str, key: str, matches: bool) -> None:
    assert topology.topic_matches(pattern, key) is matches


async def _noop(ctx: Any, event: Any) -> None:
    return None


@pytest.mark.parametrize("worker", WORKERS)
def test_every_workers_sheet_agrees_with_its_bindings(worker: str) -> None:
    check_event_routes(importlib.import_module(f"workers.{worker}.routes").ROUTES)


def test_an_event_route_the_queue_is_not_bound_to_is_refused() -> None:
    routes = Routes(worker="customer", commands={}, events=(
        EventRoute(account.AccountOpened, _noop), EventRoute(account.AccountClosed, _noop),
        EventRoute(ledger.TransfersCommitted, _noop),  # customer.events is not bound to it: never delivered
    ))  # fmt: skip
    with pytest.raises(AssertionError, match="ledger.transfers_committed"):
        check_event_routes(routes)


def test_a_binding_with_no_route_is_refused() -> None:
    routes = Routes(worker="customer", commands={}, events=(EventRoute(account.AccountOpened, _noop),))
    with pytest.raises(AssertionError, match="account.closed"):  # bound, so consumed, then dropped
        check_event_routes(routes)


def _event(routing_key: str) -> Outgoing:
    return Outgoing("m1", topology.EVENTS.name, routing_key, f"{routing_key}.v1", {})


def test_a_worker_commits_only_the_events_it_declares() -> None:
    runtime = Runtime(Routes(worker="account", commands={}, publishes=account.EVENTS), max_body_bytes=1)
    runtime.check_publications([_event(account.AccountOpened.routing_key)])
    runtime.check_publications([_event(security.ACCESS_DENIED["account"].routing_key)])  # the runtime's own
    with pytest.raises(AssertionError, match="customer.registered"):
        runtime.check_publications([_event(customer.CustomerRegistered.routing_key)])
    # Commands to other workers are not events: the broker's write permissions govern those.
    runtime.check_publications([Outgoing("m2", topology.COMMANDS.name, "ledger.create_accounts", "x", {})])


@pytest.mark.parametrize("worker", WORKERS)
def test_every_worker_declares_what_it_publishes(worker: str) -> None:
    routes = importlib.import_module(f"workers.{worker}.routes").ROUTES
    assert routes.publishes == importlib.import_module(f"contracts.{worker}").EVENTS
