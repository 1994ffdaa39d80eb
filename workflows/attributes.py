"""Search attributes that make migrations listable with visibility queries.

Each upsert costs the Temporal server a visibility write, so a starter passes a workflow's
first values with it (``at_feature_start``, ``at_migration_start``) and the workflow upserts
only when a value changes: a stage moves or a deadline shifts.

The server refuses a value over 2,048 bytes. ``MigrationFeatures`` on a migration (revision 5
on) therefore lists its features, sorted, only as far as they fit (``fitting``): about 90 names
of real length. Each feature workflow carries its own name in ``MigrationFeatures``, so
``MigrationKind = 'feature' AND MigrationFeatures = '<name>'`` finds a feature in a migration
of any size; ``model-migration list`` counts a migration's features from those workflows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, SearchAttributeUpdate, TypedSearchAttributes

from model_migration.domain.deadlines import due_in, plan_due_dates
from model_migration.domain.stages import FeatureStage, MigrationStage
from workflows.messages import FeatureMigrationInput, MigrationInput
from workflows.versions import SCALE_REVISION

KIND = SearchAttributeKey.for_keyword("MigrationKind")  # "migration" | "feature"
STAGE = SearchAttributeKey.for_keyword("MigrationStage")
MODEL = SearchAttributeKey.for_keyword("MigrationModel")
PROVIDER = SearchAttributeKey.for_keyword("MigrationProvider")
FEATURES = SearchAttributeKey.for_keyword_list("MigrationFeatures")
DUE_DATE = SearchAttributeKey.for_datetime("MigrationDueDate")

ALL = (KIND, STAGE, MODEL, PROVIDER, FEATURES, DUE_DATE)

Values = list[SearchAttributePair[Any]]


def feature_values(input: FeatureMigrationInput, stage: FeatureStage, due: datetime) -> Values:
    return [
        SearchAttributePair(KIND, "feature"),
        SearchAttributePair(STAGE, stage.value),
        SearchAttributePair(MODEL, input.model.gitlab_identifier),
        SearchAttributePair(PROVIDER, input.model.provider),
        SearchAttributePair(FEATURES, [input.feature.name]),
        SearchAttributePair(DUE_DATE, due),
    ]


def migration_values(input: MigrationInput, stage: MigrationStage, due: datetime) -> Values:
    return [
        SearchAttributePair(KIND, "migration"),
        SearchAttributePair(STAGE, stage.value),
        SearchAttributePair(MODEL, input.model.gitlab_identifier),
        SearchAttributePair(PROVIDER, input.model.provider),
        SearchAttributePair(FEATURES, _migration_features(input)),
        SearchAttributePair(DUE_DATE, due),
    ]


#: The server's limit on one search-attribute value, and what ``fitting`` keeps below it.
VALUE_LIMIT = 2048
VALUE_BUDGET = VALUE_LIMIT - 48


def fitting(names: Iterable[str], budget: int = VALUE_BUDGET) -> list[str]:
    """``names`` sorted, as many as fit in ``budget`` bytes once encoded as a JSON list."""
    kept: list[str] = []
    size = 2  # []
    for name in sorted(names):
        size += len(json.dumps(name).encode()) + (2 if kept else 0)  # ", " between items
        if size > budget:
            break
        kept.append(name)
    return kept


def _migration_features(input: MigrationInput) -> list[str]:
    names = sorted(f.name for f in input.features)
    return fitting(names) if input.revision >= SCALE_REVISION else names


def migration_eta(input: MigrationInput, now: datetime) -> datetime:
    """When the last feature stage of the plan is due."""
    return max(plan_due_dates(input.planned_from or now, input.tunables.plan).values())


def at_feature_start(input: FeatureMigrationInput) -> TypedSearchAttributes:
    """The values a feature workflow starts with; ``input.planned_from`` must be set."""
    if input.planned_from is None:
        raise ValueError("set planned_from, so the due date matches the workflow's plan")
    plan = plan_due_dates(input.planned_from, input.tunables.plan)
    return TypedSearchAttributes(feature_values(input, FeatureStage.IMPLEMENT, due_in(plan, FeatureStage.IMPLEMENT)))


def at_migration_start(input: MigrationInput) -> TypedSearchAttributes:
    """The values a migration workflow starts with; ``input.planned_from`` must be set."""
    if input.planned_from is None:
        raise ValueError("set planned_from, so the due date matches the workflow's plan")
    return TypedSearchAttributes(migration_values(input, MigrationStage.INIT, migration_eta(input, input.planned_from)))


#: What moves while a workflow runs; the rest is fixed from the start.
MOVING = (STAGE, DUE_DATE)


def updates(values: Values, *, only_moving: bool = False) -> list[SearchAttributeUpdate[Any]]:
    """Upserts for ``values``; ``only_moving``: just the stage and the due date, for a workflow
    whose fixed values are already set (each value costs the worker an encoding)."""
    return [pair.key.value_set(pair.value) for pair in values if not only_moving or pair.key in MOVING]


def already_set(values: Sequence[SearchAttributePair[Any]], current: TypedSearchAttributes) -> bool:
    """True when the workflow was started with exactly these values (nothing to upsert)."""
    return all(_same(current.get(pair.key), pair.value) for pair in values)


def publish(values: Values, *, first: bool = False) -> None:
    """Upsert from inside a workflow. The first time, nothing if the starter passed exactly
    these values: replay-safe without a patch, as whether they were passed is in the start
    event, and older histories, started without them, upsert as they always did. After that,
    only the stage and the due date."""
    if first and already_set(values, workflow.info().typed_search_attributes):
        return
    workflow.upsert_search_attributes(updates(values, only_moving=not first))


def _same(have: object, want: object) -> bool:
    if isinstance(have, Sequence) and not isinstance(have, str):
        return isinstance(want, Sequence) and list(have) == list(want)
    return have == want
