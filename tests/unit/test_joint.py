"""Joint requests (bus/joint.py, and the payment worker's combiner for the ledger's transfers in
workers/payment/routes.py): how a batch's ledger requests merge into one command and how its
reply is split back, member by member, as if each had asked alone."""

from __future__ import annotations

import uuid

from bus import joint
from contracts import ledger as L
from contracts.common import Reply
from workers.payment.domain.transfers import member_slices
from workers.payment.routes import LEDGER_TRANSFERS


def transfer(amount: int = 100, *, linked: bool = False) -> L.NewTransfer:
    return L.NewTransfer(id=uuid.uuid4(), debit_account_id=uuid.uuid4(), credit_account_id=uuid.uuid4(),
                         amount=amount, currency="INR", code="internal_transfer",
                         flags=L.TransferFlags(linked=linked))  # fmt: skip


def request(*transfers: L.NewTransfer) -> L.CreateTransfers:
    return L.CreateTransfers(transfers=list(transfers))


def member(command: L.CreateTransfers, n: int) -> joint.Member:
    return joint.Member(step_id=f"payment:ledger_post:{n}", command=command, causation_id=str(n))


T = LEDGER_TRANSFERS


def test_merge_keeps_every_members_transfers_in_member_order() -> None:
    a, b = request(transfer(1), transfer(2, linked=True), transfer(3)), request(transfer(4))
    merged = T.merge([a, b])
    assert [t.amount for t in merged.transfers] == [1, 2, 3, 4]
    assert [t.flags.linked for t in merged.transfers] == [False, True, False, False]


def test_split_gives_each_member_its_results_indexed_from_zero() -> None:
    ids = [uuid.uuid4() for _ in range(4)]
    codes = ["ok", "linked_event_failed", "exceeds_credits", "ok"]
    reply = Reply.success({"results": [{"index": i, "id": str(ids[i]), "result": codes[i]} for i in range(4)]})
    first, second, third = T.split(reply, [1, 2, 1])
    assert first.result == {"results": [{"index": 0, "id": str(ids[0]), "result": "ok"}]}
    assert [(r["index"], r["result"]) for r in second.result["results"]] == [(0, "linked_event_failed"), (1, "exceeds_credits")]
    assert [(r["index"], r["id"]) for r in third.result["results"]] == [(0, str(ids[3]))]


def test_a_refusal_of_the_joint_command_is_every_members_refusal() -> None:
    refusal = Reply.refusal("forbidden", "not yours")
    assert T.split(refusal, [2, 1, 3]) == [refusal] * 3


def test_a_request_ending_inside_a_chain_is_not_joined() -> None:
    """Joined, its open chain would swallow the next member's transfers; alone it is refused as before."""
    assert not T.joinable(request(transfer(), transfer(linked=True)))
    assert T.joinable(request(transfer(linked=True), transfer()))
    collector = joint.Collector({L.CreateTransfers: T})
    assert collector.accepts(request(transfer()))
    assert not collector.accepts(request(transfer(linked=True)))
    assert not collector.accepts(L.LookupAccounts(ids=[uuid.uuid4()]))  # type: ignore[arg-type]


def test_groups_never_exceed_the_contracts_limit_and_keep_arrival_order() -> None:
    big = request(*(transfer() for _ in range(L.MAX_BATCH - 1)))
    members = [member(request(transfer()), 0), member(big, 1), member(request(transfer(), transfer()), 2)]
    groups = joint._groups(members, T)
    assert [[m.step_id for m in g] for g in groups] == [[members[0].step_id, members[1].step_id], [members[2].step_id]]
    assert all(sum(T.size(m.command) for m in g) <= L.MAX_BATCH for g in groups)


def test_slices_cover_the_joint_command_exactly() -> None:
    assert member_slices([2, 1, 3]) == [slice(0, 2), slice(2, 3), slice(3, 6)]
