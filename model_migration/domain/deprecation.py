"""Deprecations, planned backwards: from a provider's cutoff to the latest start of every stage.

GitLab's process sets the internal due date (the epic's) 2–4 weeks before the provider's cutoff.
From that due date, per affected feature, working backwards:

- cleanup needs at least ``cleanup`` (a day at 100 %) before the due date;
- rollout needs the rollout ladder's steps × the bake time before that;
- evaluation needs the feature's harness's expected duration before that;
- implement gets what remains between today and the latest start of evaluation.

The plan is infeasible when implement would get less than its minimum; it then says by how
much, and the deprecation starts in late mode (it escalates on day 0). Pure: ``today`` is an
argument, and every date is a calendar date (UTC).
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from model_migration.domain.catalog import Catalog
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.evaluation import HarnessKind
from model_migration.domain.models import FeatureSpec
from model_migration.domain.stages import FEATURE_STAGES, FeatureStage

FROZEN = ConfigDict(frozen=True)
MIN_LEAD, MAX_LEAD = timedelta(weeks=2), timedelta(weeks=4)
#: How long each harness usually takes to run and be read, for planning.
HARNESS_DAYS = {
    HarnessKind.EXPERIMENT_SERVICE: timedelta(days=2), HarnessKind.CI_PIPELINE: timedelta(days=2),
    HarnessKind.PROMPTFOO: timedelta(days=1), HarnessKind.IMPORTED: timedelta(days=3),
}


class DeprecationError(DomainError):
    type = ErrorType.INVALID_INPUT


class PlanRules(BaseModel):
    """The minimum each stage needs. The defaults follow GitLab's process."""

    model_config = FROZEN
    implement_min: timedelta = timedelta(days=5)
    rollout_steps: int = Field(default=6, ge=1)  # 1 → 10 → 25 → 50 → 75 → 100 %
    bake: timedelta = timedelta(days=1)
    cleanup: timedelta = timedelta(days=1)  # held at 100 % before the flag goes

    @field_validator("implement_min", "bake", "cleanup")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    def evaluation(self, feature: FeatureSpec) -> timedelta:
        return HARNESS_DAYS[feature.evaluation.harness]

    def minimum_work(self, feature: FeatureSpec) -> timedelta:
        return self.implement_min + self.evaluation(feature) + self.rollout_steps * self.bake + self.cleanup


class StageWindow(BaseModel):
    model_config = FROZEN
    stage: FeatureStage
    latest_start: date
    due: date


class FeaturePlan(BaseModel):
    model_config = FROZEN
    feature: str
    title: str
    maturity: str
    group: str
    dri: str
    harness: HarnessKind
    windows: tuple[StageWindow, ...]
    #: Days implement gets between today and the latest start of evaluation.
    implement_days: int
    #: How much implement falls short of its minimum (0 when the plan holds).
    shortfall_days: int = 0

    @property
    def feasible(self) -> bool:
        return self.shortfall_days == 0

    def window(self, stage: FeatureStage) -> StageWindow:
        return next(w for w in self.windows if w.stage == stage)


class BackwardPlan(BaseModel):
    model_config = FROZEN
    model: str
    cutoff: date
    lead_time_days: int
    due: date
    today: date
    features: tuple[FeaturePlan, ...]

    @property
    def shortfall_days(self) -> int:
        return max((f.shortfall_days for f in self.features), default=0)

    @property
    def feasible(self) -> bool:
        return self.shortfall_days == 0 and self.due > self.today

    @property
    def days_left(self) -> int:
        return (self.due - self.today).days

    def summary(self) -> str:
        """One line: the due date and whether the plan holds, with the numbers."""
        head = f"{self.model}: cutoff {self.cutoff}, due {self.due} ({self.lead_time_days} days before)"
        if self.cutoff <= self.today:
            return f"{head}; the cutoff has passed ({(self.today - self.cutoff).days} days ago): infeasible"
        if self.feasible:
            return f"{head}; {self.days_left} days left: feasible"
        late = [f.feature for f in self.features if not f.feasible]
        return f"{head}; {self.days_left} days left: infeasible by {self.shortfall_days} days ({', '.join(late)})"


def check_lead_time(lead: timedelta) -> None:
    if not MIN_LEAD <= lead <= MAX_LEAD:
        raise DeprecationError(f"lead time of {lead.days} days is outside GitLab's 2–4 weeks (14–28 days)")


def backward_plan(
    model: str, cutoff: date, features: tuple[FeatureSpec, ...], today: date,
    lead_time: timedelta = MAX_LEAD, rules: PlanRules | None = None,
) -> BackwardPlan:
    """The latest start of each stage per feature, from the due date ``cutoff − lead_time``."""
    check_lead_time(lead_time)
    if not features:
        raise DeprecationError(f"no catalog feature uses {model}: nothing to plan")
    rules = rules or PlanRules()
    due = cutoff - lead_time
    plans = []
    for f in features:
        durations = {
            FeatureStage.CLEANUP: rules.cleanup, FeatureStage.ROLLOUT: rules.rollout_steps * rules.bake,
            FeatureStage.EVALUATE: rules.evaluation(f),
        }
        windows: dict[FeatureStage, StageWindow] = {}
        end = due
        for stage in (FeatureStage.CLEANUP, FeatureStage.ROLLOUT, FeatureStage.EVALUATE):
            start = end - timedelta(days=_days(durations[stage]))
            windows[stage] = StageWindow(stage=stage, latest_start=start, due=end)
            end = start
        available = (end - today).days
        windows[FeatureStage.IMPLEMENT] = StageWindow(stage=FeatureStage.IMPLEMENT, latest_start=today, due=end)
        shortfall = max(0, _days(rules.implement_min) - available)
        plans.append(FeaturePlan(
            feature=f.name, title=f.title, maturity=str(f.maturity), group=f.group, dri=f.dri, harness=f.evaluation.harness,
            windows=tuple(windows[s] for s in FEATURE_STAGES), implement_days=max(0, available), shortfall_days=shortfall,
        ))
    return BackwardPlan(
        model=model, cutoff=cutoff, lead_time_days=lead_time.days, due=due, today=today, features=tuple(plans),
    )


