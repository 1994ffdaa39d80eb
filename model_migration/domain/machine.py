"""What both stage machines share: looking up the rule for a command, and the two checks every
human command meets first."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from model_migration.domain.errors import CommandRejected
from model_migration.domain.stages import AnyStage

S = TypeVar("S")
D = TypeVar("D")


def dispatch(handlers: Mapping[type, Callable[[S, Any, datetime], D]], machine: str, state: S, command: object, now: datetime) -> D:
    """The rule for ``command``'s exact type, applied; a command the machine does not take is refused."""
    handler = handlers.get(type(command))
    if handler is None:
        raise CommandRejected(f"{machine} takes no {type(command).__name__} command")
    return handler(state, command, now)


def check_actor(strict: bool, actor: str) -> None:
    """From revision 3 somebody must send a command (``strict``)."""
    if strict and not actor.strip():
        raise CommandRejected("actor is empty: give the GitLab username of whoever sends the command")


def check_open(stage: AnyStage) -> None:
    if stage.terminal:
        raise CommandRejected(f"the workflow is already {stage}; nothing more can change")
