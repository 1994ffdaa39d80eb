"""Rules every feature command shares: who may send it, when, and what a stage move does."""

from __future__ import annotations

from datetime import datetime

from model_migration.domain import templates
from model_migration.domain.commands import Transition
from model_migration.domain.errors import CommandRejected
from model_migration.domain.escalation import EscalationState
from model_migration.domain.feature_state import (
    CLOSE_WITH_NOTE_REVISION,
    Decision,
    Effect,
    FeatureState,
    Note,
    Publish,
    RolloutRun,
    StartRollout,
    TellParent,
)
from model_migration.domain.machine import check_actor, check_open
from model_migration.domain.stages import FEATURE_MOVES, FeatureStage


def actor_given(s: FeatureState, actor: str) -> None:
    check_actor(s.strict, actor)


def still_open(s: FeatureState) -> None:
    check_open(s.stage)


def active(s: FeatureState, *, blocked_counts: bool) -> None:
    still_open(s)
    if s.paused:
        raise CommandRejected("the workflow is paused; resume it first")
    if blocked_counts and s.blocked:
        raise CommandRejected(f"the workflow is blocked ({s.blocked}); fix GitLab access and resume it first")


def next_stage(current: FeatureStage) -> FeatureStage:
    return {
        FeatureStage.IMPLEMENT: FeatureStage.EVALUATE, FeatureStage.EVALUATE: FeatureStage.ROLLOUT,
        FeatureStage.ROLLOUT: FeatureStage.CLEANUP, FeatureStage.CLEANUP: FeatureStage.DONE,
    }[current]


def move(
    s: FeatureState, to: FeatureStage, actor: str, now: datetime, detail: str, add_labels: tuple[str, ...] = (), from_step: int = 0,
) -> Decision:
    """A stage transition: the moves table allows it, one note records it, labels reset.

    A feature whose flag the engine drives starts a rollout (from ``from_step``) on entering rollout."""
    if (s.stage, to) not in FEATURE_MOVES:
        raise CommandRejected(f"cannot move from {s.stage} to {to}")
    before = s.stage
    remove = tuple(label for label in s.labels_added if label not in add_labels)
    s = s.model_copy(update={
        "stage": to, "escalation": EscalationState(), "labels_added": tuple(sorted(add_labels)),
        "history": (*s.history, Transition(from_stage=before, to_stage=to, at=now, actor=actor, detail=detail)),
    })
    due = None if to.terminal else s.due().date()
    body = templates.transition_note(
        feature_title=s.feature.title, from_stage=before, to_stage=to, actor=actor, at=now, detail=detail,
        next_due=due, owner=None if to.terminal else s.feature.dri,
    )
    # From revision 3 the last note closes the issue itself: one GitLab call fewer per feature.
    close = to.terminal and s.revision >= CLOSE_WITH_NOTE_REVISION
    note = Note(body=body, add_labels=add_labels, remove_labels=remove, due_date=due, close=close)
    effects: tuple[Effect, ...] = (note, Publish(), TellParent())
    if to == FeatureStage.ROLLOUT and s.driven:
        attempt = len(s.rollouts) + 1
        run = RolloutRun(attempt=attempt, from_step=from_step, started_at=now, requested_by=actor or "model-migration")
        s = s.model_copy(update={"rollouts": (*s.rollouts, run)})
        effects = (*effects, StartRollout(attempt=attempt, from_step=from_step))
    return Decision(state=s, effects=effects)
