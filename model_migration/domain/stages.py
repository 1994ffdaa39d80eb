"""The stage machine: which stages exist, which moves are allowed, and why not.

Every rule a human command must satisfy lives here, so that workflow update
validators are one call and the rules are testable without Temporal.
"""

from __future__ import annotations

import re
from enum import StrEnum

from model_migration.domain.errors import CommandRejected


class Stage(StrEnum):
    INIT = "init"
    FEATURES = "features"  # parent only: the feature children are running
    IMPLEMENT = "implement"
    EVALUATE = "evaluate"
    ROLLOUT = "rollout"
    CLEANUP = "cleanup"
    DONE = "done"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Stage.DONE, Stage.ABORTED, Stage.FAILED})

#: The feature workflow's stages, in order, each with a due date.
FEATURE_STAGES: tuple[Stage, ...] = (Stage.IMPLEMENT, Stage.EVALUATE, Stage.ROLLOUT, Stage.CLEANUP)

#: Moves the feature stage machine allows (from, to).
FEATURE_MOVES: frozenset[tuple[Stage, Stage]] = frozenset(
    {
        (Stage.IMPLEMENT, Stage.EVALUATE),
        (Stage.EVALUATE, Stage.ROLLOUT),
        (Stage.EVALUATE, Stage.IMPLEMENT),  # a failed gate sends the team back for a new prompt
        (Stage.ROLLOUT, Stage.CLEANUP),
        (Stage.CLEANUP, Stage.DONE),
    }
    | {(s, Stage.ABORTED) for s in FEATURE_STAGES}
)

#: Moves the parent migration allows.
MIGRATION_MOVES: frozenset[tuple[Stage, Stage]] = frozenset(
    {
        (Stage.INIT, Stage.FEATURES),
        (Stage.INIT, Stage.FAILED),
        (Stage.FEATURES, Stage.CLEANUP),
        (Stage.CLEANUP, Stage.DONE),
        (Stage.INIT, Stage.ABORTED),
        (Stage.FEATURES, Stage.ABORTED),
    }
)

#: Stages a human completes with ``complete_stage``; the others end through
#: ``report_evaluation`` (evaluate) and ``report_rollout`` reaching 100 (rollout).
COMPLETABLE = frozenset({Stage.IMPLEMENT, Stage.CLEANUP})

SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
FLAG_NAME = re.compile(r"^[a-z][a-z0-9_]{1,254}$")


def is_semver(version: str) -> bool:
    return bool(SEMVER.fullmatch(version))


def check_move(current: Stage, target: Stage, *, parent: bool = False) -> None:
    moves = MIGRATION_MOVES if parent else FEATURE_MOVES
    if (current, target) not in moves:
        raise CommandRejected(f"cannot move from {current} to {target}")


def next_feature_stage(current: Stage) -> Stage:
    if current == Stage.CLEANUP:
        return Stage.DONE
    index = FEATURE_STAGES.index(current)
    return FEATURE_STAGES[index + 1]


def check_active(current: Stage, paused: bool) -> None:
    if current.terminal:
        raise CommandRejected(f"the workflow is already {current}; nothing more can change")
    if paused:
        raise CommandRejected("the workflow is paused; resume it first")


def check_complete_stage(
    current: Stage,
    stage: Stage,
    *,
    paused: bool,
    prompt_version: str | None = None,
    flag_name: str | None = None,
) -> None:
    """Validate ``complete_stage`` on a feature workflow."""
    check_active(current, paused)
    if stage != current:
        raise CommandRejected(f"cannot complete {stage}: the feature is in {current}")
    if stage not in COMPLETABLE:
        how = "report_evaluation" if stage == Stage.EVALUATE else "report_rollout with 100"
        raise CommandRejected(f"{stage} ends through {how}, not complete_stage")
    if stage == Stage.IMPLEMENT:
        if not prompt_version:
            raise CommandRejected("completing implement needs the new prompt version (semver)")
        if not is_semver(prompt_version):
            raise CommandRejected(f"prompt version {prompt_version!r} is not semver (e.g. 1.0.0-dev)")
        if flag_name is not None and not FLAG_NAME.fullmatch(flag_name):
            raise CommandRejected(f"flag name {flag_name!r} is not a valid feature flag name")


def check_report_evaluation(current: Stage, *, paused: bool) -> None:
    check_active(current, paused)
    if current != Stage.EVALUATE:
        raise CommandRejected(f"cannot report an evaluation: the feature is in {current}")


def check_report_rollout(
    current: Stage,
    percentage: int,
    current_percentage: int,
    *,
    paused: bool,
    rollback: bool = False,
) -> None:
    check_active(current, paused)
    if current != Stage.ROLLOUT:
        raise CommandRejected(f"cannot report a rollout: the feature is in {current}")
    if not 0 <= percentage <= 100:
        raise CommandRejected(f"percentage {percentage} is outside 0..100")
    if percentage < current_percentage and not rollback:
        raise CommandRejected(
            f"percentage {percentage} is below the current {current_percentage}; "
            "report it as a rollback if that is intended"
        )
    if rollback and percentage >= current_percentage:
        raise CommandRejected(
            f"a rollback must lower the percentage below the current {current_percentage}"
        )


def check_pause(current: Stage, paused: bool) -> None:
    if current.terminal:
        raise CommandRejected(f"the workflow is already {current}")
    if paused:
        raise CommandRejected("the workflow is already paused")


def check_resume(current: Stage, paused: bool) -> None:
    if current.terminal:
        raise CommandRejected(f"the workflow is already {current}")
    if not paused:
        raise CommandRejected("the workflow is not paused")


def check_abort(current: Stage, reason: str) -> None:
    if current.terminal:
        raise CommandRejected(f"the workflow is already {current}")
    if not reason.strip():
        raise CommandRejected("an abort needs a reason")
