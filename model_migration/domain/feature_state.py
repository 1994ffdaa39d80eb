"""The feature stage machine's data: its state, the events it takes besides human commands, the
effects it asks for, and its decisions. The rules are in ``feature.py``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from model_migration.domain import deadlines
from model_migration.domain.commands import (
    Abort,
    Approve,
    CompleteStage,
    ExtendDeadline,
    FiredEscalation,
    ParentCommand,
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
from model_migration.domain.escalation import EscalationState, EscalationStep, PlannedEscalation
from model_migration.domain.evaluation import HarnessKind
from model_migration.domain.gate import GateResult
from model_migration.domain.models import FeatureSpec
from model_migration.domain.stages import FeatureStage

FROZEN = ConfigDict(frozen=True)
#: The input revision from which the stricter command rules hold (older runs keep the old ones,
#: because a handler replaying an old history must accept what the old validator accepted).
STRICT_REVISION = 3
CLOSE_WITH_NOTE_REVISION = 3
#: From this input revision the engine runs the evaluation gate itself (``feature_gate.py``).
GATE_REVISION = 4
#: From this input revision the engine drives the flag of a feature whose catalog entry names a
#: flag target (``RolloutWorkflow``), and cleans up after it (``feature_rollout.py``).
ROLLOUT_REVISION = 5


# -- effects --------------------------------------------------------------------------------


class Note(BaseModel):
    """Post a note on the feature issue; labels and the due date ride along as quick actions."""

    model_config = FROZEN
    kind: Literal["note"] = "note"
    body: str
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    due_date: date | None = None
    #: The feature is finished: the note closes its issue too (``/close``).
    close: bool = False


class Publish(BaseModel):
    """Upsert the stage and due-date search attributes."""

    model_config = FROZEN
    kind: Literal["publish"] = "publish"


class TellParent(BaseModel):
    """Tell the parent migration where the feature is."""

    model_config = FROZEN
    kind: Literal["tell_parent"] = "tell_parent"


class RunGate(BaseModel):
    """Run the evaluation harness and the gate for ``attempt`` (the last ``GateRecord``)."""

    model_config = FROZEN
    kind: Literal["run_gate"] = "run_gate"
    attempt: int


class StartRollout(BaseModel):
    """Start rollout ``attempt`` (a ``RolloutWorkflow`` child) at ladder step ``from_step``."""

    model_config = FROZEN
    kind: Literal["start_rollout"] = "start_rollout"
    attempt: int
    from_step: int = 0


class OpenCleanup(BaseModel):
    """Open the clean-up merge request that removes the old model's prompt definitions."""

    model_config = FROZEN
    kind: Literal["open_cleanup"] = "open_cleanup"


Effect = Note | Publish | TellParent | RunGate | StartRollout | OpenCleanup


class GateRecord(BaseModel):
    """One evaluation of the feature: what was run, and what came of it."""

    model_config = FROZEN
    attempt: int
    prompt_version: str
    harness: HarnessKind
    started_at: datetime
    requested_by: str = ""
    #: For a team's own harness (``report_evaluation``): where its results are, and its verdict.
    results_url: str = ""
    team_verdict: Verdict | None = None
    result: GateResult | None = None
    run_url: str = ""
    #: The harness could not give a verdict (refused, or errored on every retry).
    error: str = ""
    #: Who settled an inconclusive gate, and how (approve | reject), and why.
    decided_by: str = ""
    decision: str = ""
    reason: str = ""

    @property
    def running(self) -> bool:
        return self.result is None and not self.error

    @property
    def verdict(self) -> Verdict | None:
        return self.result.verdict if self.result is not None else None

    @property
    def awaiting_decision(self) -> bool:
        return self.verdict is Verdict.INCONCLUSIVE and not self.decided_by


class RolloutRun(BaseModel):
    """One rollout the engine drove (revision 5): where it started, and how it ended."""

    model_config = FROZEN
    attempt: int
    from_step: int = 0
    started_at: datetime
    requested_by: str = ""
    #: running | done | rolled_back | aborted | failed (the rollout workflow itself failed)
    phase: str = "running"
    outcome: str = ""
    failed_step: int | None = None
    failed_label: str = ""
    ended_at: datetime | None = None
    #: The rollout's step log (markdown), for the final note.
    timeline: str = ""

    @property
    def running(self) -> bool:
        return self.phase == "running"


