"""The operator's views, pure parts: choosing and diagnosing dead letters, and `cbs status`'s rows."""

from __future__ import annotations

import datetime as dt

from ops import dlq
from ops.status import Outbox, QueueStat, worker_rows


def letter(message_id: str, *, queue: str = "account.get_account", type_: str = "account.get_account.v1",
           reason: str = "rejected", body: bytes = b'{"account_id": "x"}', **kw) -> dlq.DeadLetter:  # fmt: skip
    return dlq.DeadLetter(message_id=message_id, routing_key=queue, exchange="cbs.commands", message_type=type_,
                          reason=reason, queue=queue, body=body, **kw)  # fmt: skip


def test_a_selection_takes_what_it_names_and_nothing_when_empty() -> None:
    a, b = letter("a"), letter("b", queue="ledger.create_transfers", type_="ledger.create_transfers.v1",
                               reason="delivery_limit")  # fmt: skip
    assert not dlq.Selection().matches(a) and dlq.Selection().empty
    assert dlq.Selection(everything=True).matches(b)
    assert [x.message_id for x in (a, b) if dlq.Selection(queue="ledger.*").matches(x)] == ["b"]
    assert [x.message_id for x in (a, b) if dlq.Selection(type="account.*", reason="rejected").matches(x)] == ["a"]
    assert not dlq.Selection(ids=frozenset({"a"}), reason="delivery_limit").matches(a)  # every criterion holds
    assert dlq.Selection(ids=frozenset({"b"}), queue="ledger.*").described() == {"queue": "ledger.*", "id": "b"}


def test_a_dead_letter_says_why_it_died() -> None:
    assert "body is not a valid GetAccount" in (dlq.diagnose(letter("a")) or "")
    assert "type must be 'account.get_account.v1'" in (dlq.diagnose(letter("a", type_="account.get_account.v9")) or "")
    assert dlq.diagnose(letter("a", queue="nobody.knows")) == "no contract has routing key 'nobody.knows'"
    assert "failed on every delivery" in (dlq.diagnose(letter("a", reason="delivery_limit")) or "")
    good = letter("a", body=b'{"account_id": "00000000-0000-4000-8000-000000000001"}')
    assert dlq.diagnose(good) is None  # valid today: see the worker's log for what went wrong


def test_status_rows_count_replicas_depth_dead_letters_and_outbox_per_worker() -> None:
    queues = [
        QueueStat("ledger.create_transfers", 7, 2, 10.0, 9.5), QueueStat("ledger.get_balances", 1, 2, 0.0, 0.0),
        QueueStat("ledger.events", 0, 2, 1.0, 1.0), QueueStat("ledger.replies", 0, 0),
        QueueStat("audit.tap.events", 123_456, 1, 50.0, 50.0), QueueStat("audit.tap.replies", 4_892, 1, 9.0, 9.0),
        QueueStat("audit.list_records", 0, 1),
        QueueStat("cbs.dead", 2, 0), QueueStat("edge.replies.x", 0, 1),
    ]  # fmt: skip
    died = dt.datetime(2026, 12, 6, 10, tzinfo=dt.UTC)
    letters = [letter("old", queue="ledger.create_transfers", type_="ledger.create_transfers.v1", died_at=died),
               letter("new", queue="ledger.create_transfers", type_="ledger.create_transfers.v1",
                      died_at=died + dt.timedelta(minutes=1))]  # fmt: skip
    rows = {r.worker: r for r in worker_rows(queues, letters, {"ledger": Outbox(3, 42.0, None), "audit": None})}
    ledger = rows["ledger"]
    assert (ledger.replicas, ledger.consumers, ledger.depth, ledger.dead_letters) == (2, 6, 8, 2)
    assert (ledger.publish_rate, ledger.deliver_rate) == (11.0, 10.5)
    assert ledger.queues_without_consumers == ["ledger.replies"]
    assert (ledger.outbox_unsent, ledger.outbox_oldest_age_s) == (3, 42.0)
    assert ledger.last_error and ledger.last_error.startswith("dead letter new (ledger.create_transfers)")
    audit = rows["audit"]
    assert audit.depth == 0 and audit.replicas == 1  # a tap's retained log is not a backlog
    assert audit.outbox_unsent is None and rows["customer"].replicas == 0  # nothing consumes: shown as down
    with_error = worker_rows(queues, letters, {"ledger": Outbox(1, 5.0, "ConnectionError()")})
    assert next(r for r in with_error if r.worker == "ledger").last_error == "ConnectionError()"  # the outbox's own first


def test_without_the_management_api_the_live_view_rates_the_depth_between_two_looks() -> None:
    from ops.status import Snapshot, with_depth_rates

    def look(depth: int, source: str = "rabbitmqctl") -> Snapshot:
        rows = worker_rows([QueueStat("ledger.create_transfers", depth, 1)], [], {})
        return Snapshot(at="", vhost="/", broker_source=source, business_day=None, dead_letters={}, edges=0, workers=rows)

    ledger = lambda s: next(w for w in s.workers if w.worker == "ledger")  # noqa: E731
    assert ledger(with_depth_rates(look(30), look(10), 2.0)).publish_rate == 10.0
    assert ledger(with_depth_rates(look(30), None, 2.0)).publish_rate is None
    managed = look(30, "management")
    assert with_depth_rates(managed, look(10), 2.0) is managed  # the API's own rates stand
