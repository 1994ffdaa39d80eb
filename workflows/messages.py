"""Payloads of every workflow input, update, signal, query and result.

New fields always get defaults so that older workers decode newer payloads.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from model_migration.domain.deadlines import Deadline, StagePlan
from model_migration.domain.escalation import DEFAULT_LADDER, EscalationKind, EscalationStep
from model_migration.domain.models import FeatureSpec, IssueRef, ModelDefinition
from model_migration.domain.stages import Stage

FROZEN = ConfigDict(frozen=True)
DEFAULT_ROLLOUT_LADDER = (1, 10, 25, 50, 75, 100)


#: The signal a feature child sends its parent; one name shared by sender and receiver.
FEATURE_PROGRESS = "feature_progress"


def migration_id(model: ModelDefinition) -> str:
    return f"migration:{model.key}"


def feature_workflow_id(migration: str, feature: str) -> str:
    return f"{migration}:feature:{feature}"


# -- inputs and results ------------------------------------------------------------------


class Tunables(BaseModel):
    """Per-run durations and ladders; tests and the demo pass seconds."""

    model_config = FROZEN
    plan: StagePlan = Field(default_factory=StagePlan)
    ladder: tuple[EscalationStep, ...] = DEFAULT_LADDER
    rollout_ladder: tuple[int, ...] = DEFAULT_ROLLOUT_LADDER
    activity_timeout: timedelta = timedelta(seconds=30)
    #: How often init checks whether the model configuration merge request was merged.
    merge_poll: timedelta = timedelta(minutes=30)


class MigrationInput(BaseModel):
    model_config = FROZEN
    model: ModelDefinition
    replaced: ModelDefinition | None = None
    features: tuple[FeatureSpec, ...]
    tunables: Tunables = Field(default_factory=Tunables)
    started_by: str = "ai-framework"
    #: Where the plan's clock starts: the starter's time, so that the search attributes it
    #: passes at start carry the same due date the workflow plans. None: the workflow's start.
    planned_from: datetime | None = None
    #: 0 for the first run of this migration id; a deliberate ``start --rerun`` counts up, and
    #: every GitLab marker carries it, so a rerun opens new issues instead of reusing closed ones.
    rerun: int = 0


#: Behaviour that only workflows started after a change should get is keyed on the input's
#: ``revision``: the start event holds it, so a replay takes the same branch as the original
#: run and no patch marker is needed. (``workflow.patched`` stays for changes that running
#: workflows must pick up; each patch marker also costs the run a search-attribute upsert.)
#: Starters pass ``FEATURE_REVISION``; older histories read as 1.
#:
#: 2. One escalation timer per planned escalation, kept across commands that do not move it.
FEATURE_REVISION = 2


class FeatureMigrationInput(BaseModel):
    model_config = FROZEN
    migration_id: str
    feature: FeatureSpec
    model: ModelDefinition
    replaced: ModelDefinition | None = None
    tunables: Tunables = Field(default_factory=Tunables)
    tracking_issue: IssueRef | None = None
    parent_id: str | None = None
    started_by: str = "ai-framework"
    #: As ``MigrationInput.planned_from``; the parent passes its own clock when it starts the child.
    planned_from: datetime | None = None
    #: The behaviour this run was started with; see ``FEATURE_REVISION``.
    revision: int = 1


class FeatureOutcome(BaseModel):
    model_config = FROZEN
    feature: str
    title: str = ""
    stage: Stage
    outcome: str = ""
    issue_url: str = ""
    escalations: int = 0


class MigrationResult(BaseModel):
    model_config = FROZEN
    migration_id: str
    stage: Stage
    features: tuple[FeatureOutcome, ...] = ()
    tracking_issue_url: str = ""
    escalations: int = 0
    problems: tuple[str, ...] = ()


# -- updates (human commands) ------------------------------------------------------------


class Verdict(StrEnum):
    PASS = "pass"
    INCONCLUSIVE = "inconclusive"
    FAIL = "fail"


class CompleteStage(BaseModel):
    model_config = FROZEN
    stage: Stage
    actor: str
    prompt_version: str | None = None
    flag_name: str | None = None
    note: str = ""


class MetricResult(BaseModel):
    model_config = FROZEN
    name: str
    baseline: float
    candidate: float
    higher_is_better: bool = True


class ReportEvaluation(BaseModel):
    model_config = FROZEN
    actor: str
    verdict: Verdict
    metrics: tuple[MetricResult, ...] = ()
    dataset: str = ""
    summary: str = ""
    url: str = ""


class ReportRollout(BaseModel):
    model_config = FROZEN
    actor: str
    percentage: int
    rollback: bool = False
    note: str = ""


class Pause(BaseModel):
    model_config = FROZEN
    actor: str
    reason: str = ""


class Resume(BaseModel):
    model_config = FROZEN
    actor: str
    note: str = ""


class Abort(BaseModel):
    model_config = FROZEN
    actor: str
    reason: str


class ExtendDeadline(BaseModel):
    model_config = FROZEN
    actor: str
    stage: Stage
    new_date: datetime
    reason: str


class CommandResult(BaseModel):
    model_config = FROZEN
    stage: Stage
    message: str
    #: The update that produced this result and its ``command_digest``: a request id reused
    #: for another command gets the first command's result back, and the sender can tell.
    command: str = ""
    digest: str = ""


# -- signals (machine events) ------------------------------------------------------------


class FeatureProgress(BaseModel):
    """A feature child tells its parent where it is."""

    model_config = FROZEN
    feature: str
    stage: Stage
    issue_url: str = ""
    eta: datetime | None = None
    escalations: int = 0
    outcome: str = ""


class ParentCommand(BaseModel):
    """The parent passes pause, resume and abort on to its children."""

    model_config = FROZEN
    kind: str  # "pause" | "resume" | "abort"
    actor: str
    reason: str = ""


# -- query -------------------------------------------------------------------------------


class Transition(BaseModel):
    model_config = FROZEN
    from_stage: Stage | None = None
    to_stage: Stage
    at: datetime
    actor: str
    detail: str = ""


class FiredEscalation(BaseModel):
    model_config = FROZEN
    stage: Stage
    kind: EscalationKind
    at: datetime
    occurrence: int = 0


class NextEscalation(BaseModel):
    model_config = FROZEN
    stage: Stage
    kind: EscalationKind
    at: datetime


class PendingAction(BaseModel):
    model_config = FROZEN
    action: str
    owner: str
    command: str = ""


class RolloutStep(BaseModel):
    model_config = FROZEN
    percentage: int
    at: datetime
    actor: str
    rollback: bool = False


class Status(BaseModel):
    """Everything a person needs to know about one workflow, parent or feature."""

    model_config = FROZEN
    workflow_id: str
    kind: str  # "migration" | "feature"
    stage: Stage
    paused: bool = False
    blocked: str = ""
    model: str = ""
    provider: str = ""
    replaced: str = ""
    feature: str = ""
    issue: IssueRef | None = None
    history: tuple[Transition, ...] = ()
    deadlines: tuple[Deadline, ...] = ()
    next_escalation: NextEscalation | None = None
    pending_action: PendingAction | None = None
    escalations: tuple[FiredEscalation, ...] = ()
    evaluations: tuple[ReportEvaluation, ...] = ()
    rollout: tuple[RolloutStep, ...] = ()
    rollout_percentage: int = 0
    prompt_version: str = ""
    flag: str = ""
    features: tuple[FeatureProgress, ...] = ()
    problems: tuple[str, ...] = ()
    config_mr_url: str = ""
    config_mr_state: str = ""
