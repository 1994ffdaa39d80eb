"""Human commands and machine events the stage machines take, and the records they keep.

These travel as Temporal updates, signals and query results, so every model ignores unknown
fields and gives new fields defaults: a rolling deploy never breaks an older worker or CLI.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from model_migration.domain.escalation import EscalationKind
from model_migration.domain.stages import AnyStage, FeatureStage, MigrationStage

FROZEN = ConfigDict(frozen=True)


class Verdict(StrEnum):
    PASS = "pass"
    INCONCLUSIVE = "inconclusive"
    FAIL = "fail"


class CompleteStage(BaseModel):
    model_config = FROZEN
    stage: AnyStage
    actor: str
    prompt_version: str | None = None
    flag_name: str | None = None
    note: str = ""


class MetricResult(BaseModel):
    model_config = FROZEN
    name: str
    baseline: float = Field(allow_inf_nan=False)
    candidate: float = Field(allow_inf_nan=False)
    higher_is_better: bool = True


class ReportEvaluation(BaseModel):
    """A team's own evaluation. From feature revision 4 ``url`` must point at its per-example
    results (the experiment service's results shape), which the engine puts through the gate;
    ``verdict`` is then only what the team says."""

    model_config = FROZEN
    actor: str
    verdict: Verdict
    metrics: tuple[MetricResult, ...] = ()
    dataset: str = ""
    summary: str = ""
    url: str = ""


class Approve(BaseModel):
    """The DRI passes an inconclusive gate, saying why."""

    model_config = FROZEN
    actor: str
    reason: str


class Reject(BaseModel):
    """The DRI fails an inconclusive gate, saying why: back to implement."""

    model_config = FROZEN
    actor: str
    reason: str


class RerunEvaluation(BaseModel):
    """Run the harness and the gate again (after a harness error, or to settle an inconclusive gate)."""

    model_config = FROZEN
    actor: str
    reason: str = ""


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
    stage: FeatureStage
    new_date: datetime
    reason: str


class ParentCommandKind(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    #: A deprecation's cutoff moved: the current and later stages move by ``shift``.
    SHIFT = "shift"


class ParentCommand(BaseModel):
    """The parent passes pause, resume and abort on to its children (a signal); a deprecation
    sends ``shift`` when its cutoff moves."""

    model_config = FROZEN
    kind: ParentCommandKind
    actor: str
    reason: str = ""
    shift: timedelta | None = None


# -- records ------------------------------------------------------------------------------


class Transition(BaseModel):
    model_config = FROZEN
    from_stage: AnyStage | None = None
    to_stage: AnyStage
    at: datetime
    actor: str
    detail: str = ""


class FiredEscalation(BaseModel):
    model_config = FROZEN
    stage: FeatureStage
    kind: EscalationKind
    at: datetime
    occurrence: int = 0


class RetryRollout(BaseModel):
    """After the engine rolled a feature back (or it was aborted): roll out the same prompt
    version again, from the step that failed."""

    model_config = FROZEN
    actor: str
    reason: str = ""


class RolloutStep(BaseModel):
    model_config = FROZEN
    percentage: int
    at: datetime
    actor: str
    rollback: bool = False


__all__ = [
    "Abort", "Approve", "CompleteStage", "Reject", "RerunEvaluation", "ExtendDeadline", "FiredEscalation", "MetricResult", "MigrationStage",
    "ParentCommand", "ParentCommandKind", "Pause", "ReportEvaluation", "ReportRollout", "Resume", "RetryRollout",
    "RolloutStep", "Transition", "Verdict",
]
