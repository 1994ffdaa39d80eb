"""The escalation ladder: what fires when, and what a late workflow skips."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from model_migration.domain.escalation import (
    DEFAULT_LADDER,
    EscalationKind,
    EscalationState,
    EscalationStep,
    PlannedEscalation,
    after_firing,
    check_ladder,
    next_escalation,
    scaled_ladder,
)

K = EscalationKind
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
DUE = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
FRESH = EscalationState()

Fired = tuple[EscalationKind, int, datetime, datetime]  # kind, occurrence, planned at, fired at


def _simulate(
    ladder: Sequence[EscalationStep],
    *,
    due: datetime = DUE,
    start: datetime,
    end: datetime,
    tick: timedelta,
    state: EscalationState = FRESH,
) -> list[Fired]:
    """Step the clock from ``start`` to ``end`` and fire whatever is planned at or before now."""
    fired: list[Fired] = []
    now = start
    while now <= end:
        # Bounded so that a planner that never advances fails instead of hanging.
        for _ in range(100):
            planned = next_escalation(due, ladder, state, now)
            if planned is None or planned.at > now:
                break
            fired.append((planned.kind, planned.occurrence, planned.at, now))
            state = after_firing(planned)
        else:
            pytest.fail(f"more than 100 escalations fired at {now}; the planner is not advancing")
        now += tick
    return fired


def _kinds(fired: list[Fired]) -> list[tuple[EscalationKind, int]]:
    return [(kind, occurrence) for kind, occurrence, _, _ in fired]


def _default_sequence(overdue_count: int) -> list[tuple[EscalationKind, int]]:
    return [(K.REMINDER, 0), (K.DUE, 0)] + [(K.OVERDUE, n) for n in range(overdue_count)]


# --- the default ladder ----------------------------------------------------------------------


def test_default_ladder_shape() -> None:
    """Reminder 2 days before, due at the due date, overdue daily from 1 day after."""
    assert [(s.kind, s.offset, s.repeat) for s in DEFAULT_LADDER] == [
        (K.REMINDER, -2 * DAY, None),
        (K.DUE, timedelta(0), None),
        (K.OVERDUE, DAY, DAY),
    ]
    assert [(s.label, s.mention_manager) for s in DEFAULT_LADDER] == [
        (None, False),
        ("priority::2", True),
        ("priority::1", True),
    ]
    check_ladder(DEFAULT_LADDER)


def test_stepping_30_days_hourly_fires_the_exact_sequence() -> None:
    """Hour by hour over 30 days: reminder, due, then one overdue a day, each on time and only once."""
    start = DUE - 5 * DAY
    end = start + 30 * DAY  # DUE + 25 days
    fired = _simulate(DEFAULT_LADDER, start=start, end=end, tick=HOUR)
    # Overdue occurrence n is due at DUE + (n + 1) days: n = 0 .. 24 fit before DUE + 25 days.
    assert _kinds(fired) == _default_sequence(25)
    expected_at = [DUE - 2 * DAY, DUE] + [DUE + (n + 1) * DAY for n in range(25)]
    assert [at for _, _, at, _ in fired] == expected_at
    assert all(at == now for _, _, at, now in fired), "hourly ticks aligned with the due date fire on time"
    assert len(set(_kinds(fired))) == len(fired), "no (kind, occurrence) fires twice"


def test_stepping_with_misaligned_ticks_fires_each_once_at_the_next_tick() -> None:
    """With ticks 17 minutes off the hour each escalation fires once, at the first tick after it is due."""
    start = DUE - 5 * DAY + timedelta(minutes=17)
    fired = _simulate(DEFAULT_LADDER, start=start, end=start + 30 * DAY, tick=HOUR)
    assert _kinds(fired) == _default_sequence(25)
    for _, _, at, now in fired:
        assert at <= now < at + HOUR
    assert len(set(_kinds(fired))) == len(fired)


@pytest.mark.parametrize("tick", [timedelta(hours=7), timedelta(hours=25), timedelta(days=3, hours=5)])
def test_coarse_ticks_skip_but_never_repeat_or_go_back(tick: timedelta) -> None:
    """With coarse ticks escalations may be skipped, but never fire twice, and only grow more severe."""
    start = DUE - 5 * DAY
    fired = _simulate(DEFAULT_LADDER, start=start, end=start + 30 * DAY, tick=tick)
    pairs = _kinds(fired)
    assert len(set(pairs)) == len(pairs)
    order = [(list(K).index(kind), occurrence) for kind, occurrence in pairs]
    assert order == sorted(order)
    assert pairs[-1][0] == K.OVERDUE
    for _, _, at, now in fired:
        assert at <= now < at + tick


def test_fresh_state_before_reminder_plans_the_reminder() -> None:
    """Long before the due date the next escalation is the reminder, not yet due."""
    planned = next_escalation(DUE, DEFAULT_LADDER, FRESH, DUE - 10 * DAY)
    assert planned == PlannedEscalation(step=0, occurrence=0, at=DUE - 2 * DAY, kind=K.REMINDER)


def test_reminder_fires_exactly_at_its_time() -> None:
    """At due - 2 days the reminder is due now."""
    planned = next_escalation(DUE, DEFAULT_LADDER, FRESH, DUE - 2 * DAY)
    assert planned is not None and planned.kind == K.REMINDER and planned.at == DUE - 2 * DAY


def test_late_workflow_skips_milder_steps() -> None:
    """Back at due + 3d5h with a fresh state only overdue occurrence 2, due at due + 3d, fires."""
    now = DUE + 3 * DAY + 5 * HOUR
    planned = next_escalation(DUE, DEFAULT_LADDER, FRESH, now)
    assert planned == PlannedEscalation(step=2, occurrence=2, at=DUE + 3 * DAY, kind=K.OVERDUE)
    following = next_escalation(DUE, DEFAULT_LADDER, after_firing(planned), now)
    assert following == PlannedEscalation(step=2, occurrence=3, at=DUE + 4 * DAY, kind=K.OVERDUE)


def test_late_workflow_between_due_and_overdue_fires_due_only() -> None:
    """Back at due + 5h having missed the reminder, only the due step fires."""
    now = DUE + 5 * HOUR
    planned = next_escalation(DUE, DEFAULT_LADDER, FRESH, now)
    assert planned is not None and (planned.kind, planned.occurrence, planned.at) == (K.DUE, 0, DUE)
    following = next_escalation(DUE, DEFAULT_LADDER, after_firing(planned), now)
    assert following is not None and (following.kind, following.occurrence) == (K.OVERDUE, 0)
    assert following.at == DUE + DAY > now


def test_late_workflow_skips_missed_repeats() -> None:
    """After overdue occurrence 0, coming back at due + 5d3h jumps to occurrence 4 (due + 5d)."""
    state = EscalationState(level=2, occurrence=0)
    planned = next_escalation(DUE, DEFAULT_LADDER, state, DUE + 5 * DAY + 3 * HOUR)
    assert planned == PlannedEscalation(step=2, occurrence=4, at=DUE + 5 * DAY, kind=K.OVERDUE)


def test_repeat_not_yet_due_plans_the_next_occurrence() -> None:
    """Right after overdue occurrence 1 fired, the next is occurrence 2 one day later."""
    state = EscalationState(level=2, occurrence=1)
    planned = next_escalation(DUE, DEFAULT_LADDER, state, DUE + 2 * DAY + HOUR)
    assert planned == PlannedEscalation(step=2, occurrence=2, at=DUE + 3 * DAY, kind=K.OVERDUE)


def test_after_firing_records_step_and_occurrence() -> None:
    """after_firing stores the fired step index and occurrence."""
    planned = PlannedEscalation(step=2, occurrence=7, at=DUE, kind=K.OVERDUE)
    assert after_firing(planned) == EscalationState(level=2, occurrence=7)


def test_fresh_state_is_before_the_first_step() -> None:
    """A fresh state has fired nothing."""
    assert (FRESH.level, FRESH.occurrence) == (-1, -1)


# --- ladders without repeats, custom ladders ---------------------------------------------------


def test_ladder_without_repeat_ends() -> None:
    """A ladder whose last step does not repeat returns None once every step has fired."""
    ladder = (
        EscalationStep(kind=K.REMINDER, offset=-DAY),
        EscalationStep(kind=K.DUE, offset=timedelta(0)),
    )
    fired = _simulate(ladder, start=DUE - 3 * DAY, end=DUE + 30 * DAY, tick=HOUR)
    assert _kinds(fired) == [(K.REMINDER, 0), (K.DUE, 0)]
    assert next_escalation(DUE, ladder, EscalationState(level=1, occurrence=0), DUE + 365 * DAY) is None


def test_empty_ladder_never_fires() -> None:
    """An empty ladder plans nothing."""
    assert next_escalation(DUE, (), FRESH, DUE + DAY) is None


def test_repeating_step_before_next_step_yields_to_it_on_a_tie() -> None:
    """When a repeat and the next step fall at the same time, the next (more severe) step wins."""
    ladder = (
        EscalationStep(kind=K.REMINDER, offset=-2 * DAY, repeat=DAY),
        EscalationStep(kind=K.DUE, offset=timedelta(0)),
    )
    fired = _simulate(ladder, start=DUE - 3 * DAY, end=DUE + 10 * DAY, tick=HOUR)
    assert _kinds(fired) == [(K.REMINDER, 0), (K.REMINDER, 1), (K.DUE, 0)]
    assert [at for _, _, at, _ in fired] == [DUE - 2 * DAY, DUE - DAY, DUE]


def test_ladder_accepts_a_list() -> None:
    """A list ladder plans the same as the tuple."""
    now = DUE + 3 * DAY + 5 * HOUR
    assert next_escalation(DUE, list(DEFAULT_LADDER), FRESH, now) == next_escalation(
        DUE, DEFAULT_LADDER, FRESH, now
    )


# --- scaled_ladder ---------------------------------------------------------------------------


@pytest.mark.parametrize("unit", [timedelta(seconds=1), timedelta(minutes=1), HOUR, DAY], ids=str)
def test_scaled_ladder_scales_offsets_and_repeats(unit: timedelta) -> None:
    """One day becomes ``unit``: offsets and repeats scale; kinds, labels and mentions stay."""
    ladder = scaled_ladder(unit)
    assert [s.offset for s in ladder] == [-2 * unit, timedelta(0), unit]
    assert [s.repeat for s in ladder] == [None, None, unit]
    assert [(s.kind, s.label, s.mention_manager) for s in ladder] == [
        (s.kind, s.label, s.mention_manager) for s in DEFAULT_LADDER
    ]
    check_ladder(ladder)


def test_scaled_ladder_leaves_default_untouched() -> None:
    """Scaling returns new steps and does not change DEFAULT_LADDER."""
    scaled_ladder(timedelta(seconds=1))
    assert DEFAULT_LADDER[2].offset == DAY and DEFAULT_LADDER[2].repeat == DAY


def test_scaled_ladder_fires_the_same_sequence_in_seconds() -> None:
    """A ladder scaled to seconds, stepped second by second, fires the same sequence as the default."""
    second = timedelta(seconds=1)
    ladder = scaled_ladder(second)
    fired = _simulate(ladder, start=DUE - 5 * second, end=DUE + 25 * second, tick=second)
    assert _kinds(fired) == _default_sequence(25)
    assert all(at == now for _, _, at, now in fired)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offsets",
    [[DAY, timedelta(0)], [timedelta(0), timedelta(0)], [-DAY, DAY, timedelta(0)], [-DAY, -DAY, DAY]],
    ids=["descending", "duplicate", "unsorted", "duplicate-first"],
)
def test_check_ladder_refuses_unsorted_or_duplicate(offsets: list[timedelta]) -> None:
    """Steps must be in strictly increasing offset order."""
    ladder = [EscalationStep(kind=K.OVERDUE, offset=o) for o in offsets]
    with pytest.raises(ValueError, match="^escalation steps must be in strictly increasing offset order$"):
        check_ladder(ladder)


def test_check_ladder_accepts_increasing_and_empty() -> None:
    """Strictly increasing ladders, and the empty ladder, pass."""
    check_ladder([])
    check_ladder([EscalationStep(kind=K.DUE, offset=o) for o in (-3 * DAY, -HOUR, timedelta(0), DAY)])


@pytest.mark.parametrize("repeat", [timedelta(0), -HOUR], ids=["zero", "negative"])
def test_step_refuses_non_positive_repeat(repeat: timedelta) -> None:
    """A repeat of zero or less is refused when the step is built."""
    with pytest.raises(ValidationError, match="repeat must be positive"):
        EscalationStep(kind=K.OVERDUE, offset=DAY, repeat=repeat)


def test_step_accepts_positive_or_no_repeat() -> None:
    """A positive repeat or none is fine."""
    assert EscalationStep(kind=K.OVERDUE, offset=DAY, repeat=timedelta(microseconds=1)).repeat
    assert EscalationStep(kind=K.OVERDUE, offset=DAY).repeat is None


def test_models_are_frozen() -> None:
    """Steps and states cannot be changed in place."""
    with pytest.raises(ValidationError):
        DEFAULT_LADDER[0].offset = timedelta(0)  # type: ignore[misc]
    with pytest.raises(ValidationError):
        FRESH.level = 3  # type: ignore[misc]
