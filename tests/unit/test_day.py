"""The business day's pure rules (workers/day/domain.py) and the close-of-business sheet: every
declared step has an owner that runs it and a report the day worker learns."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest

from bus import topology
from contracts import day as c
from workers.day import domain
from workers.day import handlers as day_handlers
from workers.day.domain import Day

FRI, SAT, SUN, MON, TUE = (dt.date(2026, 12, d) for d in (4, 5, 6, 7, 8))


def test_business_days_are_weekdays_that_are_not_holidays() -> None:
    assert [domain.is_business_day(d, {TUE}) for d in (FRI, SAT, SUN, MON, TUE)] == [True, False, False, True, False]


def test_the_next_business_date_skips_weekends_and_holidays() -> None:
    assert domain.next_business_date(FRI, set()) == MON
    assert domain.next_business_date(FRI, {MON, TUE}) == dt.date(2026, 12, 9)
    assert domain.first_business_date(SUN, set()) == MON and domain.first_business_date(MON, set()) == MON


def test_a_calendar_without_a_business_day_in_a_year_is_refused() -> None:
    every_day = {FRI + dt.timedelta(days=i) for i in range(1, 400)}
    with pytest.raises(ValueError, match="no business day"):
        domain.next_business_date(FRI, every_day)


def test_only_the_open_date_closes() -> None:
    assert domain.close_refusal(Day(MON, c.DayStatus.open), MON) is None
    assert domain.close_refusal(Day(MON, c.DayStatus.closing), MON) is None  # asked again: resumes
    assert domain.close_refusal(Day(MON, c.DayStatus.open), FRI) == c.DayError.wrong_business_date


def test_steps_run_one_after_another_and_a_repeated_close_asks_the_first_not_done() -> None:
    order = ("a.x", "b.y", "c.z")
    assert domain.step_to_ask({}, order) == "a.x"  # a new close: the first
    assert domain.step_to_ask({"a.x": c.StepStatus.done, "b.y": c.StepStatus.failed, "c.z": c.StepStatus.waiting},
                              order) == "b.y"  # fmt: skip
    assert domain.step_to_ask({"a.x": c.StepStatus.done, "b.y": c.StepStatus.done, "c.z": c.StepStatus.pending},
                              order) == "c.z"  # fmt: skip
    assert domain.step_to_ask(dict.fromkeys(order, c.StepStatus.done), order) is None


def test_the_calendar_is_fixed_while_a_day_closes() -> None:
    assert domain.calendar_refusal(Day(MON, c.DayStatus.closing)) == c.DayError.day_closing
    assert domain.calendar_refusal(Day(MON, c.DayStatus.open)) is None


def test_interest_accrues_before_the_trial_balance_and_after_the_day_end_balances() -> None:
    assert c.COB_STEPS.index("ledger.day_end_balances") < c.COB_STEPS.index("account.interest")
    assert c.COB_STEPS.index("account.interest") < c.COB_STEPS.index("ledger.trial_balance")


def test_holidays_are_weekdays_after_the_open_date() -> None:
    assert domain.holiday_refusal(TUE, MON, adding=True) is None
    assert domain.holiday_refusal(MON, MON, adding=True) == c.DayError.invalid_holiday  # the open date is fixed
    assert domain.holiday_refusal(FRI, MON, adding=False) == c.DayError.invalid_holiday  # so is the past
    assert domain.holiday_refusal(dt.date(2026, 12, 12), MON, adding=True) == c.DayError.invalid_holiday  # Saturday


def test_an_unbalanced_trial_balance_names_its_currencies() -> None:
    lines = [c.TrialBalanceLine(currency="INR", debits_posted=5, credits_posted=5, accounts=2),
             c.TrialBalanceLine(currency="USD", debits_posted=5, credits_posted=4, accounts=2)]  # fmt: skip
    assert domain.unbalanced(lines) == ["USD"]


@pytest.mark.parametrize("step", c.COB_STEPS)
def test_every_declared_step_has_an_owner_that_runs_it_and_a_report_the_day_worker_learns(step: str) -> None:
    owner = step.split(".", 1)[0]
    routes = importlib.import_module(f"workers.{owner}.routes").ROUTES
    assert any(r.contract is c.DayClosing for r in routes.events), f"{owner} does not consume day.closing"
    reports = [e for e in routes.publishes if issubclass(e, c.StepReport)]
    assert [r.routing_key for r in reports] == [f"{owner}.cob_step_reported"]
    assert reports[0] in day_handlers.STEP_REPORTS
    assert any(topology.topic_matches(b, f"{owner}.cob_step_reported") for b in topology.EVENT_BINDINGS["day"])
    assert "day.closing" in topology.EVENT_BINDINGS[owner]
