"""One broker user per kind of process, each allowed only what its work needs (DESIGN §3).

`cbs migrate` creates them with the administrator's rights, beside the topology. In the vhost:

| process | configure | write (exchanges; topic keys) | read (queues) |
|---|---|---|---|
| edge | its exclusive `edge.replies.*` / `edge.events.*` queues | `cbs.commands` any key; `cbs.events` `edge.*` | its own queues; binds on `cbs.events` |
| worker W | nothing | `cbs.commands` only what W asks of others; `cbs.events` `W.*`; replies by name | `W.*` queues |
| ops | its exclusive `ops.replies.*` queues | `cbs.commands` any key; `cbs.events` `partner.*` | its own queues |
| dlq | nothing | where dead letters first went, under their first sender's `user_id` (tag `impersonator`) | `cbs.dead` |

Nobody but the administrator declares durable topology, and the broker refuses a `user_id` that
is not the connection's user: so a message's `user_id` says which process sent it, and "the edge"
is one identity no worker holds.

Secrets: `CBS_<PROCESS>_BROKER_PASSWORD` when set; otherwise a secret generated once and kept in
`CBS_SECRETS_DIR/broker-<process>.secret` (mode 0600), which is the development default. The
broker is given only a salted hash (definitions on `rabbitmqctl`'s stdin); no password is logged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bus import topology
from ops import partners
from bus.settings import PROCESSES, WORKERS, broker_password, broker_secret_file, broker_user, broker_user_prefix

NOTHING = "^$"
ANY = ".*"
DEFAULT_EXCHANGE = "amq.default"  # the default exchange's name in permissions (replies by queue name)

# Only the dead-letter replayer may publish under another user's `user_id`: a replayed command
# must still say who first sent it.
TAGS: dict[str, tuple[str, ...]] = {"dlq": ("impersonator",)}

# The workers each worker asks through the bus (saga steps): its only command keys.
ASKS: dict[str, tuple[str, ...]] = {"account": ("ledger",), "payment": ("ledger",), "loan": ("ledger", "payment"),
                                    "identity": ("notification",)}  # identity: the one-time passwords' SMS


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str
    commands_write: str  # topic permission on cbs.commands (routing keys)
    events_write: str  # topic permission on cbs.events


def _names(*names: str) -> str:
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


def _prefixed(*prefixes: str) -> str:
    return "^(" + "|".join(re.escape(p) for p in prefixes) + ")"


def permissions_of(process: str) -> Permissions:
    """What `process` may do in its vhost (pure: the table in this module's text)."""
    commands, events = topology.COMMANDS.name, topology.EVENTS.name
    if process == "edge":
        own = r"^edge\.(replies|events)\.[^.]+$"
        return Permissions(configure=own, write=rf"^({re.escape(commands)}|{re.escape(events)}|edge\.(replies|events)\.[^.]+)$",
                           read=rf"^({re.escape(events)}|edge\.(replies|events)\.[^.]+)$",
                           commands_write=ANY, events_write=_prefixed("edge."))  # fmt: skip
    if process == "ops":
        own = r"^ops\.replies\.[^.]+$"
        return Permissions(configure=own, write=_names(commands, events), read=own,
                           commands_write=ANY, events_write=_prefixed("partner."))  # fmt: skip
    if process == "dlq":
        return Permissions(configure=NOTHING, write=_names(commands, events, DEFAULT_EXCHANGE),
                           read=_names(topology.DEAD_LETTER_QUEUE_NAME), commands_write=ANY, events_write=ANY)  # fmt: skip
    if process not in WORKERS:
        raise ValueError(f"unknown process {process!r}")
    asks = ASKS.get(process, ())
    return Permissions(
        configure=NOTHING,
        write=_names(commands, events, DEFAULT_EXCHANGE),
        read=_prefixed(f"{process}."),
        commands_write=_prefixed(*(f"{w}." for w in asks)) if asks else NOTHING,
        events_write=_prefixed(f"{process}."),
    )


def _ensure_secret(process: str) -> str:
    """The process's password: from the environment, its secret file, or made now (and kept)."""
    known = broker_password(process)
    if known is not None:
        return known
    path: Path = broker_secret_file(process)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = partners.new_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt + SHA-256(salt + password)), a
    4-byte salt. The broker gets the hash, never the password."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(vhost: str, passwords: dict[str, str]) -> dict[str, Any]:
    """Every process's user, permissions and topic permissions, as RabbitMQ definitions (pure)."""
    users, permissions, topics = [], [], []
    for process, password in passwords.items():
        user, p = broker_user(process), permissions_of(process)
        users.append({"name": user, "password_hash": password_hash(password), "limits": {},
                      "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": list(TAGS.get(process, ()))})  # fmt: skip
        permissions.append({"user": user, "vhost": vhost, "configure": p.configure, "write": p.write, "read": p.read})
        for exchange, write in ((topology.COMMANDS.name, p.commands_write), (topology.EVENTS.name, p.events_write)):
            topics.append({"user": user, "vhost": vhost, "exchange": exchange, "write": write, "read": ANY})
    return {"users": users, "permissions": permissions, "topic_permissions": topics}


def ensure_users(vhost: str, admin_url: str) -> list[str]:
    """Create or update every process's user, password and permissions in one import of
    definitions; returns the users. Through the management API when `CBS_RABBITMQ_API_URL` names
    it (containers: the broker is another host), else `rabbitmqctl import_definitions` (one call:
    each rabbitmqctl starts an Erlang VM). The administrator's credentials are `admin_url`'s."""
    passwords = {process: _ensure_secret(process) for process in PROCESSES}
    wanted = definitions(vhost, passwords)
    api = os.environ.get("CBS_RABBITMQ_API_URL")
    if api:
        import httpx

        parts = urlsplit(admin_url)
        response = httpx.post(f"{api.rstrip('/')}/api/definitions", json=wanted, timeout=60,
                              auth=(unquote(parts.username or ""), unquote(parts.password or "")))  # fmt: skip
        response.raise_for_status()
    else:
        partners.rabbitmqctl("import_definitions", secret=json.dumps(wanted))
    return [broker_user(process) for process in PROCESSES]


def delete_users(prefix: str | None = None) -> list[str]:
    """Delete the users whose names start with `prefix` (default: this process's prefix; a test
    run's own, at its end, or a dead run's)."""
    prefix = broker_user_prefix() if prefix is None else prefix
    gone = [str(u["user"]) for u in partners._json("list_users") if str(u["user"]).startswith(prefix)]  # noqa: SLF001
    for user in gone:
        partners.rabbitmqctl("delete_user", user)
    return gone
