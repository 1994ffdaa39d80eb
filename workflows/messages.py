"""Payloads of every workflow input, update, signal, query and result.

New fields always get defaults so that older workers decode newer payloads.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model_migration.domain.commands import (
    Abort,
    Approve,
    CompleteStage,
    ExtendDeadline,
    FiredEscalation,
    MetricResult,
    ParentCommand,
    ParentCommandKind,
    Pause,
    Reject,
    ReportEvaluation,
    ReportRollout,
    RerunEvaluation,
    Resume,
    RetryRollout,
    RolloutStep,
    Transition,
    Verdict,
)
from model_migration.domain.deadlines import Deadline, StagePlan
from model_migration.domain.escalation import DEFAULT_LADDER, EscalationKind, EscalationStep, check_ladder
from model_migration.domain.evaluation import EvaluationSpec, HarnessKind
from model_migration.domain.feature_state import GateRecord, RolloutRun
from model_migration.domain.gate import GateResult
from model_migration.domain.models import EpicRef, FeatureSpec, IssueRef, ModelDefinition
from model_migration.domain.rollout_spec import RolloutOverrides
from model_migration.domain.stages import AnyStage, FeatureStage, MigrationStage
from model_migration.domain.tournament import TournamentResult
from workflows.rollout_messages import RolloutResult
from workflows.versions import FEATURE_REVISION, MIGRATION_REVISION

#: The commands live in the domain, where the stage machines take them; they are wire types
#: too, so senders import every payload from here.
__all__ = [
    "DEPRECATION_PROGRESS", "FEATURE_PROGRESS",
    "FEATURE_REVISION", "MIGRATION_REVISION", "Abort", "Approve", "CommandResult", "CompleteStage",
    "EvaluationInput", "EvaluationResult", "ExtendDeadline", "FeatureMigrationInput", "FeatureOutcome", "FeatureProgress",
    "FeatureStatus", "FiredEscalation", "GateRecord", "MetricResult", "MigrationInput", "MigrationResult", "MigrationStatus",
    "NextEscalation", "ParentCommand", "ParentCommandKind", "Pause", "PendingAction", "Reject", "ReportEvaluation", "ReportRollout",
    "RerunEvaluation", "Resume", "RetryRollout", "RolloutResult", "RolloutRun", "RolloutStep",
    "Status", "TournamentInput", "TournamentOutcome", "Transition", "Tunables",
    "Verdict", "evaluation_workflow_id",
    "feature_workflow_id", "migration_id",
]

FROZEN = ConfigDict(frozen=True)
DEFAULT_ROLLOUT_LADDER = (1, 10, 25, 50, 75, 100)


#: The signal a feature child sends its parent; one name shared by sender and receiver.
FEATURE_PROGRESS = "feature_progress"
#: The signal a deprecation's migration sends its parent: every feature's progress.
DEPRECATION_PROGRESS = "deprecation_progress"


def migration_id(model: ModelDefinition) -> str:
    return f"migration:{model.key}"


def feature_workflow_id(migration: str, feature: str) -> str:
    return f"{migration}:feature:{feature}"


def evaluation_workflow_id(feature_key: str, attempt: int) -> str:
    """One id per evaluation attempt of a feature run, so an attempt's harness never runs twice."""
    return f"{feature_key}:evaluation:{attempt}"


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
    #: How often a running harness is polled; it heartbeats at each poll.
    evaluation_poll: timedelta = timedelta(seconds=30)
    #: A harness activity silent this long is retried (on another worker); it resumes the same run.
    evaluation_heartbeat: timedelta = timedelta(minutes=2)
    #: The longest one harness run may take.
    harness_timeout: timedelta = timedelta(hours=12)
    #: Harness runs that errored before the evaluation gives up and escalates.
    harness_attempts: int = Field(default=3, ge=1, le=10)
    #: Overrides of the features' catalog rollouts (ladder, bake, hold, analysis cadence; a test run).
    rollout: RolloutOverrides = Field(default_factory=RolloutOverrides)

    @field_validator("activity_timeout", "merge_poll", "evaluation_poll", "evaluation_heartbeat", "harness_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @field_validator("ladder")
    @classmethod
    def _escalations_in_order(cls, ladder: tuple[EscalationStep, ...]) -> tuple[EscalationStep, ...]:
        check_ladder(ladder)
        return ladder

    @field_validator("rollout_ladder")
    @classmethod
    def _rollout_in_order(cls, ladder: tuple[int, ...]) -> tuple[int, ...]:
        if not ladder:
            raise ValueError("needs at least one step")
        if any(not 0 < p <= 100 for p in ladder):
            raise ValueError("every step must be a percentage from 1 to 100")
        if list(ladder) != sorted(set(ladder)):
            raise ValueError("steps must be strictly ascending")
        if ladder[-1] != 100:
            raise ValueError("the last step must be 100")
        return ladder


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
    rerun: int = Field(default=0, ge=0)
    #: The behaviour this run was started with; see ``workflows/versions.py``.
    revision: int = Field(default=1, ge=1)
    #: GitLab's "AI Model Version Migration Initiative" epic: the tracking issue is filed under it.
    initiative_epic: EpicRef | None = None
    #: Set by a deprecation: its epic holds the tracking issue and every feature issue instead
    #: (the deprecation epic is itself a child of the initiative epic).
    deprecation_epic: EpicRef | None = None
    #: Set by a deprecation: the workflow told of every feature's progress.
    parent_id: str | None = None

    @model_validator(mode="after")
    def _features_once(self) -> MigrationInput:
        if not self.features:
            raise ValueError("a migration needs at least one feature")
        names = [f.name for f in self.features]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"feature listed twice: {', '.join(twice)}")
        return self


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
    #: The behaviour this run was started with; see ``workflows/versions.py``.
    revision: int = Field(default=1, ge=1)
    #: As ``MigrationInput.rerun``; the parent passes its own.
    rerun: int = Field(default=0, ge=0)
    #: The epic the feature issue is filed under (a deprecation's), if any.
    epic: EpicRef | None = None


