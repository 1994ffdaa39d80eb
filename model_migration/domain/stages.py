"""The two stage machines' vocabulary: which stages exist and which moves are allowed.

The rules for each command live with their machine (``domain/feature.py``,
``domain/migration.py``); this module holds what both share.
"""

from __future__ import annotations

import re
from enum import StrEnum

TERMINAL_VALUES = frozenset({"done", "aborted", "failed"})


class _Stage(StrEnum):
    @property
    def terminal(self) -> bool:
        return self.value in TERMINAL_VALUES


class FeatureStage(_Stage):
    IMPLEMENT = "implement"
    EVALUATE = "evaluate"
    ROLLOUT = "rollout"
    CLEANUP = "cleanup"
    DONE = "done"
    ABORTED = "aborted"


class MigrationStage(_Stage):
    INIT = "init"
    FEATURES = "features"  # the feature children are running
    CLEANUP = "cleanup"
    DONE = "done"
    ABORTED = "aborted"
    FAILED = "failed"


#: Either machine's stage, where a record serves both (a transition, a command result).
AnyStage = FeatureStage | MigrationStage

#: The feature workflow's working stages, in order, each with a due date.
FEATURE_STAGES: tuple[FeatureStage, ...] = (
    FeatureStage.IMPLEMENT, FeatureStage.EVALUATE, FeatureStage.ROLLOUT, FeatureStage.CLEANUP,
)

#: Moves the feature stage machine allows (from, to).
FEATURE_MOVES: frozenset[tuple[FeatureStage, FeatureStage]] = frozenset(
    {
        (FeatureStage.IMPLEMENT, FeatureStage.EVALUATE),
        (FeatureStage.EVALUATE, FeatureStage.ROLLOUT),
        (FeatureStage.EVALUATE, FeatureStage.IMPLEMENT),  # a failed gate: back for a new prompt
        (FeatureStage.ROLLOUT, FeatureStage.CLEANUP),
        (FeatureStage.ROLLOUT, FeatureStage.IMPLEMENT),  # the engine rolled the flag back (revision 5)
        (FeatureStage.IMPLEMENT, FeatureStage.ROLLOUT),  # retried from the failed step, same prompt version
        (FeatureStage.CLEANUP, FeatureStage.DONE),
    }
    | {(s, FeatureStage.ABORTED) for s in FEATURE_STAGES}
)

#: Moves the parent migration allows.
MIGRATION_MOVES: frozenset[tuple[MigrationStage, MigrationStage]] = frozenset(
    {
        (MigrationStage.INIT, MigrationStage.FEATURES),
        (MigrationStage.INIT, MigrationStage.FAILED),
        (MigrationStage.FEATURES, MigrationStage.CLEANUP),
        (MigrationStage.CLEANUP, MigrationStage.DONE),
        (MigrationStage.INIT, MigrationStage.ABORTED),
        (MigrationStage.FEATURES, MigrationStage.ABORTED),
    }
)

#: Stages a person ends with ``complete_stage``. Evaluate ends through an evaluation, rollout
#: through the flag reaching 100 %.
FEATURE_COMPLETABLE: tuple[FeatureStage, ...] = (FeatureStage.IMPLEMENT, FeatureStage.CLEANUP)
MIGRATION_COMPLETABLE: tuple[MigrationStage, ...] = (MigrationStage.INIT,)

SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
FLAG_NAME = re.compile(r"^[a-z][a-z0-9_]{1,254}$")


def is_semver(version: str) -> bool:
    return bool(SEMVER.fullmatch(version))


def semver_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
    """A sort key with semver precedence: pre-releases before the release, build metadata ignored."""
    match = SEMVER.fullmatch(version)
    if match is None:
        raise ValueError(f"{version!r} is not semver")
    major, minor, patch, pre = int(match[1]), int(match[2]), int(match[3]), match[4]
    if pre is None:
        return (major, minor, patch, 1, ())
    # Numeric identifiers sort below alphanumeric ones, and numerically among themselves.
    ids = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (major, minor, patch, 0, ids)


def semver_greater(version: str, than: str) -> bool:
    return semver_key(version) > semver_key(than)


class CompletableStage(StrEnum):
    """What a person may name in ``complete_stage``: init on a migration, implement or cleanup on a feature."""

    INIT = "init"
    IMPLEMENT = "implement"
    CLEANUP = "cleanup"
