"""What the rollout's issues are rendered from (``rollout_templates.py``), pure and serialisable.

- ``RolloutPlan``: what does not change step by step (feature, models, ladder, analysis, links);
- ``StepView``: one ladder step as it happened (when, how it went, whether its flag change was
  made), built from a rollout's ``StepRecord``s by ``step_views``;
- ``chatops_command``: a step as GitLab's ChatOps writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from model_migration.domain.models import FeatureSpec, ModelDefinition
from model_migration.domain.notes import DASH, fmt_date, fmt_datetime, mention
from model_migration.domain.rollout import DEFAULT_ANALYSIS, DEFAULT_LADDER, HOLD, PRODUCTION, Audience, LadderStep, MetricTemplate, Outcome
from model_migration.domain.rollout_machine import Phase, StepRecord
from model_migration.domain.stages import FeatureStage

FROZEN = ConfigDict(frozen=True)
TEAM_MEMBERS_GROUP = "gitlab_team_members"  # the Flipper group GitLab registers for its team members


class StepView(BaseModel):
    """One ladder step as the issues show it: when it happened (a datetime, a date or None), how
    it went, and whether its flag change was made (its checkbox ticked)."""

    model_config = FROZEN
    at: datetime | date | None = None
    status: str = ""
    done: bool = False


class RolloutPlan(BaseModel):
    """Everything the two issues say that does not change step by step; links are optional."""

    model_config = FROZEN
    feature: FeatureSpec
    model: ModelDefinition
    replaced: ModelDefinition | None = None
    ladder: tuple[LadderStep, ...] = DEFAULT_LADDER
    analysis: tuple[MetricTemplate, ...] = DEFAULT_ANALYSIS
    analysis_window: timedelta = timedelta(minutes=5)
    hold: timedelta = HOLD
    due: dict[FeatureStage, date] = {}
    #: The feature's stages completed, ticked in the plan's checklist.
    stages_done: frozenset[FeatureStage] = frozenset()
    tracking_issue_url: str = ""
    flag_issue_url: str = ""
    model_url: str = ""
    prometheus_url: str = ""
    grafana_url: str = ""
    feedback_issue_url: str = ""
    slack_channel: str = ""
    #: Markdown, e.g. the gate's summary and table (``gate_report.py``), once the gate decided.
    evaluation: str = ""
    legal_notes: str = ""
    known_issues: tuple[str, ...] = ()
    release_announcement: str = ""

    @property
    def baseline_model(self) -> str:
        """The old model's gitlab_identifier: what the analysis compares the new one with."""
        return self.replaced.gitlab_identifier if self.replaced is not None else self.feature.current_model

    @property
    def current(self) -> str:
        if self.replaced is not None:
            return f"`{self.replaced.gitlab_identifier}` ({self.replaced.name})"
        return f"`{self.feature.current_model}`"

    @property
    def shortest_bake(self) -> timedelta:
        return min((s.bake for s in self.ladder), default=timedelta())

    def views(self, steps: Sequence[StepView]) -> list[StepView]:
        """One view per ladder step: missing ones are not reached yet, extra ones are ignored."""
        return [steps[i] if i < len(steps) else StepView() for i in range(len(self.ladder))]


def box(done: bool) -> str:
    return "- [x]" if done else "- [ ]"


def when(value: date | None) -> str:
    """A datetime to the minute (UTC), a date as ISO, a dash when unknown."""
    return fmt_datetime(value) if isinstance(value, datetime) else fmt_date(value)


def inline(text: str) -> str:
    """Text on one line (a checklist item, a table cell)."""
    return " ".join(text.split())


def link(url: str, text: str, missing: str = DASH) -> str:
    return f"[{text}]({url})" if url else missing


def chatops_option(environment: str) -> str:
    """``staging`` → ``--staging``: ChatOps names each GitLab.com environment by an option."""
    return "--" + environment.replace("_", "-")


def chatops_command(flag: str, step: LadderStep) -> str:
    """One ladder step's ChatOps command, as GitLab's roll-out template writes them: production
    needs no option; 100 % is ``true`` (enabled for everyone, not a percentage gate)."""
    where = "" if step.environment == PRODUCTION else " " + chatops_option(step.environment)
    if step.audience == Audience.TEAM_MEMBERS:
        return f"/chatops run feature set --feature-group={TEAM_MEMBERS_GROUP} {flag} true{where}"
    if step.percentage >= 100:
        return f"/chatops run feature set {flag} true{where}"
    return f"/chatops run feature set {flag} {step.percentage} --actors{where}"


def environments(ladder: Sequence[LadderStep]) -> list[str]:
    """The ladder's non-production environments in ladder order, then production."""
    return [*dict.fromkeys(s.environment for s in ladder if s.environment != PRODUCTION), PRODUCTION]


def step_views(
    ladder: Sequence[LadderStep], records: Sequence[StepRecord], *, phase: Phase | None = None,
    previous: Sequence[StepView] = (),
) -> tuple[StepView, ...]:
    """The views from one rollout's step records and phase. A step with no record keeps its
    ``previous`` view (an earlier rollout's, before a retry from the failed step), or is
    ``skipped`` when this rollout went past it (``promote_full``)."""
    mine: dict[int, list[StepRecord]] = {}
    for record in records:
        mine.setdefault(record.step, []).append(record)
    first, reached = min(mine, default=0), max(mine, default=-1)
    views: list[StepView] = []
    for i in range(len(ladder)):
        applied = [r.applied_at for r in mine.get(i, []) if r.applied_at is not None]
        if applied:
            views.append(StepView(at=applied[0], status=_status(mine[i][-1], phase if i == reached else None), done=True))
        elif i < len(previous) and previous[i] != StepView():
            views.append(previous[i])
        else:
            views.append(StepView(status="skipped" if first <= i < reached else ""))
    return tuple(views)


def _status(record: StepRecord, phase: Phase | None) -> str:
    if record.outcome == Outcome.FAILED:
        return "rolled back"
    if record.ended_at is not None:
        return "successful" if record.outcome == Outcome.SUCCESSFUL else f"promoted by {mention(record.ended_by)}"
    if phase == Phase.ABORTED:
        return "aborted"
    if phase == Phase.PAUSED:
        return "paused: inconclusive" if record.outcome == Outcome.INCONCLUSIVE else "paused"
    return "baking"