class EvaluationInput(BaseModel):
    """One evaluation: the candidate against the baseline on the feature's dataset, then the gate."""

    model_config = FROZEN
    feature: str
    dataset: str
    prompt_id: str
    baseline_model: str
    baseline_prompt_version: str
    candidate_model: str
    candidate_prompt_version: str
    spec: EvaluationSpec = Field(default_factory=EvaluationSpec)
    harness: HarnessKind = HarnessKind.EXPERIMENT_SERVICE
    #: For ``HarnessKind.IMPORTED``: the team's published per-example results.
    results_url: str = ""
    #: The bootstrap's seed: the same results always get the same verdict.
    seed: int = Field(default=0, ge=0)
    tunables: Tunables = Field(default_factory=Tunables)

    @model_validator(mode="after")
    def _imported_has_url(self) -> EvaluationInput:
        if (self.harness == HarnessKind.IMPORTED) != bool(self.results_url):
            raise ValueError("results_url is given exactly when the harness is 'imported'")
        return self


class EvaluationResult(BaseModel):
    """The gate's result, or why there is none. Per-example results stay in the results store."""

    model_config = FROZEN
    gate: GateResult | None = None
    run_id: str = ""
    digest: str = ""
    run_url: str = ""
    error: str = ""
    #: Harness runs it took (a run whose examples errored too often is run again).
    attempts: int = 0


