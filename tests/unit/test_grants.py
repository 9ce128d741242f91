"""The worker-side decision on a partner's command (bus/grants.py), without broker or database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from bus import grants, topology
from contracts.partner import PartnerAccessChanged

GRANTS = {"partner.acme": frozenset({"customer.get_customer"})}


def test_a_granted_key_passes() -> None:
    assert grants.decide("partner.acme", "customer.get_customer", GRANTS) is None


@pytest.mark.parametrize(("user", "key"), [("partner.acme", "ledger.create_transfers"),
                                           ("partner.unknown", "customer.get_customer")])
def test_a_key_outside_the_grant_or_an_unknown_partner_is_forbidden(user: str, key: str) -> None:
    refusal = grants.decide(user, key, GRANTS)
    assert refusal is not None and not refusal.ok and refusal.error is not None
    assert refusal.error.code == "forbidden"
    assert refusal.error.message == f"partner {user} may not send {key}"
    assert refusal.error.details == {"partner": user, "routing_key": key}


def test_an_empty_grant_forbids_everything() -> None:
    assert grants.decide("partner.gone", "customer.get_customer", {"partner.gone": frozenset()}) is not None


@pytest.mark.parametrize("user", [None, "guest", "edge"])
def test_non_partners_are_not_judged_here(user: str | None) -> None:
    assert grants.decide(user, "ledger.create_transfers", {}) is None


def test_every_worker_binds_the_grant_event() -> None:
    for worker in topology.WORKER_CONTRACTS:
        if worker == topology.AUDIT_WORKER:  # its tap binds `#` on cbs.events: the grant event included
            assert [(q.name, e.name, q.routing_key) for q, e in topology.audit_tap_queues()] == [
                ("audit.tap.commands", "cbs.commands", "#"), ("audit.tap.events", "cbs.events", "#")]  # fmt: skip
            continue
        assert PartnerAccessChanged.routing_key in topology.EVENT_BINDINGS[worker]
    assert topology.EVENT_BINDINGS["account"][0] == "customer.#"  # the queue's first key is unchanged


def test_grant_event_refuses_a_non_partner_user_wildcards_and_naive_times() -> None:
    now = datetime.now(UTC)
    PartnerAccessChanged(partner="partner.acme", may_send=[], occurred_at=now)
    for bad in ({"partner": "guest"}, {"may_send": ["customer.*"]}, {"occurred_at": now.replace(tzinfo=None)}):
        with pytest.raises(ValidationError):
            PartnerAccessChanged.model_validate(
                {"partner": "partner.acme", "may_send": ["customer.get_customer"], "occurred_at": now, **bad}
            )
