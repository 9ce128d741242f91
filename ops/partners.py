"""Partners on the broker: one RabbitMQ user each, allowed only what its contract says (DESIGN §1, §3).

A partner `acme` is the broker user `partner.acme`. The registry of partners is the broker's own
user list: nothing is stored elsewhere. In its vhost a partner may

- configure nothing (`^$`): it declares no exchange or queue; `cbs partner add` declares its
  queues for it with the operator's URL;
- write only to `cbs.commands`, and there only the routing keys it was given (topic permissions);
- read only its own queues, `partner.<name>.replies` and `partner.<name>.events`.

Which events reach `partner.<name>.events` is the operator's choice too (`cbs partner add
--events KEYS`): the operator binds the queue on `cbs.events`; the partner cannot.

The broker enforces all of it: a publish to another routing key or a consume from another queue
closes the partner's channel with ACCESS_REFUSED, and a `user_id` property that is not the
connection's user is refused with PRECONDITION_FAILED. So a message with `user_id` set is known to
come from that user. Workers enforce the same grant again (`bus.grants.refuse`, on the grants they
learn from `partner.access_changed`), and believe a partner only as itself (`bus.actor.actor_of`).

Secrets: the password is generated here, handed to `rabbitmqctl` on stdin (never on its command
line, where `ps` would show it) and returned once to the caller; it is never logged.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from bus import topology
from bus.grants import may_send  # noqa: F401  # re-exported: the operator reads grants the same way
from bus.topology import PARTNER_PREFIX as USER_PREFIX
from bus.topology import partner_events_queue_name as events_queue_name
from bus.topology import partner_replies_queue_name as replies_queue_name
from bus.topology import partner_user as user_of
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")  # no dot: `partner.<name>.` stays unambiguous
ROUTING_KEY_PATTERN = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")  # literal keys only, no wildcards
SECRET_BYTES = 32  # token_urlsafe(32): 43 characters, 256 bits
RABBITMQCTL_TIMEOUT_S = 60

NOTHING = "^$"


class PartnerError(Exception):
    """An operator mistake (bad name, unknown key, no such partner): said plainly, exit 2."""


@dataclass(frozen=True)
class Partner:
    name: str
    may_send: tuple[str, ...]
    events: tuple[str, ...] = ()  # routing keys its events queue is bound to on `cbs.events`

    @property
    def user(self) -> str:
        return user_of(self.name)

    def as_dict(self) -> dict[str, Any]:
        queues = list(queues_of(self.name))
        return {"name": self.name, "user": self.user, "may_send": list(self.may_send), "events": list(self.events),
                "queues": queues}


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


# -- pure rules ---------------------------------------------------------------------------------


def queues_of(name: str) -> tuple[str, str]:
    return replies_queue_name(name), events_queue_name(name)


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise PartnerError(f"partner name {name!r} must match {NAME_PATTERN.pattern}")
    return name


def known_command_keys() -> frozenset[str]:
    return frozenset(key for worker in topology.WORKER_CONTRACTS for key in topology.command_keys(worker))


def known_event_keys() -> frozenset[str]:
    modules = topology.WORKER_CONTRACTS.values()
    return frozenset(e.routing_key for module in modules for e in getattr(module, "EVENTS", ()))


def check_keys(keys: Iterable[str], known: frozenset[str] | None = None) -> tuple[str, ...]:
    """The keys, sorted and unique; refuses wildcards, and keys no worker consumes (a typo)."""
    chosen = _literal_keys(keys, known if known is not None else known_command_keys(),
                           malformed="routing keys must be literal `<worker>.<command>` keys",
                           unknown="no worker consumes")  # fmt: skip
    if not chosen:
        raise PartnerError("a partner needs at least one routing key it may send")
    return chosen


def check_event_keys(keys: Iterable[str], known: frozenset[str] | None = None) -> tuple[str, ...]:
    """The event keys, sorted and unique (none is fine); refuses wildcards and keys no contract names."""
    return _literal_keys(keys, known if known is not None else known_event_keys(),
                         malformed="event keys must be literal `<worker>.<event>` keys",
                         unknown="no contract defines the events")  # fmt: skip


def _literal_keys(keys: Iterable[str], known: frozenset[str], *, malformed: str, unknown: str) -> tuple[str, ...]:
    chosen = tuple(sorted(set(keys)))
    if bad := [k for k in chosen if not ROUTING_KEY_PATTERN.match(k)]:
        raise PartnerError(f"{malformed}: {bad}")
    if missing := sorted(set(chosen) - known):
        raise PartnerError(f"{unknown} {missing}")
    return chosen


def keys_pattern(keys: Iterable[str]) -> str:
    """The topic-permission regex that matches exactly these routing keys."""
    return "^(" + "|".join(re.escape(k) for k in sorted(keys)) + ")$"


def keys_from_pattern(pattern: str) -> tuple[str, ...]:
    """The inverse of `keys_pattern`, for listing what a partner may send."""
    match = re.fullmatch(r"\^\((.*)\)\$", pattern)
    if match is None or not match.group(1):
        return ()
    return tuple(re.sub(r"\\(.)", r"\1", k) for k in match.group(1).split("|"))


def vhost_permissions(name: str) -> tuple[str, str, str]:
    """(configure, write, read) regexes of the partner in its vhost."""
    own_queues = "^" + re.escape(f"{user_of(name)}.") + ".*$"
    return NOTHING, "^" + re.escape(topology.COMMANDS.name) + "$", own_queues


def vhost_of(amqp_url: str) -> str:
    """The vhost an AMQP URL names: its path, percent-decoded; "/" when it has none."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def url_for_vhost(amqp_url: str, vhost: str) -> str:
    parts = urlsplit(amqp_url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


# -- rabbitmqctl --------------------------------------------------------------------------------


def rabbitmqctl(*args: str, secret: str | None = None) -> str:
    """Run rabbitmqctl; a secret goes on stdin. Raises CalledProcessError (which never holds it)."""
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args],
        input=None if secret is None else secret + "\n",
        check=True,
        capture_output=True,
        text=True,
        timeout=RABBITMQCTL_TIMEOUT_S,
    )
    return done.stdout


