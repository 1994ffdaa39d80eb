"""A 200-feature migration keeps its parent's history under 10,000 events and 5 MB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType

from model_migration.domain.stages import FeatureStage, MigrationStage
from tests.scale_catalog import generated_catalog
from tests.temporal_fixtures import Engine, assert_eventually
from tests.workflows.support import REPLACED, SLOW, model_for, status
from workflows import attributes
from workflows.messages import (
    MIGRATION_REVISION,
    Abort,
    CompleteStage,
    ExtendDeadline,
    MigrationInput,
    MigrationResult,
    feature_workflow_id,
)
from workflows.migration import ModelMigrationWorkflow

FEATURES = 200
#: Deadline moves per feature: each one changes the feature's ETA in the tracking table.
EXTENSIONS = 2
MAX_EVENTS = 10_000
MAX_BYTES = 5 * 1024 * 1024


@pytest.mark.timeout(300)
async def test_200_features_keep_the_parent_history_small(engine: Engine, unique: str, tmp_path: Path) -> None:
    """200 features at real name lengths: the migration starts with its search attributes, init
    completes, every feature opens its issue (the tracking table gains its link), has its cleanup
    deadline moved twice (a new ETA in the table each time) and is then aborted, which ends it and
    hands the parent its outcome. Each of these sends the parent a progress signal and a table
    update, the traffic the full stage walk sends (implement, evaluate, rollout, cleanup, done are
    the same signal), without running 200 evaluations and rollouts; the bound is then checked
    on the parent's whole, finished history. Updates go 16 at a time, so the parent often takes
    several signals in one task; sent one by one (a feature at a time) the same walk costs
    about 27 events per feature, 5,400 for 200."""
    catalog = generated_catalog(tmp_path / "catalog", FEATURES)
    model = model_for(unique)
    request = MigrationInput(
        model=model, replaced=REPLACED, features=catalog.features, tunables=SLOW, revision=MIGRATION_REVISION,
        planned_from=datetime.now(UTC),
    )
    parent = await engine.client.start_workflow(
        ModelMigrationWorkflow.run, request, id=f"migration:{model.key}", task_queue=engine.task_queue,
        search_attributes=attributes.at_migration_start(request),
    )

    async def config_mr() -> None:
        assert (await status(parent)).config_mr_url, "no model configuration merge request yet"

    await assert_eventually(config_mr, timeout=60)
    await parent.execute_update("complete_stage", CompleteStage(stage=MigrationStage.INIT, actor="ai-lead"))

    async def every_issue_open() -> None:
        st = await status(parent)
        missing = [f.feature for f in st.features if not f.issue_url]
        assert not missing, f"{len(missing)} features without an issue yet"

    await assert_eventually(every_issue_open, timeout=120, interval=1.0)
    children = [engine.client.get_workflow_handle(feature_workflow_id(parent.id, f.name)) for f in catalog.features]
    limit = asyncio.Semaphore(16)

    async def update(handle, name: str, arg: object) -> None:  # type: ignore[no-untyped-def]
        async with limit:
            await handle.execute_update(name, arg)

    later = datetime.now(UTC) + timedelta(days=400)
    for n in range(1, EXTENSIONS + 1):
        await asyncio.gather(*(
            update(h, "extend_deadline", ExtendDeadline(actor="lead", stage=FeatureStage.CLEANUP, new_date=later + timedelta(days=n),
                                                        reason=f"move {n}"))
            for h in children
        ))
    await asyncio.gather(*(update(h, "abort", Abort(actor="lead", reason="scale test")) for h in children))
    result: MigrationResult = await parent.result()
    assert len(result.features) == FEATURES and {f.stage for f in result.features} == {FeatureStage.ABORTED}

    st = await status(parent)
    assert st.issue is not None
    description = engine.gitlab_client().get_issue(st.issue.iid).description
    assert description.count("/-/issues/") >= FEATURES and f"Progress: 0 of {FEATURES} feature(s) done" in description

    history = await parent.fetch_history()
    events = len(history.events)
    size = sum(e.ByteSize() for e in history.events)
    server_size = (await parent.describe()).raw_description.workflow_execution_info.history_size_bytes
    signals = sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in history.events)
    activities = sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in history.events)
    print(f"\nparent history of a {FEATURES}-feature migration: {events} events, {size} bytes (server: {server_size}) "
          f"({signals} signals, {activities} activities)")
    by_type: dict[str, list[int]] = {}
    for e in history.events:
        by_type.setdefault(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_"), []).append(e.ByteSize())
    for name, sizes in sorted(by_type.items(), key=lambda kv: -sum(kv[1]))[:6]:
        print(f"  {name}: {len(sizes)} events, {sum(sizes)} bytes")
    assert signals >= FEATURES * (EXTENSIONS + 1), "every feature's progress reached the parent"
    assert events < MAX_EVENTS, f"{events} events"
    assert max(size, server_size) < MAX_BYTES, f"{size} bytes"
