"""The deprecation's backward plan and escalation calendar, on real dates (pure, no Temporal)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from model_migration.catalog import load_catalog
from model_migration.domain.deprecation import (
    DeprecationError,
    DeprecationRequest,
    PlanRules,
    backward_plan,
    check_request,
    escalation_calendar,
)
from model_migration.domain.evaluation import HarnessKind
from model_migration.domain.stages import FeatureStage

CATALOG = load_catalog()
SONNET_37 = "claude_3_7_sonnet_20250219"
ON_SONNET_37 = tuple(CATALOG.features_on(SONNET_37))
#: No shipped feature still runs on code-gecko; the plan is the same for any feature on it.
ON_GECKO = (CATALOG.feature("code_completion").model_copy(update={"current_model": "code_gecko_002"}),)


@pytest.mark.parametrize(("weeks", "due"), [(4, date(2026, 1, 22)), (2, date(2026, 2, 5))])
def test_claude_3_7_sonnet_retiring_on_2026_02_19(weeks: int, due: date) -> None:
    """The epic is due the lead time before the cutoff; every stage's latest start counts back from it."""
    plan = backward_plan(SONNET_37, date(2026, 2, 19), ON_SONNET_37, today=date(2025, 11, 1), lead_time=timedelta(weeks=weeks))
    assert plan.due == due and plan.feasible
    assert {f.feature for f in plan.features} == {f.name for f in ON_SONNET_37} and len(plan.features) >= 3
    chat = next(f for f in plan.features if f.feature == "duo_chat")
    assert chat.window(FeatureStage.CLEANUP).due == due
    assert chat.window(FeatureStage.CLEANUP).latest_start == due - timedelta(days=1)  # a day at 100 %
    assert chat.window(FeatureStage.ROLLOUT).latest_start == due - timedelta(days=1 + 6)  # 6 steps × 1 day of bake
    assert chat.window(FeatureStage.EVALUATE).latest_start == due - timedelta(days=1 + 6 + 2)  # the service's 2 days
    assert chat.window(FeatureStage.IMPLEMENT).due == chat.window(FeatureStage.EVALUATE).latest_start
    assert chat.implement_days == (chat.window(FeatureStage.EVALUATE).latest_start - date(2025, 11, 1)).days


def test_code_gecko_extension_moves_every_date() -> None:
    """Google moved code-gecko@002's shutdown from 2024-10-09 to 2025-04-09: every date moves by the same 182 days."""
    today = date(2024, 6, 1)
    before = backward_plan("code_gecko_002", date(2024, 10, 9), ON_GECKO, today=today)
    after = backward_plan("code_gecko_002", date(2025, 4, 9), ON_GECKO, today=today)
    shift = date(2025, 4, 9) - date(2024, 10, 9)
    assert after.due - before.due == shift
    for b, a in zip(before.features[0].windows, after.features[0].windows, strict=True):
        assert a.due - b.due == shift
        if b.stage != FeatureStage.IMPLEMENT:
            assert a.latest_start - b.latest_start == shift
    assert after.features[0].implement_days - before.features[0].implement_days == shift.days


def test_a_plan_without_room_for_implement_is_infeasible_and_says_by_how_much() -> None:
    """Implement needs 5 days; with 2 left the plan is 3 days short, and the calendar escalates on day 0."""
    cutoff = date(2026, 3, 1)
    due = cutoff - timedelta(weeks=4)
    today = due - timedelta(days=1 + 6 + 2 + 2)  # room for cleanup, rollout, evaluation, and 2 days of implement
    plan = backward_plan(SONNET_37, cutoff, ON_SONNET_37[:1], today=today)
    assert not plan.feasible and plan.shortfall_days == 3
    assert "infeasible by 3 days" in plan.summary()
    calendar = escalation_calendar(plan)
    assert calendar[0].on == today and calendar[0].name.startswith("late mode") and calendar[0].notify


