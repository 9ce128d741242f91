"""The ledger transfers a payment asks for (banking-rules §4): its legs, holds and their
resolution, cash, incoming credits and refunds; how the ledger's answer reads in the payment's
words; and how the requests of orders committed together join into one ledger command.

Pure: no I/O. Every transfer of a payment is one linked chain: all of it or none.

Decisions the rules leave open:
- Ledger transfer ids derive from the payment id and a step name (uuid5), so a retried command
  sends the same ids and the ledger answers `exists` instead of moving money twice.
- Refunds return the principal, not the fee; a reversal (a staff correction) returns the fee too.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from contracts.common import Reply
from contracts.ledger import CreateTransfers, NewTransfer, TransferFlags, bank_account_id, one_line
from contracts.payment import EXTERNAL_KINDS, Payee, PaymentError, PaymentKind, PaymentView
from workers.payment.domain.orders import Refusal

K, E = PaymentKind, PaymentError


def clearing_account_id(kind: PaymentKind, currency: str) -> UUID:
    assert kind in EXTERNAL_KINDS, f"{kind} has no clearing account"
    return bank_account_id(f"clearing_{kind}", currency)


def transfer_id(payment_id: UUID, step: str) -> UUID:
    """Deterministic per payment and step: a retry repeats the ids and the ledger answers `exists`."""
    return uuid.uuid5(payment_id, step)


# --- what a payment's transfers say on statements ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Words:
    """What every transfer of a payment says on both sides' history and statements: the bank
    reference, a narration, and the outside party behind a clearing account (a rail's beneficiary
    or remitter); an account inside the bank is named by the ledger (its number)."""

    reference: str
    narration: str
    counterparty: str | None = None


_PLAIN = {PaymentKind.cash_deposit: "Cash deposit", PaymentKind.cash_withdrawal: "Cash withdrawal",
          PaymentKind.internal: "Transfer"}  # fmt: skip


def _with(text: str, description: str | None) -> str:
    return one_line(f"{text}: {description}" if description else text)


def outside_party(*parts: str | None) -> str | None:
    """`Asha Rao · HDFC0001234 · 50100012345678`: what is known of a party outside the bank."""
    named = [p for p in parts if p]
    return one_line(" · ".join(named)) if named else None


def payee_party(payee: Payee | None) -> str | None:
    if payee is None or payee.account_id is not None:
        return None  # inside the bank: the ledger names the account
    return outside_party(payee.name, payee.ifsc, payee.account_number or payee.vpa)


def words_of(view: PaymentView) -> Words:
    """An order's words: `NEFT to Asha Rao: rent`, `Transfer: rent`, `Cash withdrawal`."""
    if view.kind in EXTERNAL_KINDS:
        assert view.payee is not None, "a rail payment has a payee"
        name = view.payee.name or view.payee.vpa or view.payee.account_number
        return Words(view.reference, _with(f"{view.kind.upper()} to {name}", view.description), payee_party(view.payee))
    assert view.kind in _PLAIN, f"{view.kind} has words of its own"
    return Words(view.reference, _with(_PLAIN[view.kind], view.description))


def incoming_words(reference: str, rail: PaymentKind, *, payer_name: str, payer_ifsc: str | None,
                   payer_account: str | None, description: str | None) -> Words:  # fmt: skip
    """A credit from another bank: `NEFT from Ravi Kumar: invoice 42`."""
    return Words(reference, _with(f"{rail.upper()} from {payer_name}", description),
                 outside_party(payer_name, payer_ifsc, payer_account))  # fmt: skip


def refund_words(view: PaymentView, original: PaymentView) -> Words:
    """`Refund of NEFT20261205…: reason`; an outside payee of the original stays the counterparty."""
    what = "Reversal" if view.kind == PaymentKind.reversal else "Refund"
    return Words(view.reference, _with(f"{what} of {original.reference}", view.description), payee_party(original.payee))


# --- a payment's transfers ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leg:
    debit: UUID
    credit: UUID
    amount: int
    code: str
    step: str


