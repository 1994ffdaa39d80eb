"""Helpers shared by the workflow tests: inputs, starting, driving a feature through its stages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from model_migration.catalog import load_catalog
from model_migration.domain.deadlines import StagePlan
from model_migration.domain.models import FeatureSpec
from model_migration.domain.stages import FeatureStage
from tests.temporal_fixtures import Engine, assert_eventually
from workflows import attributes
from workflows.feature import FeatureMigrationWorkflow
from workflows.messages import (
    FEATURE_REVISION,
    CompleteStage,
    FeatureMigrationInput,
    MetricResult,
    ReportEvaluation,
    ReportRollout,
    Status,
    Tunables,
    Verdict,
)

CATALOG = load_catalog()
TARGET = CATALOG.model("claude_sonnet_4_5_20250929")
REPLACED = CATALOG.model("claude_3_7_sonnet_20250219")
#: Days-long stages: nothing escalates while a dev-server test runs.
SLOW = Tunables(
    activity_timeout=timedelta(seconds=10), merge_poll=timedelta(seconds=1),
    evaluation_poll=timedelta(seconds=0.2), evaluation_heartbeat=timedelta(seconds=5),
)
QUICK_STAGES = StagePlan(
    implement=timedelta(hours=1), evaluate=timedelta(hours=1), rollout=timedelta(hours=1), cleanup=timedelta(hours=1)
)


def model_for(unique: str):  # type: ignore[no-untyped-def]
    """The target model under a version of its own, so every test has its own workflow ids."""
    return TARGET.model_copy(update={"version": unique})


async def start_feature(
    engine: Engine, unique: str, feature: str = "duo_chat", tunables: Tunables = SLOW, *, as_parent: bool = True,
    revision: int = FEATURE_REVISION, spec: FeatureSpec | None = None,
) -> WorkflowHandle:
    """Start a feature workflow on its own. ``as_parent``: as the parent starts its children,
    with the plan's start and the first search attributes (wall-clock time, so not on the
    time-skipping server, whose clock runs ahead); otherwise the workflow plans from its own
    start and upserts them itself."""
    model = model_for(unique)
    migration = f"migration:{model.key}"
    request = FeatureMigrationInput(
        migration_id=migration, feature=spec or CATALOG.feature(feature), model=model, replaced=REPLACED, tunables=tunables,
        planned_from=datetime.now(UTC) if as_parent else None, revision=revision,
    )
    return await engine.client.start_workflow(
        FeatureMigrationWorkflow.run, request, id=f"{migration}:feature:{feature}", task_queue=engine.task_queue,
        search_attributes=attributes.at_feature_start(request) if as_parent else None,
    )


async def status(handle: WorkflowHandle) -> Status:
    return await handle.query("status", result_type=Status)


async def wait_issue(handle: WorkflowHandle) -> Status:
    """The status once the workflow has its issue; a child the parent has yet to start is waited for."""

    async def check() -> Status:
        try:
            st = await status(handle)
        except RPCError as err:
            assert err.status != RPCStatusCode.NOT_FOUND, f"{handle.id} not started yet"
            raise
        assert st.issue is not None
        return st

    return await assert_eventually(check)


async def drive(handle: WorkflowHandle, actor: str = "achen") -> None:
    """Walk one feature through every stage the way its team would."""
    await handle.execute_update("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor=actor, prompt_version="1.0.0-dev"))
    if (await status(handle)).gates:  # revision 4: the engine's gate passes the target model
        await wait_stage(handle, FeatureStage.ROLLOUT, timeout=150)  # a rate-limited harness waits out GitLab's window
    else:
        await handle.execute_update("report_evaluation", ReportEvaluation(
            actor=actor, verdict=Verdict.PASS, metrics=(MetricResult(name="correctness", baseline=3.0, candidate=3.3),),
        ))
    for pct in (1, 10, 25, 50, 75, 100):
        await handle.execute_update("report_rollout", ReportRollout(actor=actor, percentage=pct))
    await handle.execute_update("complete_stage", CompleteStage(stage=FeatureStage.CLEANUP, actor=actor))


async def wait_stage(handle: WorkflowHandle, stage: FeatureStage, timeout: float = 30.0) -> Status:
    """The status once the feature is in ``stage`` (the engine's gate moves it on its own)."""

    async def check() -> Status:
        st = await status(handle)
        assert st.stage == stage, f"{handle.id} is in {st.stage}, not {stage}"
        return st

    return await assert_eventually(check, timeout=timeout)
