"""Due-date planning forwards and backwards, plan checks, extensions and pause shifts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from model_migration.domain.deadlines import StagePlan, check_plan, extend, plan_due_dates, shift_from
from model_migration.domain.errors import CommandRejected
from model_migration.domain.stages import FEATURE_STAGES, FeatureStage

S = FeatureStage
DAY = timedelta(days=1)
START = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
DEFAULT = StagePlan()  # 7 + 3 + 4 + 2 days


def _rejected(call, *args, **kwargs) -> str:
    with pytest.raises(CommandRejected) as info:
        call(*args, **kwargs)
    return str(info.value)


def _forward() -> dict[FeatureStage, datetime]:
    return plan_due_dates(START, DEFAULT)


# --- StagePlan -------------------------------------------------------------------------------


def test_default_durations_and_total() -> None:
    """The default plan gives 7, 3, 4 and 2 days, 16 in total, and no target."""
    assert [DEFAULT.duration(s) for s in FEATURE_STAGES] == [7 * DAY, 3 * DAY, 4 * DAY, 2 * DAY]
    assert DEFAULT.total == 16 * DAY
    assert DEFAULT.target is None


def test_total_follows_custom_durations() -> None:
    """The total is the sum of the four stage durations, at any unit."""
    plan = StagePlan(
        implement=timedelta(seconds=5),
        evaluate=timedelta(seconds=3),
        rollout=timedelta(seconds=4),
        cleanup=timedelta(seconds=2),
    )
    assert plan.total == timedelta(seconds=14)


# --- forward planning ------------------------------------------------------------------------


def test_forward_plan_is_cumulative() -> None:
    """Without a target each stage is due its duration after the previous one."""
    assert _forward() == {
        S.IMPLEMENT: START + 7 * DAY,
        S.EVALUATE: START + 10 * DAY,
        S.ROLLOUT: START + 14 * DAY,
        S.CLEANUP: START + 16 * DAY,
    }


def test_forward_plan_keys_in_stage_order() -> None:
    """The plan lists the stages in feature-stage order."""
    assert list(_forward()) == list(FEATURE_STAGES)


def test_forward_plan_with_seconds() -> None:
    """Short plans (the demo's seconds) are cumulative too."""
    plan = StagePlan(
        implement=timedelta(seconds=10),
        evaluate=timedelta(seconds=1),
        rollout=timedelta(seconds=20),
        cleanup=timedelta(seconds=3),
    )
    due = plan_due_dates(START, plan)
    assert [due[s] - START for s in FEATURE_STAGES] == [timedelta(seconds=n) for n in (10, 11, 31, 34)]


# --- backward planning -----------------------------------------------------------------------


def test_backward_plan_from_target() -> None:
    """With a target, cleanup is due at the target and earlier stages by their durations before it."""
    target = datetime(2025, 6, 30, 17, 0, tzinfo=UTC)
    due = plan_due_dates(START, DEFAULT.model_copy(update={"target": target}))
    assert due == {
        S.CLEANUP: target,
        S.ROLLOUT: target - 2 * DAY,
        S.EVALUATE: target - 6 * DAY,
        S.IMPLEMENT: target - 9 * DAY,
    }
    assert list(due) == list(FEATURE_STAGES)


def test_backward_plan_ignores_start() -> None:
    """A backward plan depends on the target, not on the start."""
    plan = DEFAULT.model_copy(update={"target": datetime(2025, 6, 30, tzinfo=UTC)})
    assert plan_due_dates(START, plan) == plan_due_dates(START + 20 * DAY, plan)


def test_backward_plan_at_start_plus_total_equals_forward() -> None:
    """Planning back from start + total gives the same dates as planning forward."""
    plan = DEFAULT.model_copy(update={"target": START + DEFAULT.total})
    assert plan_due_dates(START, plan) == _forward()


# --- check_plan ------------------------------------------------------------------------------


def test_check_plan_without_target() -> None:
    """A plan without a target is always accepted."""
    assert check_plan(START, DEFAULT) is None


@pytest.mark.parametrize("before", [timedelta(0), timedelta(seconds=1), 3 * DAY])
def test_check_plan_target_in_the_past(before: timedelta) -> None:
    """A target at or before the start is refused, naming both dates."""
    plan = DEFAULT.model_copy(update={"target": START - before})
    message = _rejected(check_plan, START, plan)
    assert message == (
        f"target date {START - before:%Y-%m-%d} is in the past; pick a date after 2025-03-01"
    )


@pytest.mark.parametrize("after", [timedelta(hours=1), 5 * DAY, 9 * DAY])
def test_check_plan_target_too_close(after: timedelta) -> None:
    """A target that leaves implement no time is refused, suggesting start + total as the date."""
    target = START + after
    message = _rejected(check_plan, START, DEFAULT.model_copy(update={"target": target}))
    assert message == (
        f"target date {target:%Y-%m-%d %H:%M} is too close: the stages need 16 days, "
        f"so choose {START + DEFAULT.total:%Y-%m-%d %H:%M} UTC or later"
    )


@pytest.mark.parametrize("extra", [timedelta(0), timedelta(hours=1), 30 * DAY])
def test_check_plan_accepts_suggested_date_and_later(extra: timedelta) -> None:
    """The suggested earliest date, and anything after it, is accepted."""
    plan = DEFAULT.model_copy(update={"target": START + DEFAULT.total + extra})
    assert check_plan(START, plan) is None


# --- extend ----------------------------------------------------------------------------------


def test_extend_moves_stage_and_shifts_later_ones() -> None:
    """Extending evaluate moves it and shifts rollout and cleanup by the same delta; implement stays."""
    deadlines = _forward()
    new_due = deadlines[S.EVALUATE] + 2 * DAY + timedelta(hours=3)
    moved = extend(deadlines, S.EVALUATE, new_due, S.EVALUATE, START)
    delta = 2 * DAY + timedelta(hours=3)
    assert moved == {
        S.IMPLEMENT: deadlines[S.IMPLEMENT],
        S.EVALUATE: new_due,
        S.ROLLOUT: deadlines[S.ROLLOUT] + delta,
        S.CLEANUP: deadlines[S.CLEANUP] + delta,
    }
    assert list(moved) == list(FEATURE_STAGES)


def test_extend_does_not_mutate_input() -> None:
    """The original deadlines are left untouched."""
    deadlines = _forward()
    before = dict(deadlines)
    extend(deadlines, S.IMPLEMENT, deadlines[S.IMPLEMENT] + DAY, S.IMPLEMENT, START)
    assert deadlines == before


@pytest.mark.parametrize("stage", FEATURE_STAGES, ids=str)
def test_extend_each_stage_from_implement(stage: FeatureStage) -> None:
    """From implement any stage can be extended; only it and later stages move."""
    deadlines = _forward()
    moved = extend(deadlines, stage, deadlines[stage] + DAY, S.IMPLEMENT, START)
    index = FEATURE_STAGES.index(stage)
    for i, s in enumerate(FEATURE_STAGES):
        assert moved[s] == deadlines[s] + (DAY if i >= index else timedelta(0))


def test_extend_later_stage_than_current() -> None:
    """While in evaluate, cleanup can be extended without touching evaluate or rollout."""
    deadlines = _forward()
    moved = extend(deadlines, S.CLEANUP, deadlines[S.CLEANUP] + 5 * DAY, S.EVALUATE, START)
    assert moved[S.EVALUATE] == deadlines[S.EVALUATE]
    assert moved[S.ROLLOUT] == deadlines[S.ROLLOUT]
    assert moved[S.CLEANUP] == deadlines[S.CLEANUP] + 5 * DAY


@pytest.mark.parametrize(
    ("stage", "current"),
    [(S.IMPLEMENT, S.EVALUATE), (S.IMPLEMENT, S.CLEANUP), (S.EVALUATE, S.ROLLOUT), (S.ROLLOUT, S.CLEANUP)],
    ids=lambda s: str(s),
)
def test_extend_refuses_finished_stage(stage: FeatureStage, current: FeatureStage) -> None:
    """A stage before the current one is finished and cannot be extended."""
    deadlines = _forward()
    message = _rejected(extend, deadlines, stage, deadlines[stage] + DAY, current, START)
    assert message == f"{stage} is already finished; only {current} or later can be extended"


@pytest.mark.parametrize("ago", [timedelta(0), timedelta(minutes=1), DAY])
def test_extend_refuses_past_date(ago: timedelta) -> None:
    """A new date at or before now is refused as being in the past."""
    deadlines = _forward()
    now = START + 20 * DAY  # every stage is already overdue
    new_due = now - ago
    message = _rejected(extend, deadlines, S.CLEANUP, new_due, S.CLEANUP, now)
    assert message == f"the new date {new_due:%Y-%m-%d %H:%M} is in the past"


@pytest.mark.parametrize("earlier", [timedelta(0), timedelta(hours=1), 2 * DAY])
def test_extend_refuses_date_not_after_current_due(earlier: timedelta) -> None:
    """A new date at or before the current due date is refused, naming both."""
    deadlines = _forward()
    new_due = deadlines[S.ROLLOUT] - earlier
    message = _rejected(extend, deadlines, S.ROLLOUT, new_due, S.ROLLOUT, START)
    assert message == (
        f"the new date {new_due:%Y-%m-%d %H:%M} is not after the current due date 2025-03-15 09:30"
    )


@pytest.mark.parametrize("stage", [S.DONE, S.ABORTED], ids=str)
def test_extend_refuses_stage_without_deadline(stage: FeatureStage) -> None:
    """A stage with no deadline is refused by name."""
    message = _rejected(extend, _forward(), stage, START + 30 * DAY, S.IMPLEMENT, START)
    assert message == f"{stage} has no deadline to extend"


def test_extend_refuses_stage_missing_from_deadlines() -> None:
    """A feature stage absent from the given deadlines is refused by name."""
    deadlines = {s: d for s, d in _forward().items() if s != S.CLEANUP}
    message = _rejected(extend, deadlines, S.CLEANUP, START + 30 * DAY, S.IMPLEMENT, START)
    assert message == "cleanup has no deadline to extend"


def test_extend_unknown_stage_reported_first() -> None:
    """A stage without deadline is reported before a past date."""
    message = _rejected(extend, _forward(), S.DONE, START - DAY, S.IMPLEMENT, START)
    assert message == "done has no deadline to extend"


def test_extend_finished_reported_before_past_date() -> None:
    """A finished stage is reported before a past date."""
    deadlines = _forward()
    message = _rejected(extend, deadlines, S.IMPLEMENT, START - DAY, S.ROLLOUT, START)
    assert message == "implement is already finished; only rollout or later can be extended"


def test_extend_overdue_stage_to_future() -> None:
    """An overdue stage can be moved to a future date; the delta is measured from its old due date."""
    deadlines = _forward()
    now = deadlines[S.IMPLEMENT] + 3 * DAY
    new_due = now + DAY
    moved = extend(deadlines, S.IMPLEMENT, new_due, S.IMPLEMENT, now)
    assert moved[S.IMPLEMENT] == new_due
    assert moved[S.CLEANUP] - deadlines[S.CLEANUP] == 4 * DAY


# --- shift_from ------------------------------------------------------------------------------


@pytest.mark.parametrize("current", FEATURE_STAGES, ids=str)
def test_shift_from_shifts_current_and_later(current: FeatureStage) -> None:
    """The current and later stages move by delta; earlier ones stay."""
    deadlines = _forward()
    delta = timedelta(hours=30)
    moved = shift_from(deadlines, current, delta)
    index = FEATURE_STAGES.index(current)
    assert moved == {
        s: deadlines[s] + (delta if i >= index else timedelta(0)) for i, s in enumerate(FEATURE_STAGES)
    }
    assert list(moved) == list(FEATURE_STAGES)


def test_shift_from_does_not_mutate_input() -> None:
    """The original deadlines are left untouched."""
    deadlines = _forward()
    before = dict(deadlines)
    shift_from(deadlines, S.EVALUATE, DAY)
    assert deadlines == before


@pytest.mark.parametrize("current", [S.DONE, S.ABORTED], ids=str)
def test_shift_from_stage_without_deadline(current: FeatureStage) -> None:
    """From a stage without deadline nothing moves, and a copy is returned."""
    deadlines = _forward()
    moved = shift_from(deadlines, current, DAY)
    assert moved == deadlines
    assert moved is not deadlines


def test_shift_from_zero_and_negative() -> None:
    """A zero delta changes nothing; a negative one moves dates earlier."""
    deadlines = _forward()
    assert shift_from(deadlines, S.IMPLEMENT, timedelta(0)) == deadlines
    moved = shift_from(deadlines, S.ROLLOUT, -DAY)
    assert moved[S.ROLLOUT] == deadlines[S.ROLLOUT] - DAY
    assert moved[S.EVALUATE] == deadlines[S.EVALUATE]