class TournamentInput(BaseModel):
    """Replacement candidates, each evaluated against the feature's current model on its dataset."""

    model_config = FROZEN
    feature: FeatureSpec
    baseline: ModelDefinition
    candidates: tuple[ModelDefinition, ...] = Field(min_length=1)
    #: The prompt version each candidate is evaluated with.
    prompt_version: str = "1.0.0-dev"
    tunables: Tunables = Field(default_factory=Tunables)

    @model_validator(mode="after")
    def _distinct(self) -> TournamentInput:
        ids = [c.gitlab_identifier for c in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a candidate is listed twice: {sorted(ids)}")
        if self.baseline.gitlab_identifier in ids:
            raise ValueError(f"{self.baseline.gitlab_identifier} is the baseline, not a candidate")
        return self


class TournamentOutcome(BaseModel):
    """The ranking of the candidates that got a verdict, and why the others got none."""

    model_config = FROZEN
    result: TournamentResult | None = None
    errors: dict[str, str] = Field(default_factory=dict)


class FeatureOutcome(BaseModel):
    model_config = FROZEN
    feature: str
    title: str = ""
    stage: FeatureStage
    outcome: str = ""
    issue_url: str = ""
    escalations: int = 0
    #: Every rollout the engine drove (revision 5), each with its steps and their measurements.
    rollouts: tuple[RolloutResult, ...] = ()


class MigrationResult(BaseModel):
    model_config = FROZEN
    migration_id: str
    stage: MigrationStage
    features: tuple[FeatureOutcome, ...] = ()
    tracking_issue_url: str = ""
    escalations: int = 0
    problems: tuple[str, ...] = ()


# -- updates (human commands) ------------------------------------------------------------
# The commands and records live in the domain, where the stage machines take them.


class CommandResult(BaseModel):
    model_config = FROZEN
    stage: AnyStage
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
    stage: FeatureStage
    issue_url: str = ""
    eta: datetime | None = None
    escalations: int = 0
    outcome: str = ""
    #: The feature issue's iid, once it exists (0 before).
    issue_iid: int = 0




# -- query -------------------------------------------------------------------------------






class NextEscalation(BaseModel):
    model_config = FROZEN
    stage: FeatureStage
    kind: EscalationKind
    at: datetime


class PendingAction(BaseModel):
    model_config = FROZEN
    action: str
    owner: str
    command: str = ""




class _StatusCommon(BaseModel):
    """What every status tells, a migration's or a feature's."""

    model_config = FROZEN
    workflow_id: str
    paused: bool = False
    blocked: str = ""
    model: str = ""
    provider: str = ""
    replaced: str = ""
    issue: IssueRef | None = None
    history: tuple[Transition, ...] = ()
    deadlines: tuple[Deadline, ...] = ()
    pending_action: PendingAction | None = None


class FeatureStatus(_StatusCommon):
    """Everything a person needs to know about one feature."""

    kind: Literal["feature"] = "feature"
    stage: FeatureStage
    feature: str = ""
    next_escalation: NextEscalation | None = None
    escalations: tuple[FiredEscalation, ...] = ()
    evaluations: tuple[ReportEvaluation, ...] = ()
    rollout: tuple[RolloutStep, ...] = ()
    rollout_percentage: int = 0
    prompt_version: str = ""
    flag: str = ""
    #: The engine's evaluations (revision 4), oldest first, each with its gate table.
    gates: tuple[GateRecord, ...] = ()
    evaluation_loops: int = 0
    max_evaluation_loops: int = 0
    #: The flag target the engine drives (revision 5); empty when the team drives the flag by hand.
    flag_target: str = ""
    #: The engine's rollouts, oldest first; the running one's workflow id.
    rollouts: tuple[RolloutRun, ...] = ()
    rollout_workflow_id: str = ""
    cleanup_mr: str = ""


class MigrationStatus(_StatusCommon):
    """Everything a person needs to know about one migration and its features."""

    kind: Literal["migration"] = "migration"
    stage: MigrationStage
    features: tuple[FeatureProgress, ...] = ()
    problems: tuple[str, ...] = ()
    config_mr_url: str = ""
    config_mr_state: str = ""


#: What a ``status`` query returns, told apart by ``kind``.
Status = Annotated[FeatureStatus | MigrationStatus, Field(discriminator="kind")]
