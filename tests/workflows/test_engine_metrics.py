"""The engine's metrics from workflow code, read from an SDK metric buffer: a feature's stages,
its escalations by kind (overdue among them) and its gate verdict, each counted once, replays included."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.runtime import BUFFERED_METRIC_KIND_COUNTER, MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import worker as worker_module
from activities.notify import NotifyActivities
from model_migration.clients.gitlab import WaitGate
from model_migration.clients.notifier import LogNotifier
from model_migration.converter import data_converter
from model_migration.devserver import free_port
from model_migration.domain.stages import FeatureStage
from model_migration.temporal import binary, register_search_attributes
from tests.temporal_fixtures import Engine, _activities, assert_eventually
from tests.workflows.support import start_feature, status, wait_issue
from workflows.messages import CompleteStage, MetricResult, ReportEvaluation, Tunables, Verdict


async def test_a_feature_counts_its_stages_escalations_and_verdict(gitlab_sandbox, unique: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Implement left 10 days (due on day 7): reminder, due and three overdue escalations; then the
    team completes it and reports a passing evaluation: evaluate and rollout entered, one verdict.
    On a time-skipping server of its own, whose client runs on a runtime that buffers metrics."""
    buffer = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(binary("temporal-test-server")), port=free_port(), data_converter=data_converter, runtime=runtime,
    )
    async with env:
        await register_search_attributes(env.client)
        await _run_feature(env, gitlab_sandbox, unique, tmp_path, buffer)


async def _run_feature(env: WorkflowEnvironment, gitlab_sandbox, unique: str, tmp_path, buffer: MetricBuffer) -> None:  # type: ignore[no-untyped-def]
    gitlab = _activities(gitlab_sandbox, WaitGate())
    queue = f"metrics-{unique}"
    # No workflow cache: every workflow task replays the history from the start, so a metric that
    # the SDK did not hold back during replay would be counted again and again.
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(env.client, task_queue=queue, workflows=worker_module.WORKFLOWS, activity_executor=executor,
                          activities=[*gitlab.all(), NotifyActivities(LogNotifier()).notify], max_cached_workflows=0):
            handle = await start_feature(Engine(env.client, queue, gitlab), unique, "code_generation", Tunables(), as_parent=False,
                                         revision=3)
            await wait_issue(handle)
            await env.sleep(timedelta(days=10))
            fired = Counter(e.kind.value for e in (await status(handle)).escalations)
            await handle.execute_update("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="x", prompt_version="1.0.0"))
            evaluation = ReportEvaluation(actor="x", verdict=Verdict.PASS, metrics=(MetricResult(name="m", baseline=1.0, candidate=1.1),))
            await handle.execute_update("report_evaluation", evaluation)

            async def in_rollout() -> None:
                assert (await status(handle)).stage == FeatureStage.ROLLOUT

            await assert_eventually(in_rollout)
            await handle.terminate("test over")

    counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
    for update in buffer.retrieve_updates():
        if update.metric.name.startswith("model_migration_") and update.metric.kind == BUFFERED_METRIC_KIND_COUNTER:
            labels = tuple(sorted((k, str(v)) for k, v in update.attributes.items() if k in ("workflow", "stage", "kind", "verdict")))
            counts[(update.metric.name, labels)] += int(update.value)

    assert fired == {"reminder": 1, "due": 1, "overdue": 3}, fired
    escalations = {dict(labels)["kind"]: n for (name, labels), n in counts.items() if name == "model_migration_escalations"}
    assert escalations == dict(fired), counts
    stages = {dict(labels)["stage"]: n for (name, labels), n in counts.items() if name == "model_migration_stage_entered"}
    assert stages == {"implement": 1, "evaluate": 1, "rollout": 1}, counts
    assert counts[("model_migration_gate_verdicts", (("verdict", "pass"), ("workflow", "feature")))] == 1, counts
