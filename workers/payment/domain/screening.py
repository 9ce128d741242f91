"""Screening (banking-rules §4): the fraud score that holds a payment for a checker or refuses it,
and the watch list of names, account numbers and VPAs a payment's payee (or an incoming credit's
payer name) is checked against.

Pure, except `WatchList.from_env`, which reads the file `CBS_PAYMENT_WATCH_LIST` names.

Watch-list file format, one entry a line; blank lines and lines starting with `#` are ignored:

    # sanctioned persons
    name: Some Person
    account: 123456789
    vpa: someone@ybl

Names match case- and whitespace-insensitively (NFKC, casefold, runs of spaces collapsed);
account numbers ignore spaces; VPAs ignore case. A malformed line is an error, not skipped:
a watch list that silently lost entries would let payments through.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.payment import FraudLevel, Payee, PaymentError
from workers.payment.domain.orders import Refusal

E = PaymentError


# --- fraud score -----------------------------------------------------------------------------

FRAUD_BASE = 10
LARGE_AMOUNT = 5_000_000  # 50,000.00
COOLING_OFF = timedelta(hours=24)
VELOCITY_COUNT = 5  # more than this many payments in the last hour
APPROVAL_AMOUNT = 10_000_000  # 100,000.00


@dataclass(frozen=True, slots=True)
class Screening:
    score: int
    level: FraudLevel
    rules: tuple[str, ...]  # which rules added to the base, for the screening_hit event
    approval_required: bool


def fraud_score(
    amount: int, *, now: datetime, payee_added_at: datetime | None, payments_last_hour: int
) -> tuple[int, tuple[str, ...]]:
    """Base 10; +30 amount > 50,000.00; +30 payee added < 24 h ago; +20 > 5 payments in the last hour."""
    rules = []
    if amount > LARGE_AMOUNT:
        rules.append("large_amount")
    if payee_added_at is not None and now - payee_added_at < COOLING_OFF:
        rules.append("new_payee")
    if payments_last_hour > VELOCITY_COUNT:
        rules.append("velocity")
    points = {"large_amount": 30, "new_payee": 30, "velocity": 20}
    return min(FRAUD_BASE + sum(points[r] for r in rules), 100), tuple(rules)


def fraud_level(score: int) -> FraudLevel:
    if score >= 80:
        return FraudLevel.critical
    if score >= 60:
        return FraudLevel.high
    if score >= 30:
        return FraudLevel.medium
    return FraudLevel.low


def screen(
    amount: int, *, now: datetime, payee_added_at: datetime | None = None, payments_last_hour: int = 0
) -> Screening | Refusal:
    """Critical fails at once; ≥ 100,000.00 or high waits for a checker."""
    score, rules = fraud_score(amount, now=now, payee_added_at=payee_added_at, payments_last_hour=payments_last_hour)
    level = fraud_level(score)
    if level == FraudLevel.critical:
        return Refusal(E.fraud_suspected, f"fraud score {score} is critical", {"score": score, "rules": list(rules)})
    return Screening(score, level, rules, amount >= APPROVAL_AMOUNT or level == FraudLevel.high)


# --- watch list ------------------------------------------------------------------------------

ENV_VAR = "CBS_PAYMENT_WATCH_LIST"
RULE_NAME, RULE_ACCOUNT, RULE_VPA = "watch_list_name", "watch_list_account", "watch_list_vpa"


class WatchListError(ValueError):
    """The watch list cannot be read or parsed; the message names the file or line."""


def normalize_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def normalize_account(number: str) -> str:
    return "".join(number.split())


def normalize_vpa(vpa: str) -> str:
    return vpa.strip().casefold()


_NORMALIZE = {"name": normalize_name, "account": normalize_account, "vpa": normalize_vpa}


@dataclass(frozen=True, slots=True)
class WatchList:
    """Normalised entries (see the module docstring); empty by default."""

    names: frozenset[str] = frozenset()
    account_numbers: frozenset[str] = frozenset()
    vpas: frozenset[str] = frozenset()

    @classmethod
    def from_text(cls, text: str, *, source: str = "watch list") -> WatchList:
        """Parse the file format; a line without `key: value`, an unknown key or an empty value raises."""
        entries: dict[str, set[str]] = {key: set() for key in _NORMALIZE}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition(":")
            key = key.strip().casefold()
            if not sep or key not in _NORMALIZE:
                raise WatchListError(f"{source} line {number}: expected 'name:', 'account:' or 'vpa:', got {raw!r}")
            normalized = _NORMALIZE[key](value)
            if not normalized:
                raise WatchListError(f"{source} line {number}: empty {key}")
            entries[key].add(normalized)
        return cls(frozenset(entries["name"]), frozenset(entries["account"]), frozenset(entries["vpa"]))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WatchList:
        """The list in the file `CBS_PAYMENT_WATCH_LIST` names; unset or empty → an empty list.

        An unreadable file raises `WatchListError`: a configured list that cannot be read must stop
        the worker from starting, not screen nothing.
        """
        path = environ.get(ENV_VAR, "").strip()
        if not path:
            return cls()
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise WatchListError(f"{ENV_VAR}={path}: cannot read the watch list: {e}") from e
        return cls.from_text(text, source=path)

    def __len__(self) -> int:
        return len(self.names) + len(self.account_numbers) + len(self.vpas)


def matches(watch_list: WatchList, payee: Payee | None, payer_name: str | None = None) -> tuple[str, ...]:
    """The watch-list rules the payee (its name, account number, VPA) or the payer's name hit,
    in the order name, account, VPA; empty when none."""
    rules: list[str] = []
    names = [n for n in (payee.name if payee else None, payer_name) if n]
    if any(normalize_name(n) in watch_list.names for n in names):
        rules.append(RULE_NAME)
    if payee is not None and payee.account_number and normalize_account(payee.account_number) in watch_list.account_numbers:
        rules.append(RULE_ACCOUNT)
    if payee is not None and payee.vpa and normalize_vpa(payee.vpa) in watch_list.vpas:
        rules.append(RULE_VPA)
    return tuple(rules)
