"""A running deprecation's rules: its clock, which features are late, and what each escalation says.

The backward plan and the escalation calendar are in calendar days. ``PlanClock`` maps a plan
day to the workflow's time: a real day in production, a fraction of a second in a rehearsal
(``--day-seconds``), so the same plan runs in seconds on the dev server or the time-skipping one.

A feature is **late** on a day when it is in an earlier stage than its backward plan has it in
on that day. A finished feature (done or aborted) is never late: it gets no more escalations.
Pure: every date and instant is an argument.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict

from model_migration.domain.deprecation import Audience, BackwardPlan, CalendarEntry, FeaturePlan
from model_migration.domain.notes import fmt_date, mention
from model_migration.domain.stages import FEATURE_STAGES, FeatureStage

FROZEN = ConfigDict(frozen=True)
DAY = timedelta(days=1)
AI_FRAMEWORK = "ai-framework"


class PlanClock(BaseModel):
    """Plan days ↔ workflow instants. With real days, a plan day starts at midnight UTC."""

    model_config = FROZEN
    origin: datetime  # the instant plan day ``today`` starts
    today: date
    day: timedelta = DAY

    @classmethod
    def starting(cls, now: datetime, day: timedelta = DAY) -> PlanClock:
        if day == DAY:
            return cls(origin=datetime.combine(now.date(), time(), tzinfo=UTC), today=now.date(), day=day)
        return cls(origin=now, today=now.date(), day=day)

    def at(self, on: date) -> datetime:
        return self.origin + (on - self.today).days * self.day

    def date_of(self, now: datetime) -> date:
        return self.today + timedelta(days=(now - self.origin) // self.day)


def planned_stage(plan: FeaturePlan, on: date) -> FeatureStage:
    """The stage the backward plan has the feature in on ``on``: the last one whose latest start has come."""
    stage = FeatureStage.IMPLEMENT
    for window in plan.windows:
        if window.latest_start <= on:
            stage = window.stage
    if on >= plan.window(FeatureStage.CLEANUP).due:
        return FeatureStage.DONE
    return stage


def is_late(plan: FeaturePlan, stage: FeatureStage, on: date) -> bool:
    if stage.terminal:
        return False
    should = planned_stage(plan, on)
    order = [*FEATURE_STAGES, FeatureStage.DONE]
    return order.index(stage) < order.index(should)


def late_features(plan: BackwardPlan, stages: dict[str, FeatureStage], on: date) -> tuple[FeaturePlan, ...]:
    return tuple(f for f in plan.features if is_late(f, stages.get(f.feature, FeatureStage.IMPLEMENT), on))


def targets(entry: CalendarEntry, plan: BackwardPlan, stages: dict[str, FeatureStage], on: date) -> tuple[FeaturePlan, ...]:
    """The features an escalation speaks to: the late ones; on day 0 of late mode, every unfinished one."""
    if entry.name.startswith("late mode"):
        return tuple(f for f in plan.features if not stages.get(f.feature, FeatureStage.IMPLEMENT).terminal)
    return late_features(plan, stages, on)


def audience(entry: CalendarEntry, feature: FeaturePlan, manager: str) -> tuple[str, ...]:
    """Who is mentioned on the feature's issue."""
    if entry.audience == Audience.LATE_DRIS:
        return (feature.dri,)
    if entry.audience == Audience.MANAGERS:
        return (feature.dri, manager)
    if entry.audience == Audience.AI_FRAMEWORK:
        return (feature.dri, manager, AI_FRAMEWORK)
    return tuple(dict.fromkeys((feature.dri, manager, AI_FRAMEWORK)))


def feature_note(entry: CalendarEntry, plan: BackwardPlan, feature: FeaturePlan, stage: FeatureStage, manager: str, on: date) -> str:
    """The escalation on a late feature's issue: where it is, where the plan has it, and the dates."""
    should = planned_stage(feature, on)
    people = " ".join(mention(p) for p in audience(entry, feature, manager))
    return "\n".join([
        f"**Deprecation escalation ({entry.name})**: {plan.model} is retired on **{fmt_date(plan.cutoff)}**; "
        f"this feature is due by **{fmt_date(plan.due)}**.",
        "",
        f"- Now in: {stage}; the backward plan has it in: {should} by {fmt_date(on)}",
        f"- Latest starts: evaluate {fmt_date(feature.window(FeatureStage.EVALUATE).latest_start)}, "
        f"roll out {fmt_date(feature.window(FeatureStage.ROLLOUT).latest_start)}, "
        f"clean up {fmt_date(feature.window(FeatureStage.CLEANUP).latest_start)}",
        f"- Days to the due date: {(plan.due - on).days}; to the cutoff: {(plan.cutoff - on).days}",
        "",
        f"{people} please move this feature forward or say what blocks it.",
    ])


def epic_note(entry: CalendarEntry, plan: BackwardPlan, late: tuple[FeaturePlan, ...], stages: dict[str, FeatureStage], on: date) -> str:
    """The escalation on the epic, for AI Framework: every late feature in one list."""
    lines = [
        f"**Deprecation escalation ({entry.name})** on {fmt_date(on)}: {plan.model} retires {fmt_date(plan.cutoff)}, "
        f"due {fmt_date(plan.due)}. {mention(AI_FRAMEWORK)}",
        "",
    ]
    if entry.name.startswith("late mode"):
        lines += [plan.summary(), ""]
    lines += [
        f"- {f.title} (`{f.feature}`): in {stages.get(f.feature, FeatureStage.IMPLEMENT)}, planned {planned_stage(f, on)}; "
        f"DRI {mention(f.dri)}" + (f"; {f.shortfall_days} days short" if f.shortfall_days else "")
        for f in late
    ]
    return "\n".join(lines)


class FiredEntry(BaseModel):
    """A calendar escalation that came: when, and whom it reached (no one when nobody was late)."""

    model_config = FROZEN
    on: date
    name: str
    features: tuple[str, ...] = ()
    label: str | None = None

    @property
    def key(self) -> tuple[date, str]:
        return self.on, self.name


class FeatureResult(BaseModel):
    model_config = FROZEN
    feature: str
    title: str
    stage: FeatureStage
    outcome: str = ""
    finished_on: date | None = None


def closing_summary(plan: BackwardPlan, replacement: str, results: tuple[FeatureResult, ...]) -> str:
    """The epic's last note: per feature the outcome and the date, and whether it beat the due date."""
    lines = [
        f"**Deprecation of {plan.model} finished.** Replacement: `{replacement or 'none'}`. "
        f"Due {fmt_date(plan.due)}, cutoff {fmt_date(plan.cutoff)}.",
        "",
        "| Feature | Outcome | Finished | Before the due date |",
        "|---|---|---|---|",
    ]
    for r in results:
        before = "yes" if r.finished_on is not None and r.finished_on <= plan.due else "no"
        lines.append(f"| {r.title} | {r.outcome or r.stage} | {fmt_date(r.finished_on)} | {before} |")
    return "\n".join(lines)