def _days(span: timedelta) -> int:
    """Whole calendar days, rounded up: a stage that needs 26 hours needs two days on the calendar."""
    return -(-span // timedelta(days=1))


# -- the escalation calendar ----------------------------------------------------------------


class Audience(StrEnum):
    LATE_DRIS = "late features' DRIs"
    MANAGERS = "managers"
    AI_FRAMEWORK = "AI Framework"
    EVERYONE = "DRIs, managers and AI Framework"


class CalendarStep(BaseModel):
    """One escalation, relative to the epic's due date (``T``) or to the cutoff."""

    model_config = FROZEN
    name: str
    offset: timedelta
    from_cutoff: bool = False
    audience: Audience
    label: str | None = None
    repeat: timedelta | None = None
    notify: bool = False  # also a message through the notifier


DEFAULT_CALENDAR: tuple[CalendarStep, ...] = (
    CalendarStep(name="reminder T−14d", offset=timedelta(days=-14), audience=Audience.LATE_DRIS),
    CalendarStep(name="reminder T−7d", offset=timedelta(days=-7), audience=Audience.LATE_DRIS),
    CalendarStep(name="managers T−2d", offset=timedelta(days=-2), audience=Audience.MANAGERS, label="priority::2"),
    CalendarStep(name="due", offset=timedelta(0), audience=Audience.AI_FRAMEWORK, label="priority::1"),
    CalendarStep(
        name="critical", offset=timedelta(days=-7), from_cutoff=True, audience=Audience.EVERYONE, label="severity::2",
        repeat=timedelta(days=1), notify=True,
    ),
)


class CalendarEntry(BaseModel):
    model_config = FROZEN
    on: date
    name: str
    audience: Audience
    label: str | None = None
    notify: bool = False


def escalation_calendar(plan: BackwardPlan, steps: tuple[CalendarStep, ...] = DEFAULT_CALENDAR) -> tuple[CalendarEntry, ...]:
    """Every escalation from today to the cutoff, in date order; steps already past are left out.

    A plan that is infeasible (late mode) escalates on day 0 as well."""
    entries: list[CalendarEntry] = []
    if not plan.feasible:
        entries.append(CalendarEntry(on=plan.today, name="late mode: " + plan.summary(), audience=Audience.EVERYONE,
                                     label="priority::1", notify=True))
    for step in steps:
        anchor = plan.cutoff if step.from_cutoff else plan.due
        first = anchor + step.offset
        days = [first]
        if step.repeat is not None:
            span = _days(step.repeat)
            days = [first + timedelta(days=span * i) for i in range(max(1, (plan.cutoff - first).days // span + 1))]
        for day in days:
            if day >= plan.today:
                entries.append(CalendarEntry(on=day, name=step.name, audience=step.audience, label=step.label, notify=step.notify))
    return tuple(sorted(entries, key=lambda e: e.on))


# -- the deprecation's input ---------------------------------------------------------------------


class DeprecationRequest(BaseModel):
    """What AI Framework (or the deprecation watch) asks for: retire ``model`` by ``cutoff``."""

    model_config = FROZEN
    model: str  # a gitlab_identifier from the catalog
    deprecation_date: date
    cutoff: date
    announcement_url: str = ""
    recommended: str | None = None
    candidates: tuple[str, ...] = ()
    lead_time: timedelta = MAX_LEAD


def check_request(request: DeprecationRequest, catalog: Catalog, today: date) -> tuple[FeatureSpec, ...]:
    """The affected features, or the first problem as one line; nothing is started before this passes.

    A cutoff closer than the lead time plus the minimum work is not refused: the deprecation
    starts in late mode (see ``BackwardPlan.feasible``)."""
    if request.cutoff <= today:
        raise DeprecationError(f"the cutoff {request.cutoff} is not after today ({today}): there is nothing left to plan")
    if request.deprecation_date > request.cutoff:
        raise DeprecationError(f"the deprecation date {request.deprecation_date} is after the cutoff {request.cutoff}")
    check_lead_time(request.lead_time)
    try:
        retiring = catalog.model(request.model)
    except DomainError as err:
        raise DeprecationError(err.message) from None
    features = tuple(catalog.features_on(retiring.gitlab_identifier))
    if not features:
        raise DeprecationError(f"no catalog feature uses {retiring.gitlab_identifier}: nothing to replace")
    named = [request.recommended] if request.recommended else []
    for candidate in (*named, *request.candidates):
        try:
            model = catalog.model(candidate)
        except DomainError:
            raise DeprecationError(f"unknown replacement candidate {candidate!r}") from None
        if model.gitlab_identifier == retiring.gitlab_identifier:
            raise DeprecationError(f"{candidate} is the model being retired, not a replacement")
    if request.announcement_url and not request.announcement_url.startswith(("http://", "https://")):
        raise DeprecationError(f"announcement {request.announcement_url!r} is not an http(s) URL")
    return features