@dataclass(frozen=True, slots=True)
class TransferPlan:
    """What the payment asks of the ledger, all in one linked chain."""

    payment_id: UUID
    currency: str
    words: Words
    legs: list[Leg] = field(default_factory=list)

    def transfers(self, *, pending: bool = False, timeout_s: int = 0) -> list[NewTransfer]:
        legs = [leg for leg in self.legs if leg.amount > 0]
        return [
            NewTransfer(
                id=transfer_id(self.payment_id, leg.step),
                debit_account_id=leg.debit,
                credit_account_id=leg.credit,
                amount=leg.amount,
                currency=self.currency,
                code=leg.code,
                flags=TransferFlags(linked=i < len(legs) - 1, pending=pending),
                timeout_s=timeout_s if pending else 0,
                reference=self.words.reference,
                # The fee leg's other side is the bank's fee income, which the ledger names itself.
                narration=one_line(f"Fee: {self.words.narration}") if leg.step == "fee" else self.words.narration,
                counterparty=None if leg.step == "fee" else self.words.counterparty,
            )
            for i, leg in enumerate(legs)
        ]


def _principal_and_fee(
    payment_id: UUID, words: Words, currency: str, payer: UUID, to: UUID, amount: int, fee: int, code: str
) -> TransferPlan:
    legs = [Leg(payer, to, amount, code, "principal")]
    if fee:
        legs.append(Leg(payer, bank_account_id("fee_income", currency), fee, "fee", "fee"))
    return TransferPlan(payment_id, currency, words, legs)


def internal_transfers(
    payment_id: UUID, words: Words, currency: str, *, payer: UUID, payee: UUID, amount: int, fee: int = 0
) -> list[NewTransfer]:
    """Single-phase payer → payee, the fee (if any) linked to it: both or neither."""
    return _principal_and_fee(payment_id, words, currency, payer, payee, amount, fee, "internal_transfer").transfers()


def hold_transfers(
    payment_id: UUID,
    words: Words,
    currency: str,
    *,
    kind: PaymentKind,
    payer: UUID,
    payee: UUID | None,
    amount: int,
    fee: int,
    timeout_s: int = 0,
) -> list[NewTransfer]:
    """Pending hold: external → clearing_<rail>; internal waiting for approval → the payee."""
    if kind in EXTERNAL_KINDS:
        to, code = clearing_account_id(kind, currency), "payment_out"
    else:
        assert payee is not None, "an internal hold needs the payee"
        to, code = payee, "internal_transfer"
    plan = _principal_and_fee(payment_id, words, currency, payer, to, amount, fee, code)
    return plan.transfers(pending=True, timeout_s=timeout_s)


def _resolve(holds: list[NewTransfer], *, post: bool, step: str) -> list[NewTransfer]:
    flag = TransferFlags(post_pending=True) if post else TransferFlags(void_pending=True)
    return [
        NewTransfer(
            id=uuid.uuid5(h.id, step),
            amount=h.amount if post else 0,
            currency=h.currency,
            code=h.code,
            flags=flag.model_copy(update={"linked": i < len(holds) - 1}),
            pending_id=h.id,
            reference=h.reference,
        )
        for i, h in enumerate(holds)
    ]


def post_transfers(holds: list[NewTransfer]) -> list[NewTransfer]:
    """Post every hold of the payment (settlement or approval), linked: both or neither."""
    return _resolve(holds, post=True, step="post")


def void_transfers(holds: list[NewTransfer]) -> list[NewTransfer]:
    """Release every hold of the payment (failure, rejection, cancellation)."""
    return _resolve(holds, post=False, step="void")


def cash_transfers(
    payment_id: UUID, words: Words, currency: str, *, kind: PaymentKind, account: UUID, amount: int, fee: int = 0
) -> list[NewTransfer]:
    """Deposit: vault → customer. Withdrawal: customer → vault, its fee linked."""
    vault = bank_account_id("cash_vault", currency)
    if kind == K.cash_deposit:
        assert fee == 0, "deposits are free"
        return TransferPlan(payment_id, currency, words, [Leg(vault, account, amount, "deposit", "principal")]).transfers()
    assert kind == K.cash_withdrawal
    return _principal_and_fee(payment_id, words, currency, account, vault, amount, fee, "withdrawal").transfers()


