"""Search attributes on the dev server: passed at start by the starter, upserted only on change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle

from model_migration import operations
from model_migration.domain.stages import FeatureStage, MigrationStage
from tests.temporal_fixtures import Engine, assert_eventually
from tests.workflows.support import CATALOG, REPLACED, SLOW, model_for, start_feature, status, wait_issue
from workflows import attributes
from workflows.messages import MIGRATION_REVISION, CompleteStage, MigrationInput, feature_workflow_id

UPSERT = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED


async def events(handle: WorkflowHandle) -> Sequence[HistoryEvent]:
    return (await handle.fetch_history()).events


def ours(event: HistoryEvent) -> bool:
    """An upsert of the engine's attributes (``workflow.patched`` upserts TemporalChangeVersion too)."""
    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    return event.event_type == UPSERT and "MigrationStage" in fields


def upserts(history: Sequence[HistoryEvent]) -> int:
    return sum(ours(e) for e in history)


def upserts_before_first_update(history: Sequence[HistoryEvent]) -> int:
    count = 0
    for event in history:
        if event.event_type == ACCEPTED:
            break
        count += ours(event)
    return count


async def listed(engine: Engine, handle: WorkflowHandle, want: dict[str, object]) -> None:
    """Visibility (eventually) holds ``want``, and a visibility query by stage finds the workflow."""

    async def check() -> None:
        got = (await handle.describe()).typed_search_attributes
        values = {
            "kind": got.get(attributes.KIND),
            "stage": got.get(attributes.STAGE),
            "model": got.get(attributes.MODEL),
            "provider": got.get(attributes.PROVIDER),
            "features": list(got.get(attributes.FEATURES) or []),
            "due": got.get(attributes.DUE_DATE),
        }
        assert {k: values[k] for k in want} == want
        query = f'MigrationStage = "{want["stage"]}" AND WorkflowId = "{handle.id}"'
        found = [w.id async for w in engine.client.list_workflows(query)]
        assert found == [handle.id]

    await assert_eventually(check)


def due_of(st, stage: FeatureStage) -> datetime:  # type: ignore[no-untyped-def]
    return next(d.due for d in st.deadlines if d.stage == stage)


async def test_feature_started_with_its_attributes_upserts_only_on_change(engine: Engine, unique: str) -> None:
    """Started as the parent starts it: no upsert at start, one when the stage moves."""
    handle = await start_feature(engine, unique)
    st = await wait_issue(handle)
    assert upserts_before_first_update(await events(handle)) == 0
    model = model_for(unique)
    await listed(
        engine,
        handle,
        {
            "kind": "feature",
            "stage": "implement",
            "model": model.gitlab_identifier,
            "provider": model.provider,
            "features": ["duo_chat"],
            "due": due_of(st, FeatureStage.IMPLEMENT),
        },
    )
    await handle.execute_update("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="x", prompt_version="1.0.0"))
    st = await status(handle)
    assert upserts(await events(handle)) == 1
    await listed(engine, handle, {"stage": "evaluate", "due": due_of(st, FeatureStage.EVALUATE), "features": ["duo_chat"]})


async def test_feature_started_bare_upserts_its_attributes_itself(engine: Engine, unique: str) -> None:
    """Started without them (as older starters did): the workflow upserts them first thing."""
    handle = await start_feature(engine, unique, "code_generation", as_parent=False)
    st = await wait_issue(handle)
    assert upserts_before_first_update(await events(handle)) == 1
    await listed(
        engine,
        handle,
        {"kind": "feature", "stage": "implement", "due": due_of(st, FeatureStage.IMPLEMENT), "features": ["code_generation"]},
    )


async def test_start_passes_the_migration_and_its_children_their_attributes(engine: Engine, unique: str) -> None:
    """``operations.start`` (the CLI's path) and the parent's child starts carry the first values."""
    model = model_for(unique)
    request = MigrationInput(
        model=model, replaced=REPLACED, features=(CATALOG.feature("duo_chat"),), tunables=SLOW, revision=MIGRATION_REVISION
    )
    workflow_id = await operations.start(engine.client, engine.task_queue, request)
    parent = engine.client.get_workflow_handle(workflow_id)
    st = await status(parent)
    await listed(
        engine,
        parent,
        {
            "kind": "migration",
            "stage": "init",
            "model": model.gitlab_identifier,
            "features": ["duo_chat"],
            "due": due_of(st, FeatureStage.CLEANUP),
        },
    )
    assert upserts_before_first_update(await events(parent)) == 0

    async def config_mr() -> None:
        assert (await status(parent)).config_mr_url

    await assert_eventually(config_mr)
    await parent.execute_update("complete_stage", CompleteStage(stage=MigrationStage.INIT, actor="ai-lead"))
    child = engine.client.get_workflow_handle(feature_workflow_id(workflow_id, "duo_chat"))
    child_status = await wait_issue(child)
    await listed(engine, child, {"kind": "feature", "stage": "implement", "due": due_of(child_status, FeatureStage.IMPLEMENT)})
    assert upserts(await events(child)) == 0
    await parent.cancel()
