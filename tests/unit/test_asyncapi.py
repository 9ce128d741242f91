"""The committed AsyncAPI document (the partners' manual) is the one the contracts generate."""

from __future__ import annotations

from pathlib import Path

import yaml

from bus import topology
from ops import partners
from bus.asyncapi import asyncapi_yaml

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def test_committed_document_is_up_to_date() -> None:
    assert COMMITTED.exists(), "docs/asyncapi.yaml is missing: run `cbs docs asyncapi`"
    assert asyncapi_yaml() == COMMITTED.read_text(encoding="utf-8"), (
        "docs/asyncapi.yaml is out of date with the contracts: run `cbs docs asyncapi` and commit it"
    )


def test_generation_is_deterministic() -> None:
    assert asyncapi_yaml() == asyncapi_yaml()


def test_every_command_and_event_of_every_worker_is_documented() -> None:
    document = yaml.safe_load(asyncapi_yaml())
    addresses = {channel["address"] for channel in document["channels"].values()}
    schemas = document["components"]["schemas"]
    for worker, contracts in topology.WORKER_CONTRACTS.items():
        for key in topology.command_keys(worker):
            assert key in addresses, f"command {key} of {worker} is not in the AsyncAPI document"
        for model in (*contracts.COMMANDS, *contracts.EVENTS):
            assert model.__name__ in schemas, f"{model.__name__} has no schema in the AsyncAPI document"
        for event in contracts.EVENTS:
            assert event.routing_key in addresses, f"event {event.routing_key} is not in the AsyncAPI document"
    assert "Reply" in schemas


def test_command_channels_name_the_exchange_and_routing_key() -> None:
    channels = yaml.safe_load(asyncapi_yaml())["channels"]
    for key in partners.known_command_keys():
        channel = channels[f"{topology.COMMANDS.name}:{key}"]
        assert f"`{topology.COMMANDS.name}`" in channel["description"]
        assert f"`{key}`" in channel["description"]


def test_no_two_types_in_the_document_share_a_name() -> None:
    """The document keys schemas by name, nested types too: a second `PaymentKind` (a loan's beside
    a payment's) silently replaced the first, and which one won depended on import order."""
    import enum
    import typing

    from pydantic import BaseModel

    seen: dict[str, type] = {}

    def walk(kind: object) -> None:
        for arg in typing.get_args(kind):
            walk(arg)
        if not isinstance(kind, type) or not issubclass(kind, (BaseModel, enum.Enum)):
            return
        if seen.setdefault(kind.__name__, kind) is not kind:
            raise AssertionError(f"{kind.__module__}.{kind.__name__} and {seen[kind.__name__].__module__} share a name")
        if issubclass(kind, BaseModel) and kind.__name__ not in walked:
            walked.add(kind.__name__)
            for field in kind.model_fields.values():
                walk(field.annotation)

    walked: set[str] = set()
    for contracts in (*topology.WORKER_CONTRACTS.values(), *topology.OPERATOR_CONTRACTS.values()):
        for model in (*contracts.COMMANDS, *contracts.EVENTS):
            walk(model)
    assert "LoanPaymentKind" in seen and "PaymentKind" in seen
