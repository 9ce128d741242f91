"""Templates: Jinja2 in a sandbox, every variable required (banking-rules §6).

A template is data an officer may add versions of; it cannot reach Python (SandboxedEnvironment
refuses attribute tricks), and a variable the data does not give fails at once (StrictUndefined),
so a notification is never sent with a hole in it. Each key has a version per language; English
is the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2 import Template as Compiled
from jinja2.sandbox import SandboxedEnvironment

FALLBACK_LANGUAGE = "en"

_TEXT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_HTML = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)


def _money(amount: int, currency: str = "INR") -> str:
    exponent = {"JPY": 0, "KWD": 3}.get(currency, 2)
    units = f"{abs(amount) / 10**exponent:,.{exponent}f}"  # display only: never booked
    return f"{'-' if amount < 0 else ''}{currency} {units}"


for _env in (_TEXT, _HTML):
    _env.filters["money"] = _money


class TemplateFailure(Exception):
    """A template that does not parse, or a variable missing from the data: a bug of the template
    or its trigger, never retried."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    html: str | None


@dataclass(frozen=True)
class Template:
    key: str
    version: int
    language: str
    subject: str
    body: str
    html: str | None = None


def check(subject: str, body: str, html: str | None) -> str | None:
    """Why a template cannot be stored (a syntax error), or None."""
    try:
        _TEXT.parse(subject)
        _TEXT.parse(body)
        if html is not None:
            _HTML.parse(html)
    except TemplateError as exc:
        return str(exc)
    return None


# Compiling is most of rendering's cost (py-spy: a third of the notification worker's CPU under
# payment load), and a stored template never changes: a new text is a new version. So each text
# is compiled once, keyed by the text itself, and the cache is bounded.
COMPILED_TEXTS = 512


@lru_cache(maxsize=COMPILED_TEXTS)
def _compiled_text(source: str) -> Compiled:
    return _TEXT.from_string(source)


@lru_cache(maxsize=COMPILED_TEXTS)
def _compiled_html(source: str) -> Compiled:
    return _HTML.from_string(source)


def render(template: Template, data: Mapping[str, Any]) -> Rendered:
    try:
        return Rendered(
            subject=_compiled_text(template.subject).render(data).strip(),
            body=_compiled_text(template.body).render(data),
            html=_compiled_html(template.html).render(data) if template.html else None,
        )
    except TemplateError as exc:
        raise TemplateFailure(f"{template.key} v{template.version} ({template.language}): {exc}") from exc


# The templates a new installation starts with (version 1, English). Officers add versions.
DEFAULTS: tuple[Template, ...] = tuple(Template(key, 1, "en", subject, body) for key, subject, body in (
    ("payment_completed", "{{ kind_label }} of {{ amount | money(currency) }} completed",
     "Dear {{ name }}, your {{ kind_label | lower }} of {{ amount | money(currency) }} (reference {{ reference }}) "
     "was completed on {{ occurred_at }}."),
    ("payment_failed", "Payment of {{ amount | money(currency) }} failed",
     "Dear {{ name }}, your payment of {{ amount | money(currency) }} (reference {{ reference }}) failed: {{ reason }}."),
    ("kyc_status_changed", "Your KYC status is now {{ new_status }}",
     "Dear {{ name }}, your KYC status changed from {{ old_status }} to {{ new_status }}."
     "{% if reason %} Reason: {{ reason }}.{% endif %}"),
    ("document_expiring", "Your {{ document_type }} expires on {{ valid_until }}",
     "Dear {{ name }}, your {{ document_type }} is valid until {{ valid_until }}. Please send us a new one."),
    ("account_frozen", "Account {{ number }} frozen",
     "Dear {{ name }}, your account {{ number }} has been frozen: {{ reason }}."),
    ("account_dormant", "Account {{ number }} is dormant",
     "Dear {{ name }}, your account {{ number }} is dormant after a year without activity. "
     "Visit a branch to reactivate it."),
    ("loan_instalment_due", "Instalment {{ instalment }} of loan {{ number }} due on {{ due_date }}",
     "Dear {{ name }}, instalment {{ instalment }} of your loan {{ number }}, {{ amount | money(currency) }}, "
     "will be debited on {{ due_date }}."),
    ("loan_payment_overdue", "Loan {{ number }} is overdue",
     "Dear {{ name }}, your loan {{ number }} is {{ days_past_due }} days past due."),
    ("loan_disbursed", "Loan {{ number }} disbursed",
     "Dear {{ name }}, your loan {{ number }} of {{ amount | money(currency) }} has been disbursed."),
    ("security_alert", "Security alert: {{ threat_type }}",
     "Security event {{ threat_type }} ({{ threat_level }}) recorded at {{ occurred_at }}; risk {{ risk_score }}."),
    ("locked_out", "Login locked for {{ username }}",
     "The login {{ username }} was locked after {{ failed_attempts }} failed attempts until {{ locked_until }}."),
    ("login_locked", "Your login was locked",
     "Dear {{ name }}, your login {{ username }} was locked after {{ failed_attempts }} failed attempts, until "
     "{{ locked_until }}. If this was not you, call the bank."),
    ("new_device_login", "New sign-in to your account",
     "Dear {{ name }}, your login {{ username }} was used to sign in from a device it had not used before: "
     "{{ device_label }}, from {{ client_address }}, at {{ occurred_at }}. If this was you, there is nothing to do. "
     "If this was not you, call the bank and change your password."),
    ("one_time_password", "Your one-time password",
     "{{ code }} is your one-time password. It is valid for {{ valid_minutes }} minutes. Never share it."),
    ("test_message", "CBS test message", "This is a test message from CBS{% if note is defined and note %}: {{ note }}{% endif %}."),
))  # fmt: skip
