"""The migration stage machine: init → features → cleanup → done, as one pure function.

The parent takes only ``complete_stage init``, ``pause``, ``resume`` and ``abort`` from people;
the last three it passes on to its feature children. Its run loop moves the other stages
through ``Advance``, which the same moves table guards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from model_migration.domain.commands import Abort, CompleteStage, ParentCommand, ParentCommandKind, Pause, Resume, Transition
from model_migration.domain.errors import CommandRejected
from model_migration.domain.machine import check_actor, check_open, dispatch
from model_migration.domain.stages import MIGRATION_MOVES, MigrationStage

FROZEN = ConfigDict(frozen=True)
STRICT_REVISION = 3


class Publish(BaseModel):
    model_config = FROZEN
    kind: Literal["publish"] = "publish"


class Forward(BaseModel):
    """Pass a command on to every open feature."""

    model_config = FROZEN
    kind: Literal["forward"] = "forward"
    command: ParentCommand


Effect = Publish | Forward


class MigrationState(BaseModel):
    model_config = FROZEN
    revision: int = 1
    stage: MigrationStage = MigrationStage.INIT
    paused: bool = False
    blocked: str = ""
    init_completed_by: str = ""
    history: tuple[Transition, ...] = ()

    @property
    def strict(self) -> bool:
        return self.revision >= STRICT_REVISION


class Advance(BaseModel):
    """The run loop moves the migration on (init done, every feature finished, issue closed)."""

    model_config = FROZEN
    to: MigrationStage
    actor: str
    detail: str = ""


class Block(BaseModel):
    model_config = FROZEN
    reason: str


class Unblock(BaseModel):
    model_config = FROZEN


Command = CompleteStage | Pause | Resume | Abort | Advance | Block | Unblock


class Decision(BaseModel):
    model_config = FROZEN
    state: MigrationState
    effects: tuple[Effect, ...] = ()
    message: str = ""


def decide(state: MigrationState, command: Command, now: datetime) -> Decision:
    """The next state and its effects, or ``CommandRejected`` with one line saying why."""
    return dispatch(_HANDLERS, "a migration", state, command, now)


def _complete_stage(s: MigrationState, cmd: CompleteStage, now: datetime) -> Decision:
    _check_actor(s, cmd.actor)
    _check_open(s)
    if s.paused:
        raise CommandRejected("the workflow is paused; resume it first")
    if cmd.stage != MigrationStage.INIT:
        raise CommandRejected(f"{cmd.stage} belongs to a feature: send it to the feature workflow (--feature)")
    if s.stage != MigrationStage.INIT:
        raise CommandRejected(f"init is already complete; the migration is in {s.stage}")
    if s.strict and s.init_completed_by:
        raise CommandRejected(f"init was already completed by @{s.init_completed_by}; the features are starting")
    return Decision(
        state=s.model_copy(update={"init_completed_by": cmd.actor}),
        message="init complete; the feature migrations start",
    )


def _pause(s: MigrationState, cmd: Pause, now: datetime) -> Decision:
    _check_actor(s, cmd.actor)
    _check_open(s)
    if s.paused:
        raise CommandRejected("the workflow is already paused")
    forward = ParentCommand(kind=ParentCommandKind.PAUSE, actor=cmd.actor, reason=cmd.reason)
    return Decision(
        state=s.model_copy(update={"paused": True}), effects=(Forward(command=forward),),
        message="paused; every feature is on hold",
    )


def _resume(s: MigrationState, cmd: Resume, now: datetime) -> Decision:
    _check_actor(s, cmd.actor)
    _check_open(s)
    if not (s.paused or s.blocked):
        raise CommandRejected("the workflow is not paused")
    forward = ParentCommand(kind=ParentCommandKind.RESUME, actor=cmd.actor, reason=cmd.note)
    return Decision(
        state=s.model_copy(update={"paused": False, "blocked": ""}), effects=(Forward(command=forward),),
        message="resumed",
    )


def _abort(s: MigrationState, cmd: Abort, now: datetime) -> Decision:
    _check_actor(s, cmd.actor)
    _check_open(s)
    if not cmd.reason.strip():
        raise CommandRejected("an abort needs a reason")
    if s.stage == MigrationStage.CLEANUP:
        raise CommandRejected("every feature has finished; the migration is closing")
    forward = ParentCommand(kind=ParentCommandKind.ABORT, actor=cmd.actor, reason=cmd.reason)
    d = _move(s, MigrationStage.ABORTED, cmd.actor, now, f"Aborted: {cmd.reason}")
    return Decision(
        state=d.state, effects=(Forward(command=forward), *d.effects),
        message="aborted; every open feature is being aborted",
    )


def _advance(s: MigrationState, event: Advance, now: datetime) -> Decision:
    return _move(s, event.to, event.actor, now, event.detail)


def _block(s: MigrationState, event: Block, now: datetime) -> Decision:
    return Decision(state=s.model_copy(update={"blocked": event.reason}))


def _unblock(s: MigrationState, event: Unblock, now: datetime) -> Decision:
    return Decision(state=s.model_copy(update={"blocked": ""}))


#: The rule for each command type; ``decide`` looks it up by the command's exact type.
_HANDLERS: dict[type[BaseModel], Callable[[MigrationState, Any, datetime], Decision]] = {
    CompleteStage: _complete_stage, Pause: _pause, Resume: _resume, Abort: _abort,
    Advance: _advance, Block: _block, Unblock: _unblock,
}


def _check_actor(s: MigrationState, actor: str) -> None:
    check_actor(s.strict, actor)


def _check_open(s: MigrationState) -> None:
    check_open(s.stage)


def _move(s: MigrationState, to: MigrationStage, actor: str, now: datetime, detail: str) -> Decision:
    if (s.stage, to) not in MIGRATION_MOVES:
        raise CommandRejected(f"cannot move the migration from {s.stage} to {to}")
    transition = Transition(from_stage=s.stage, to_stage=to, at=now, actor=actor, detail=detail)
    return Decision(state=s.model_copy(update={"stage": to, "history": (*s.history, transition)}), effects=(Publish(),))