def _json(*args: str) -> list[dict[str, Any]]:
    out = rabbitmqctl(*args, "--formatter", "json").strip()
    return json.loads(out) if out else []


def partner_users() -> list[str]:
    """Every partner's broker user: the registry of partners."""
    return sorted(u["user"] for u in _json("list_users") if str(u["user"]).startswith(USER_PREFIX))


def exists(name: str) -> bool:
    return user_of(name) in partner_users()


def load_grants(vhost: str) -> dict[str, frozenset[str]]:
    """Partner user -> routing keys it may publish on `cbs.commands` in this vhost."""
    grants: dict[str, frozenset[str]] = {}
    for row in _json("list_topic_permissions", "-p", vhost):
        user = str(row["user"])
        if user.startswith(USER_PREFIX) and row["exchange"] == topology.COMMANDS.name:
            grants[user] = frozenset(keys_from_pattern(str(row["write"])))
    return grants


def load_event_bindings(vhost: str) -> dict[str, tuple[str, ...]]:
    """Events queue name -> routing keys it is bound to on `cbs.events` in this vhost."""
    bound: dict[str, set[str]] = {}
    for row in _json("list_bindings", "-p", vhost, "source_name", "destination_name", "routing_key"):
        queue = str(row["destination_name"])
        if row["source_name"] == topology.EVENTS.name and queue.startswith(USER_PREFIX) and queue.endswith(".events"):
            bound.setdefault(queue, set()).add(str(row["routing_key"]))
    return {queue: tuple(sorted(keys)) for queue, keys in bound.items()}


