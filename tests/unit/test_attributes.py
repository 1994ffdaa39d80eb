"""Search attribute values: what starters pass, and when the workflow has nothing to upsert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from model_migration.catalog import load_catalog
from model_migration.domain.deadlines import StagePlan, due_in, plan_due_dates
from model_migration.domain.stages import FeatureStage, MigrationStage
from workflows import attributes
from workflows.messages import FeatureMigrationInput, MigrationInput, Tunables

CATALOG = load_catalog()
MODEL = CATALOG.model("claude_sonnet_4_5_20250929")
START = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def feature_input(planned_from: datetime | None = START, plan: StagePlan | None = None) -> FeatureMigrationInput:
    return FeatureMigrationInput(
        migration_id="migration:x", feature=CATALOG.feature("duo_chat"), model=MODEL,
        tunables=Tunables(plan=plan or StagePlan()), planned_from=planned_from,
    )


def test_feature_start_values_match_the_workflows_first_publish() -> None:
    request = feature_input()
    started = attributes.at_feature_start(request)
    plan = plan_due_dates(START, request.tunables.plan)
    published = attributes.feature_values(request, FeatureStage.IMPLEMENT, due_in(plan, FeatureStage.IMPLEMENT))
    assert attributes.already_set(published, started)
    assert started.get(attributes.DUE_DATE) == START + timedelta(days=7)
    assert started.get(attributes.STAGE) == "implement" and list(started.get(attributes.FEATURES) or []) == ["duo_chat"]


def test_a_target_date_plan_gives_the_backwards_due_date() -> None:
    target = START + timedelta(days=30)
    started = attributes.at_feature_start(feature_input(plan=StagePlan(target=target)))
    # cleanup 2 days, rollout 4, evaluate 3 before the target: implement is due 9 days earlier.
    assert started.get(attributes.DUE_DATE) == target - timedelta(days=9)


def test_migration_start_values() -> None:
    request = MigrationInput(model=MODEL, features=(CATALOG.feature("duo_chat"), CATALOG.feature("code_generation")), planned_from=START)
    started = attributes.at_migration_start(request)
    assert started.get(attributes.KIND) == "migration" and started.get(attributes.STAGE) == "init"
    assert list(started.get(attributes.FEATURES) or []) == ["code_generation", "duo_chat"]
    assert started.get(attributes.DUE_DATE) == START + StagePlan().total


def test_start_values_need_the_plans_start() -> None:
    with pytest.raises(ValueError, match="planned_from"):
        attributes.at_feature_start(feature_input(planned_from=None))
    with pytest.raises(ValueError, match="planned_from"):
        attributes.at_migration_start(MigrationInput(model=MODEL, features=(CATALOG.feature("duo_chat"),)))


def test_already_set_wants_every_value_equal() -> None:
    values = attributes.feature_values(feature_input(), FeatureStage.IMPLEMENT, START)
    assert attributes.already_set(values, TypedSearchAttributes(values))
    assert not attributes.already_set(values, TypedSearchAttributes.empty)
    moved = [p if p.key != attributes.STAGE else SearchAttributePair(attributes.STAGE, "evaluate") for p in values]
    assert not attributes.already_set(values, TypedSearchAttributes(moved))
    later = [p if p.key != attributes.DUE_DATE else SearchAttributePair(attributes.DUE_DATE, START + timedelta(seconds=1)) for p in values]
    assert not attributes.already_set(values, TypedSearchAttributes(later))
    missing = [p for p in values if p.key != attributes.FEATURES]
    assert not attributes.already_set(values, TypedSearchAttributes(missing))


def test_only_the_moving_values_are_upserted_after_the_first_time() -> None:
    values = attributes.feature_values(feature_input(), FeatureStage.EVALUATE, START)
    assert [u.key for u in attributes.updates(values)] == [p.key for p in values]
    moving = attributes.updates(values, only_moving=True)
    assert [(u.key, u.value) for u in moving] == [(attributes.STAGE, "evaluate"), (attributes.DUE_DATE, START)]


def test_migration_features_fit_in_one_value_from_revision_5() -> None:
    """Revision 5 keeps the sorted names that fit in 2,048 bytes; older runs keep every name, as their histories hold."""
    spec = CATALOG.feature("vulnerability_resolution")
    many = tuple(spec.model_copy(update={"name": f"{spec.name}_{i:03d}"}) for i in range(200))
    capped = dict((p.key.name, p.value) for p in attributes.migration_values(
        MigrationInput(model=MODEL, features=many, revision=5), MigrationStage.INIT, START))["MigrationFeatures"]
    assert capped == sorted(f.name for f in many)[: len(capped)] and 60 < len(capped) < 200
    assert len(json.dumps(capped).encode()) <= attributes.VALUE_LIMIT
    old = dict((p.key.name, p.value) for p in attributes.migration_values(
        MigrationInput(model=MODEL, features=many, revision=4), MigrationStage.INIT, START))["MigrationFeatures"]
    assert len(old) == 200
    assert attributes.fitting(["b", "a"]) == ["a", "b"] and attributes.fitting(["abc", "de"], budget=8) == ["abc"]
