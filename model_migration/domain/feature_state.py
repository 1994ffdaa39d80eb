"""The feature stage machine's data: its state, the events it takes besides human commands, the
effects it asks for, and its decisions. The rules are in ``feature.py``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from model_migration.domain import deadlines
from model_migration.domain.commands import (
    Abort,
    CompleteStage,
    ExtendDeadline,
    FiredEscalation,
    ParentCommand,
    Pause,
    ReportEvaluation,
    ReportRollout,
    Resume,
    RolloutStep,
    Transition,
)
from model_migration.domain.escalation import EscalationState, EscalationStep, PlannedEscalation
from model_migration.domain.models import FeatureSpec
from model_migration.domain.stages import FeatureStage

FROZEN = ConfigDict(frozen=True)
#: The input revision from which the stricter command rules hold (older runs keep the old ones,
#: because a handler replaying an old history must accept what the old validator accepted).
STRICT_REVISION = 3
CLOSE_WITH_NOTE_REVISION = 3


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


Effect = Note | Publish | TellParent


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

    def due(self) -> datetime:
        return deadlines.due_in(self.deadlines, self.stage)

    @property
    def percentage(self) -> int:
        return self.rollout[-1].percentage if self.rollout else 0

    @property
    def strict(self) -> bool:
        return self.revision >= STRICT_REVISION


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


class BlockedNoticeSent(BaseModel):
    """People were told of a block outside GitLab (recorded as a fired escalation)."""

    model_config = FROZEN


Command = (
    CompleteStage | ReportEvaluation | ReportRollout | Pause | Resume | Abort | ExtendDeadline | ParentCommand
    | Escalate | Block | BlockedNoticeSent
)


class Decision(BaseModel):
    model_config = FROZEN
    state: FeatureState
    effects: tuple[Effect, ...] = ()
    message: str = ""