# -- state and events -------------------------------------------------------------------------


class FeatureState(BaseModel):
    model_config = FROZEN
    feature: FeatureSpec
    ladder: tuple[EscalationStep, ...]
    revision: int = 1
    stage: FeatureStage = FeatureStage.IMPLEMENT
    deadlines: dict[FeatureStage, datetime]
    extended: dict[FeatureStage, str] = {}
    escalation: EscalationState = EscalationState()
    fired: tuple[FiredEscalation, ...] = ()
    labels_added: tuple[str, ...] = ()
    paused: bool = False
    paused_at: datetime | None = None
    blocked: str = ""
    evaluations: tuple[ReportEvaluation, ...] = ()
    rollout: tuple[RolloutStep, ...] = ()
    prompt_version: str = ""
    #: The prompt version whose evaluation failed: the next one must be higher.
    failed_prompt_version: str = ""
    flag: str = ""
    outcome: str = ""
    history: tuple[Transition, ...] = ()
    #: Every evaluation the engine ran (revision 4), oldest first; its length is the attempt number.
    gates: tuple[GateRecord, ...] = ()
    #: Evaluations that sent the feature back to implement (failed, or rejected).
    loops: int = 0
    #: Every rollout the engine drove (revision 5), oldest first; its length is the attempt number.
    rollouts: tuple[RolloutRun, ...] = ()
    #: The clean-up merge request's URL, once opened.
    cleanup_mr: str = ""

    def due(self) -> datetime:
        return deadlines.due_in(self.deadlines, self.stage)

    @property
    def percentage(self) -> int:
        return self.rollout[-1].percentage if self.rollout else 0

    @property
    def strict(self) -> bool:
        return self.revision >= STRICT_REVISION

    @property
    def gated(self) -> bool:
        return self.revision >= GATE_REVISION

    @property
    def driven(self) -> bool:
        """The engine drives the flag (``RolloutWorkflow``); the team does not report steps."""
        return self.revision >= ROLLOUT_REVISION and self.feature.rollout.driven

    @property
    def rollout_run(self) -> RolloutRun | None:
        return self.rollouts[-1] if self.rollouts else None

    @property
    def gate(self) -> GateRecord | None:
        return self.gates[-1] if self.gates else None


def initial(feature: FeatureSpec, ladder: tuple[EscalationStep, ...], due: dict[FeatureStage, datetime], revision: int) -> FeatureState:
    return FeatureState(feature=feature, ladder=ladder, deadlines=due, revision=revision, flag=feature.flag)


class Escalate(BaseModel):
    """A planned escalation's time has come."""

    model_config = FROZEN
    planned: PlannedEscalation


class Block(BaseModel):
    """GitLab refused the engine for good; a person must fix access, then resume."""

    model_config = FROZEN
    reason: str


class GateDecided(BaseModel):
    """The evaluation workflow for ``attempt`` finished: a gate result, or the harness's error."""

    model_config = FROZEN
    attempt: int
    result: GateResult | None = None
    run_url: str = ""
    error: str = ""


class RolloutEnded(BaseModel):
    """Rollout ``attempt`` finished: done, rolled back, aborted, or its workflow failed."""

    model_config = FROZEN
    attempt: int
    phase: str
    outcome: str = ""
    failed_step: int | None = None
    failed_label: str = ""
    #: The timeline of the whole rollout, for the final note (markdown).
    timeline: str = ""


class CleanupOpened(BaseModel):
    """The clean-up merge request is open (or there was nothing left to remove)."""

    model_config = FROZEN
    url: str = ""
    detail: str = ""


class BlockedNoticeSent(BaseModel):
    """People were told of a block outside GitLab (recorded as a fired escalation)."""

    model_config = FROZEN


Command = (
    CompleteStage | ReportEvaluation | ReportRollout | Pause | Resume | Abort | ExtendDeadline | ParentCommand
    | Approve | Reject | RerunEvaluation | Escalate | Block | BlockedNoticeSent | GateDecided
    | RetryRollout | RolloutEnded | CleanupOpened
)


class Decision(BaseModel):
    model_config = FROZEN
    state: FeatureState
    effects: tuple[Effect, ...] = ()
    message: str = ""