def incoming_transfers(
    payment_id: UUID, words: Words, currency: str, *, rail: PaymentKind, account: UUID, amount: int
) -> list[NewTransfer]:
    """An inbound credit: clearing_<rail> → customer."""
    leg = Leg(clearing_account_id(rail, currency), account, amount, "payment_in", "principal")
    return TransferPlan(payment_id, currency, words, [leg]).transfers()


def refund_transfers(
    refund_id: UUID,
    words: Words,
    currency: str,
    *,
    original_kind: PaymentKind,
    original_payer: UUID,
    original_payee: UUID | None,
    amount: int,
    fee: int = 0,
    reversal: bool = False,
) -> list[NewTransfer]:
    """Payer and payee swapped: internal payee → payer; external clearing_<rail> → payer.
    A reversal (a staff correction) also gives the fee back from fee income, linked."""
    if original_kind in EXTERNAL_KINDS:
        source = clearing_account_id(original_kind, currency)
    else:
        assert original_payee is not None, "an internal refund needs the original payee"
        source = original_payee
    assert reversal or fee == 0, "a refund returns the principal only"
    legs = [Leg(source, original_payer, amount, "reversal" if reversal else "refund", "principal")]
    if fee:
        legs.append(Leg(bank_account_id("fee_income", currency), original_payer, fee, "fee_reversal", "fee"))
    return TransferPlan(refund_id, currency, words, legs).transfers()


# --- the ledger's answer ---------------------------------------------------------------------------


def ledger_refusal(results: list[dict[str, Any]]) -> Refusal | None:
    """None when every transfer is in the ledger (`ok` or `exists`), else the refusal in the
    payment's words: the first result that is not merely a linked failure names the cause."""
    codes = [r.get("result") for r in results]
    if codes and all(code in ("ok", "exists") for code in codes):
        return None
    cause = next((c for c in codes if c not in ("ok", "exists", "linked_event_failed")), "linked_event_failed")
    words = {
        "exceeds_credits": (E.insufficient_funds, "not enough money in the payer account"),
        "debit_account_frozen": (E.account_not_active, "the payer account is frozen"),
        "credit_account_frozen": (E.account_not_active, "the payee account is frozen"),
        "debit_account_already_closed": (E.account_not_active, "the payer account is closed"),
        "credit_account_already_closed": (E.account_not_active, "the payee account is closed"),
    }
    code, message = words.get(str(cause), (E.ledger_refused, f"the ledger refused: {cause}"))
    return Refusal(code, message, {"ledger_result": cause})


# --- joint requests: the transfers of orders committed together, asked as one command ------------


def merge_transfer_requests(commands: list[CreateTransfers]) -> CreateTransfers:
    """Every member's transfers, in member order, as one command."""
    return CreateTransfers(transfers=[t for command in commands for t in command.transfers])


def split_transfer_results(reply: Reply, sizes: list[int]) -> list[Reply]:
    """The ledger answers one result per transfer, in order: each member gets its own slice,
    indexed from 0 as if it had asked alone. A refusal of the whole command is everyone's."""
    if not reply.ok or not isinstance(reply.result, dict):
        return [reply] * len(sizes)
    results = reply.result["results"]
    assert len(results) == sum(sizes), "the ledger answers every transfer"
    return [
        Reply.success({"results": [{**r, "index": r["index"] - part.start} for r in results[part]]})
        for part in member_slices(sizes)
    ]


def member_slices(sizes: Sequence[int]) -> list[slice]:
    """The items of each member in the joint command, in order."""
    out, start = [], 0
    for size in sizes:
        out.append(slice(start, start + size))
        start += size
    return out


def closes_its_chain(command: CreateTransfers) -> bool:
    """A request whose last transfer is linked leaves its chain open: joined, it would swallow the
    next member's transfers into its chain. Sent alone, it is refused as it would have been."""
    return not command.transfers[-1].flags.linked