def list_partners(vhost: str) -> list[Partner]:
    grants, bindings = load_grants(vhost), load_event_bindings(vhost)
    partners = []
    for user in partner_users():
        name = user[len(USER_PREFIX):]
        may = tuple(sorted(grants.get(user, frozenset())))
        partners.append(Partner(name=name, may_send=may, events=bindings.get(events_queue_name(name), ())))
    return partners


def partner_url(amqp_url: str, name: str, password: str) -> str:
    """The partner's own AMQP URL: host, port and vhost of the operator's URL, the partner's user."""
    parts = urlsplit(amqp_url)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{quote(user_of(name), safe='')}:{quote(password, safe='')}@{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def create_user(name: str, keys: Iterable[str], vhost: str) -> Credentials:
    """Create the partner's user and permissions; on any failure, leave no half-made user."""
    check_name(name)
    chosen = check_keys(keys)
    if exists(name):
        raise PartnerError(f"partner {name!r} exists; use rotate-secret or remove it first")
    user, password = user_of(name), new_secret()
    rabbitmqctl("add_user", user, secret=password)
    try:
        rabbitmqctl("set_user_tags", user)  # no tags: no management UI, no policymaker
        rabbitmqctl("set_permissions", "-p", vhost, user, *vhost_permissions(name))
        rabbitmqctl("set_topic_permissions", "-p", vhost, user, topology.COMMANDS.name, keys_pattern(chosen), NOTHING)
    except BaseException:
        rabbitmqctl("delete_user", user)
        raise
    return Credentials(user=user, password=password)


def rotate_secret(name: str, *, close_connections: bool = False) -> Credentials:
    """A new password: new connections need it at once.

    Open connections stay, so a partner can switch without an outage; after a leak, close them
    (`close_connections`) and the old secret is useless at once.
    """
    check_name(name)
    if not exists(name):
        raise PartnerError(f"no partner {name!r}")
    password = new_secret()
    rabbitmqctl("change_password", user_of(name), secret=password)
    if close_connections:
        rabbitmqctl("close_all_user_connections", user_of(name), "partner secret rotated")
    return Credentials(user=user_of(name), password=password)


def delete_user(name: str) -> None:
    """Delete the partner's user; the broker drops its permissions and closes its connections."""
    check_name(name)
    if not exists(name):
        raise PartnerError(f"no partner {name!r}")
    rabbitmqctl("delete_user", user_of(name))


# -- queues (declared by the operator: partners may configure nothing) ---------------------------


def partner_queues(name: str) -> list[Any]:
    from faststream.rabbit import QueueType, RabbitQueue

    # Bounded and dead-lettered like every queue of the bus (DESIGN §3).
    arguments = topology._quorum_arguments()  # noqa: SLF001  # one definition of the queue arguments
    return [RabbitQueue(q, queue_type=QueueType.QUORUM, durable=True, arguments=arguments) for q in queues_of(name)]


async def declare_queues(amqp_url: str, name: str, events: Iterable[str] = ()) -> None:
    """Declare the partner's reply and event queues, and bind the events queue to `events` keys."""
    from faststream.rabbit import RabbitBroker

    broker = RabbitBroker(amqp_url, logger=None)
    await broker.connect()
    try:
        declared = {queue.name: await broker.declare_queue(queue) for queue in partner_queues(name)}
        if events:
            exchange = await broker.declare_exchange(topology.EVENTS)
            for key in events:
                await declared[events_queue_name(name)].bind(exchange, routing_key=key)
    finally:
        await broker.stop()


async def delete_queues(amqp_url: str, name: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for queue in queues_of(name):
            await channel.queue_delete(queue)  # RabbitMQ answers delete-ok for a missing queue too
    finally:
        await connection.close()


# -- grants as events (what workers learn; DESIGN §3: workers learn facts from events) ------------


def access_changed(name: str, keys: Iterable[str], occurred_at: Any = None) -> Any:
    """The `partner.access_changed` fact for this partner: its whole grant (none when removed)."""
    from datetime import UTC, datetime

    from contracts.partner import PartnerAccessChanged

    return PartnerAccessChanged(
        partner=user_of(check_name(name)), may_send=sorted(set(keys)), occurred_at=occurred_at or datetime.now(UTC)
    )


async def publish_event(amqp_url: str, event: Any, *, message_id: str | None = None) -> None:
    """Publish an operator's event on `cbs.events`: persistent, confirmed, and routed (mandatory).

    The topology is declared first (with the administrator's `amqp_url`), so every worker's events
    queue exists and holds the fact even while the worker is down; an unroutable return or a nack
    raises (the operator's command fails). The event itself is published as the operator's tools'
    broker user (`ops`), the only publisher workers believe for `partner.*` facts.
    """
    import uuid

    import aio_pika
    from aiormq.abc import DeliveredMessage
    from pamqp.commands import Basic

    from bus.settings import broker_user, load

    await topology.declare_on(amqp_url)
    connection = await aio_pika.connect(url_for_vhost(load().process_amqp_url("ops"), vhost_of(amqp_url)))
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EVENTS.name)
        message = aio_pika.Message(
            event.model_dump_json().encode(), content_type="application/json", message_id=message_id or uuid.uuid4().hex,
            type=event.message_type, user_id=broker_user("ops"), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )  # fmt: skip
        confirm = await exchange.publish(message, routing_key=event.routing_key, mandatory=True, timeout=30)
        if isinstance(confirm, DeliveredMessage):
            raise PartnerError(f"no queue is bound for {event.routing_key}: run `cbs migrate` first")
        if not isinstance(confirm, Basic.Ack):
            raise PartnerError(f"the broker did not confirm {event.routing_key}: {confirm!r}")
    finally:
        await connection.close()


async def publish_access(amqp_url: str, name: str, keys: Iterable[str]) -> None:
    """Tell every worker what partner `name` may send now (an empty `keys`: nothing)."""
    await publish_event(amqp_url, access_changed(name, keys))


# -- what `cbs partner` does (ops/cli.py parses, these act; each returns what it prints) --------


def add(vhost_url: str, vhost: str, name: str, may_send: Iterable[str], events: Iterable[str]) -> dict[str, Any]:
    """Grant, user, queues, in that order, undone on failure: no user without its queues, and no
    grant without its user. The result holds the password: the only time it is shown."""
    events, keys = check_event_keys(events), check_keys(may_send)
    if exists(check_name(name)):
        raise PartnerError(f"partner {name!r} exists; use rotate-secret or remove it first")
    # Workers learn the grant before the partner can publish anything (defence in depth).
    asyncio.run(publish_access(vhost_url, name, keys))
    try:
        creds = create_user(name, keys, vhost)
        try:
            asyncio.run(declare_queues(vhost_url, name, events))
        except BaseException:
            delete_user(name)
            raise
    except BaseException:
        if not exists(name):
            asyncio.run(publish_access(vhost_url, name, ()))
        raise
    return {**Partner(name, keys, events).as_dict(), "vhost": vhost, "password": creds.password}


def rotate(name: str, *, close_connections: bool) -> dict[str, Any]:
    creds = rotate_secret(name, close_connections=close_connections)
    return {"name": name, "user": creds.user, "password": creds.password}


def sync_grants(vhost_url: str, vhost: str) -> list[dict[str, Any]]:
    """Tell every worker each partner's grant as the broker holds it (e.g. partners made before
    workers checked grants, or a worker whose grants were lost)."""
    synced = []
    for partner in list_partners(vhost):
        asyncio.run(publish_access(vhost_url, partner.name, partner.may_send))
        synced.append({"name": partner.name, "user": partner.user, "may_send": list(partner.may_send)})
    return synced


def remove(vhost_url: str, name: str, *, keep_queues: bool) -> dict[str, Any]:
    delete_user(name)
    # After the user is gone: workers stop honouring a grant nobody can use any more.
    asyncio.run(publish_access(vhost_url, name, ()))
    if not keep_queues:
        asyncio.run(delete_queues(vhost_url, name))
    return {"removed": name, "queues_deleted": not keep_queues}