def test_a_slower_harness_takes_more_of_the_plan() -> None:
    ci = ON_SONNET_37[0].model_copy(update={"evaluation": ON_SONNET_37[0].evaluation.model_copy(update={"harness": HarnessKind.IMPORTED})})
    plan = backward_plan(SONNET_37, date(2026, 2, 19), (ci,), today=date(2025, 11, 1))
    assert plan.features[0].window(FeatureStage.EVALUATE).latest_start == date(2026, 1, 22) - timedelta(days=1 + 6 + 3)


@pytest.mark.parametrize("days", [13, 29, 0])
def test_a_lead_time_outside_two_to_four_weeks_is_refused(days: int) -> None:
    with pytest.raises(DeprecationError, match="outside GitLab's 2–4 weeks"):
        backward_plan(SONNET_37, date(2026, 2, 19), ON_SONNET_37, today=date(2025, 11, 1), lead_time=timedelta(days=days))


def test_a_model_no_feature_uses_has_nothing_to_plan() -> None:
    with pytest.raises(DeprecationError, match="no catalog feature uses"):
        backward_plan("code_gecko_002", date(2026, 2, 19), (), today=date(2025, 11, 1))


def test_the_calendar_runs_from_t_minus_14_to_the_cutoff() -> None:
    """Reminders at T−14 and T−7, managers at T−2 with priority::2, the due date with priority::1, then daily from cutoff − 7."""
    plan = backward_plan(SONNET_37, date(2026, 2, 19), ON_SONNET_37, today=date(2025, 11, 1))
    calendar = escalation_calendar(plan)
    t = date(2026, 1, 22)
    assert [(e.on, e.label) for e in calendar[:4]] == [
        (t - timedelta(days=14), None), (t - timedelta(days=7), None), (t - timedelta(days=2), "priority::2"), (t, "priority::1"),
    ]
    critical = [e.on for e in calendar if e.label == "severity::2"]
    assert critical == [date(2026, 2, 12) + timedelta(days=i) for i in range(8)] and all(e.notify for e in calendar[4:])
    late_start = escalation_calendar(plan.model_copy(update={"today": date(2026, 1, 20)}))
    assert late_start[0].on == date(2026, 1, 20)  # steps already past are left out


def test_rules_refuse_a_zero_stage() -> None:
    with pytest.raises(ValueError, match="longer than zero"):
        PlanRules(bake=timedelta(0))


GOOD = DeprecationRequest(
    model=SONNET_37, deprecation_date=date(2025, 10, 28), cutoff=date(2026, 2, 19),
    announcement_url="https://docs.anthropic.com/en/docs/resources/model-deprecations",
    recommended="claude_sonnet_4_5_20250929", candidates=("claude_sonnet_4_20250514", "claude_haiku_4_5_20251001"),
)


def test_a_good_request_names_every_affected_feature() -> None:
    assert check_request(GOOD, CATALOG, date(2025, 11, 1)) == ON_SONNET_37


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"cutoff": date(2025, 10, 31)}, "is not after today"),
        ({"model": "gpt-17"}, "unknown model 'gpt-17'"),
        ({"model": "code_gecko_002"}, "no catalog feature uses code_gecko_002"),
        ({"lead_time": timedelta(weeks=6)}, "outside GitLab's 2–4 weeks"),
        ({"candidates": ("claude-9",)}, "unknown replacement candidate 'claude-9'"),
        ({"candidates": (SONNET_37,)}, "is the model being retired"),
        ({"recommended": SONNET_37}, "is the model being retired"),
        ({"deprecation_date": date(2026, 3, 1)}, "is after the cutoff"),
        ({"announcement_url": "ftp://example.com"}, "not an http(s) URL"),
    ],
)
def test_each_bad_request_is_one_line(change: dict[str, object], expected: str) -> None:
    with pytest.raises(DeprecationError, match=expected.replace("(", r"\(").replace(")", r"\)")) as caught:
        check_request(GOOD.model_copy(update=change), CATALOG, date(2025, 11, 1))
    assert "\n" not in caught.value.message


def test_a_cutoff_too_close_for_the_work_is_accepted_in_late_mode() -> None:
    """Not refused: the plan says it is short, and the deprecation escalates on day 0."""
    today = date(2026, 1, 20)
    features = check_request(GOOD, CATALOG, today)
    assert not backward_plan(SONNET_37, GOOD.cutoff, features, today).feasible
