"""Due-date planning: per-stage durations forward from the start, or backwards from a target."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, field_validator

from model_migration.domain.errors import CommandRejected
from model_migration.domain.notes import humanize_delta
from model_migration.domain.stages import FEATURE_STAGES, FeatureStage


class StagePlan(BaseModel):
    """How long each feature stage may take. Seconds in tests and the demo, days in real life."""

    model_config = ConfigDict(frozen=True)
    implement: timedelta = timedelta(days=7)
    evaluate: timedelta = timedelta(days=3)
    rollout: timedelta = timedelta(days=4)
    cleanup: timedelta = timedelta(days=2)
    #: When set, due dates are planned backwards from it: cleanup is due then.
    target: datetime | None = None

    @field_validator("implement", "evaluate", "rollout", "cleanup")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a stage must last longer than zero")
        return value

    def duration(self, stage: FeatureStage) -> timedelta:
        value: timedelta = getattr(self, stage.value)
        return value

    @property
    def total(self) -> timedelta:
        return sum((self.duration(s) for s in FEATURE_STAGES), timedelta())


class Deadline(BaseModel):
    model_config = ConfigDict(frozen=True)
    stage: FeatureStage
    due: datetime
    extended: bool = False
    reason: str = ""


def plan_due_dates(start: datetime, plan: StagePlan) -> dict[FeatureStage, datetime]:
    """Each feature stage's due date, in stage order."""
    due: dict[FeatureStage, datetime] = {}
    if plan.target is None:
        at = start
        for stage in FEATURE_STAGES:
            at = at + plan.duration(stage)
            due[stage] = at
        return due
    at = plan.target
    for stage in reversed(FEATURE_STAGES):
        due[stage] = at
        at = at - plan.duration(stage)
    return {stage: due[stage] for stage in FEATURE_STAGES}


def due_in(deadlines: dict[FeatureStage, datetime], stage: FeatureStage) -> datetime:
    """The date that matters in ``stage``: its own due date, or the last one once past every stage."""
    return deadlines.get(stage) or max(deadlines.values())


def check_plan(start: datetime, plan: StagePlan) -> None:
    """Refuse a plan whose target leaves no room: a stage would be due before it starts."""
    if plan.target is None:
        return
    if plan.target <= start:
        raise CommandRejected(
            f"target date {plan.target:%Y-%m-%d} is in the past; pick a date after {start:%Y-%m-%d}"
        )
    earliest = start + plan.total
    if plan.target < earliest:
        raise CommandRejected(
            f"target date {plan.target:%Y-%m-%d %H:%M} is too close: the stages need "
            f"{humanize_delta(plan.total)}, so choose {earliest:%Y-%m-%d %H:%M} UTC or later"
        )


def extend(
    deadlines: dict[FeatureStage, datetime], stage: FeatureStage, new_due: datetime, current: FeatureStage, now: datetime
) -> dict[FeatureStage, datetime]:
    """Move ``stage``'s due date to ``new_due``; later stages shift by the same amount."""
    if stage not in deadlines:
        raise CommandRejected(f"{stage} has no deadline to extend")
    order = list(deadlines)
    if current in order and order.index(stage) < order.index(current):
        raise CommandRejected(f"{stage} is already finished; only {current} or later can be extended")
    if new_due <= now:
        raise CommandRejected(f"the new date {new_due:%Y-%m-%d %H:%M} is in the past")
    old = deadlines[stage]
    if new_due <= old:
        raise CommandRejected(
            f"the new date {new_due:%Y-%m-%d %H:%M} is not after the current due date {old:%Y-%m-%d %H:%M}"
        )
    delta = new_due - old
    moved = dict(deadlines)
    for later in order[order.index(stage) :]:
        moved[later] = deadlines[later] + delta
    return moved


def shift_from(
    deadlines: dict[FeatureStage, datetime], current: FeatureStage, delta: timedelta
) -> dict[FeatureStage, datetime]:
    """Shift the current and later stages, e.g. by the time spent paused."""
    order = list(deadlines)
    if current not in order:
        return dict(deadlines)
    moved = dict(deadlines)
    for stage in order[order.index(current) :]:
        moved[stage] = deadlines[stage] + delta
    return moved


__all__ = ["Deadline", "StagePlan", "check_plan", "due_in", "extend", "plan_due_dates", "shift_from"]
