"""What an audit record is about (`entity_of`) and who asked (`actor_of_headers`).

Bodies arrive already redacted by the contracts, so nothing here masks. `entity_of` takes the
entity the action names first (`add_payee` → payee, `disable_user` → user), then the worker's
own aggregate (`payment.*` → payment, `identity.*` → user, ...), then ENTITY_FIELDS in order. A
batch names its first item (`ledger.create_transfers` → the first transfer's id; the record's
payload keeps the others). On the ledger a bare `id` is the transfer or account the action names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from workers.audit.domain.classification import message_name, split_name

# (entity type, body field) in the general order.
ENTITY_FIELDS: tuple[tuple[str, str], ...] = (
    ("payment", "payment_id"),
    ("transfer", "transfer_id"),
    ("account", "account_id"),
    ("customer", "customer_id"),
    ("user", "user_id"),
    ("standing_order", "standing_order_id"),
    ("payee", "payee_id"),
    ("api_key", "key_id"),
    ("loan", "loan_id"),
    ("loan_application", "application_id"),
)
WORKER_ENTITY: dict[str, str] = {
    "payment": "payment", "account": "account", "customer": "customer", "identity": "user", "loan": "loan",
}  # fmt: skip
_FIELD = dict(ENTITY_FIELDS)


def _id_text(value: Any) -> str | None:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _first_item_id(body: Mapping[str, Any], list_field: str) -> str | None:
    items = body.get(list_field)
    if isinstance(items, (list, tuple)) and items:
        first = items[0]
        return _id_text(first.get("id")) if isinstance(first, Mapping) else _id_text(first)
    return None


def _entity_id(entity: str, worker: str, action: str, body: Mapping[str, Any]) -> str | None:
    found = _id_text(body.get(_FIELD[entity]))
    if found is not None or worker != "ledger" or entity not in ("transfer", "account"):
        return found
    # Ledger: a bare `id` or a batch names the transfer or account its action names.
    if entity in action:
        found = _id_text(body.get("id")) or _first_item_id(body, entity + "s") or _first_item_id(body, "ids")
    return found


def entity_of(routing_key: str, body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(entity type, entity id) the record is about, or (None, None); never raises."""
    if not isinstance(body, Mapping):
        return None, None
    worker, action = split_name(message_name(routing_key))
    named = [e for e, _ in ENTITY_FIELDS if e in action]
    own = [WORKER_ENTITY[worker]] if worker in WORKER_ENTITY else []
    for entity in (*named, *own, *(e for e, _ in ENTITY_FIELDS)):
        found = _entity_id(entity, worker, action, body)
        if found is not None:
            return entity, found
    return None, None


def actor_of_headers(x_actor: str | bytes | None) -> str | None:
    """`sub` of the edge's `x-actor` JSON header; None when absent or unreadable. Never raises.

    Whether the header is to be believed (it came through the edge's broker user) is the caller's
    check (`bus.actor.actor_of`); audit records it either way, next to the broker `user_id`.
    """
    if not isinstance(x_actor, (str, bytes, bytearray)) or not x_actor:
        return None
    try:
        claims = json.loads(x_actor)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if isinstance(sub, (str, int)) and not isinstance(sub, bool) and str(sub).strip():
        return str(sub)
    return None


MAX_ACCOUNTS = 2_000  # ids indexed of one record (a batch of 1,000 transfers names up to 2,000)
# Ledger messages whose bare `id` (or the `id` of each item) is an account's.
LEDGER_ACCOUNT_KEYS = frozenset({"ledger.create_accounts", "ledger.account_created", "ledger.account_flags_changed",
                                 "ledger.overdraft_limit_changed", "ledger.set_account_flags",
                                 "ledger.set_overdraft_limit", "ledger.lookup_accounts"})  # fmt: skip

# Read off the body's canonical JSON (sorted keys, no spaces: `chain.canonical_json`, which audit
# writes anyway to check the body can be chained). There a quote inside a string is escaped, so
# `account_id":"` can only end a key, and `"id":"` can only be a key named `id`. Issue 10's audit
# profile at 100 transfers a command: walking the parsed body in Python was 18% of audit's CPU;
# these scans cost a fifth of that walk on a 100-fact `ledger.transfers_committed`.
_STRING = rb'"([^"\\]{1,100})"'  # a string value short enough to be an id
_ACCOUNT_ID = re.compile(rb'account_id":' + _STRING)  # any key ending in `account_id`
_FLAT_LIST = rb'\[((?:"(?:[^"\\]|\\.)*"|[^\[\]{}"])*)\]'  # strings, numbers, nulls: no list or object inside
_ACCOUNT_IDS = re.compile(rb'"account_ids":' + _FLAT_LIST)
_BARE_ID = re.compile(rb'"id":' + _STRING)
_BARE_IDS = re.compile(rb'"ids":' + _FLAT_LIST)
_ITEM = re.compile(rb'"((?:[^"\\]|\\.)*)"')  # each string of a flat list, empty or escaped ones too
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid_text(value: str) -> str | None:
    """The id's canonical text, or None when it is no UUID (a body's ids are canonical already,
    and seen so without parsing them)."""
    if _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(UUID(value))
    except ValueError:
        return None


def accounts_of(routing_key: str, body_json: bytes) -> tuple[str, ...]:
    """Every account id a body names, sorted, from its canonical JSON: the string of any field
    named `*account_id`, and the strings of a flat list named `account_ids`, at any depth (payer and
    payee of a payment, debit and credit of each ledger transfer and its balances, a payee's
    account); on the ledger's account messages the bare `id`s and `ids` too. Never raises."""
    texts = set(_ACCOUNT_ID.findall(body_json))
    lists = _ACCOUNT_IDS.findall(body_json)
    if routing_key in LEDGER_ACCOUNT_KEYS:
        texts.update(_BARE_ID.findall(body_json))
        lists += _BARE_IDS.findall(body_json)
    for items in lists:
        texts.update(_ITEM.findall(items))
    found = {uuid for text in texts if (uuid := _uuid_text(text.decode(errors="replace"))) is not None}
    return tuple(sorted(found)[:MAX_ACCOUNTS])
