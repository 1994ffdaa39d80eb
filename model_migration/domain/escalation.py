"""The escalation ladder: what fires when, relative to a stage's due date.

Only the most severe step that is due fires: a workflow that comes back after
days away posts one overdue note, not every reminder it missed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, model_validator


class EscalationKind(StrEnum):
    REMINDER = "reminder"
    DUE = "due"
    OVERDUE = "overdue"
    BLOCKED = "blocked"  # GitLab refused the engine; people are told outside GitLab
    LOOP_CAP = "loop_cap"  # evaluation failed max_loops times: the manager and AI Framework step in
    HARNESS = "harness"  # the evaluation harness gave no verdict after its retries


class EscalationStep(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: EscalationKind
    offset: timedelta  # relative to the due date; negative is before it
    repeat: timedelta | None = None
    label: str | None = None  # scoped priority label to add
    mention_manager: bool = False

    @model_validator(mode="after")
    def _positive_repeat(self) -> EscalationStep:
        if self.repeat is not None and self.repeat <= timedelta(0):
            raise ValueError("repeat must be positive")
        return self


class EscalationState(BaseModel):
    """How far up the ladder the current stage has gone (reset when the stage or its due date changes)."""

    model_config = ConfigDict(frozen=True)
    level: int = -1  # index of the last step fired
    occurrence: int = -1  # of that step, for repeating steps


class PlannedEscalation(BaseModel):
    model_config = ConfigDict(frozen=True)
    step: int
    occurrence: int
    at: datetime
    kind: EscalationKind


DEFAULT_LADDER: tuple[EscalationStep, ...] = (
    EscalationStep(kind=EscalationKind.REMINDER, offset=timedelta(days=-2)),
    EscalationStep(kind=EscalationKind.DUE, offset=timedelta(0), label="priority::2", mention_manager=True),
    EscalationStep(
        kind=EscalationKind.OVERDUE,
        offset=timedelta(days=1),
        repeat=timedelta(days=1),
        label="priority::1",
        mention_manager=True,
    ),
)


def scaled_ladder(unit: timedelta) -> tuple[EscalationStep, ...]:
    """The default ladder with one day replaced by ``unit`` (the demo and tests use seconds)."""
    factor = unit / timedelta(days=1)
    return tuple(
        step.model_copy(
            update={
                "offset": step.offset * factor,
                "repeat": step.repeat * factor if step.repeat else None,
            }
        )
        for step in DEFAULT_LADDER
    )


def check_ladder(ladder: tuple[EscalationStep, ...] | list[EscalationStep]) -> None:
    offsets = [step.offset for step in ladder]
    if offsets != sorted(offsets) or len(set(offsets)) != len(offsets):
        raise ValueError("escalation steps must be in strictly increasing offset order")


def _first(due: datetime, step: EscalationStep) -> datetime:
    return due + step.offset


def _latest_occurrence(due: datetime, step: EscalationStep, now: datetime, at_least: int) -> int:
    if step.repeat is None:
        return 0
    elapsed = now - _first(due, step)
    return max(at_least, int(elapsed / step.repeat))


def next_escalation(
    due: datetime,
    ladder: tuple[EscalationStep, ...] | list[EscalationStep],
    state: EscalationState,
    now: datetime,
) -> PlannedEscalation | None:
    """The next escalation to fire; ``at <= now`` means fire it now."""
    steps = list(ladder)
    # The most severe step already due, skipping milder ones that were missed.
    due_now = [i for i in range(state.level + 1, len(steps)) if _first(due, steps[i]) <= now]
    if due_now:
        i = due_now[-1]
        occurrence = _latest_occurrence(due, steps[i], now, 0)
        return _planned(due, steps, i, occurrence)
    candidates: list[PlannedEscalation] = []
    repeat = steps[state.level].repeat if state.level >= 0 else None
    if repeat is not None:
        step = steps[state.level]
        occurrence = state.occurrence + 1
        if _first(due, step) + repeat * occurrence <= now:
            occurrence = _latest_occurrence(due, step, now, occurrence)
        candidates.append(_planned(due, steps, state.level, occurrence))
    if state.level + 1 < len(steps):
        candidates.append(_planned(due, steps, state.level + 1, 0))
    if not candidates:
        return None
    return min(candidates, key=lambda p: (p.at, -p.step))


def _planned(due: datetime, steps: list[EscalationStep], i: int, occurrence: int) -> PlannedEscalation:
    step = steps[i]
    at = _first(due, step) + (step.repeat * occurrence if step.repeat else timedelta(0))
    return PlannedEscalation(step=i, occurrence=occurrence, at=at, kind=step.kind)


def after_firing(planned: PlannedEscalation) -> EscalationState:
    return EscalationState(level=planned.step, occurrence=planned.occurrence)
