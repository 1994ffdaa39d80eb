"""``model-migration rollout ...`` as a person runs it: subprocesses against the session's dev server, where an
in-process worker runs a feature whose flag the engine drives (a GitLab instance flag in the sandbox, the simulated
gateway following it, Prometheus scraping it), as ``tests/workflows/test_feature_rollout.py`` does.

Refusals that need no server run with none listening, which also proves nothing was sent.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from rich.console import Console
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.rollout_payloads import FlagKind
from model_migration import rollout_render
from model_migration.clients.gitlab import GitLabClient
from model_migration.domain.rollout import LadderStep, Measurement, Outcome
from model_migration.domain.rollout_machine import Phase, StepRecord
from model_migration.domain.rollout_spec import RolloutOverrides, RolloutSpec
from model_migration.domain.stages import FeatureStage
from tests.cli.run import cli, env
from tests.e2e.cli import one_line_error
from tests.metrics_fixtures import MetricsStack
from tests.rollout_worker import rollout_worker
from tests.temporal_fixtures import Engine, assert_eventually
from tests.workflows.support import CATALOG, SLOW, start_feature, status, wait_stage
from tests.workflows.test_rollout import ANALYSIS, FlagFollower
from workflows.messages import Abort, CompleteStage, FeatureStatus, Tunables
from workflows.rollout_messages import RolloutStatus

M = "migration:anthropic/claude-sonnet-4-5/20250929"
#: Long enough that a person's commands land inside one bake; a test run, so status says so.
BAKE = timedelta(seconds=20)
SPEC = CATALOG.feature("duo_chat").model_copy(update={
    "rollout": RolloutSpec(target=FlagKind.GITLAB_INSTANCE, environments=("production",), ladder=(LadderStep(percentage=100),),
                           analysis=ANALYSIS),
})


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("rollout", "promote", M, "--reason", "r"), "a rollout belongs to a feature: add --feature"),
        (("rollout", "status", M), "a rollout belongs to a feature: add --feature"),
        (("rollout", "pause", f"{M}:feature:duo_chat", "-f", "duo_chat"), "give either a feature workflow id or --feature"),
        (("rollout", "abort", "migration-anthropic", "--reason", "r"), "malformed id"),
        (("rollout", "retry", "deprecation:anthropic/claude-3-haiku"), "is a deprecation"),
    ],
)
def test_refusals_before_connecting_are_one_line(args: tuple[str, ...], expected: str) -> None:
    """A rollout command on a whole migration or a malformed id is refused before anything connects."""
    assert expected in one_line_error(cli(*args))


def test_the_report_of_a_retry_after_a_rollback() -> None:
    """Steps before a retry's first step passed in an earlier rollout; the failed step says so; later ones are not reached;
    a metric the input does not name is shown unjudged."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ladder = tuple(LadderStep(percentage=p, bake=timedelta(minutes=15)) for p in (10, 25, 100))
    failed = StepRecord(step=1, label=ladder[1].label, applied_at=t0, ended_at=t0 + timedelta(minutes=5), ended_by="analysis",
                        outcome=Outcome.FAILED, measurements=(Measurement(metric="error_ratio", value=0.3, requests=80),
                                                              Measurement(metric="custom", value=1.0, requests=80)))
    report = rollout_render.build(
        feature_workflow_id="f", rollout_workflow_id="f:rollout:2", attempt=2, running=False, phase=Phase.ROLLED_BACK, step=1,
        ladder=ladder, analysis=ANALYSIS, records=(failed,), log=(), from_step=1, outcome="rolled back at production: 25 % of actors",
    )
    assert [s.outcome for s in report.steps] == ["passed in an earlier rollout", "failed", "—"]
    assert (report.step, report.step_label, report.steps[1].current) == (2, "production: 25 % of actors", True)
    error, custom = report.measurements
    assert (error.result, error.success, error.failure, error.step) == ("failed", "<= 0.05", "> 0.05", 2)
    assert (custom.result, custom.success) == ("", "")
    console = Console(record=True, width=200)
    rollout_render.show(console, report)
    text = console.export_text()
    assert "outcome: rolled back at production: 25 % of actors" in text and "15 min" in text
    assert "error_ratio  0.3    <= 0.05 / > 0.05        80        failed" in text and "custom" in text


# -- against the dev server --------------------------------------------------------------------------


@dataclass
class Driven:
    engine: Engine
    stack: MetricsStack
    gitlab: GitLabClient
    env: dict[str, str]


@pytest_asyncio.fixture(scope="module")
async def driven(dev_env: WorkflowEnvironment, gitlab_sandbox, metrics_stack: MetricsStack, tmp_path_factory) -> AsyncIterator[Driven]:  # type: ignore[no-untyped-def]
    """The worker as ``model-migration worker`` builds it, with the rollout activities on the sandbox and Prometheus."""
    async with rollout_worker(dev_env, gitlab_sandbox, metrics_stack, tmp_path_factory.mktemp("results"), "rollout-cli") as engine:
        environ = env(MODEL_MIGRATION_TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
                      MODEL_MIGRATION_TASK_QUEUE=engine.task_queue)
        yield Driven(engine, metrics_stack, engine.gitlab_client(), environ)


def tunables(*percentages: int) -> Tunables:
    overrides = RolloutOverrides(
        ladder=tuple(LadderStep(percentage=p) for p in percentages), bake=BAKE, hold=timedelta(seconds=2), test_run=True,
        analysis_interval=timedelta(seconds=1), analysis_window=timedelta(seconds=3), drain_window=timedelta(seconds=3),
        drain_recheck=timedelta(seconds=1),
    )
    return SLOW.model_copy(update={"rollout": overrides})


async def run(d: Driven, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a thread, so that the in-process worker keeps serving while it waits on it."""
    return await asyncio.to_thread(cli, *args, environ=d.env)


async def ok(d: Driven, *args: str) -> str:
    done = await run(d, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


async def refused(d: Driven, *args: str) -> str:
    return one_line_error(await run(d, *args))


async def rollout_now(d: Driven, feature: WorkflowHandle, check: Callable[[RolloutStatus], bool], timeout: float = 60) -> RolloutStatus:
    """The running rollout's status once ``check`` holds for it."""

    async def ready() -> RolloutStatus:
        st = await status(feature)
        assert isinstance(st, FeatureStatus) and st.rollout_workflow_id, "no rollout running"
        now: RolloutStatus = await d.engine.client.get_workflow_handle(st.rollout_workflow_id).query("status", result_type=RolloutStatus)
        assert check(now), (now.phase, now.step_label, [(e.event, e.detail) for e in now.log][-4:])
        return now

    return await assert_eventually(ready, timeout=timeout, interval=0.5)


def migration_of(feature_id: str) -> str:
    return feature_id.split(":feature:")[0]


async def finish(handle: WorkflowHandle) -> None:
    """Abort a feature a test left running (its rollout turns the flag off), or terminate it."""
    try:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return
        await handle.execute_update("abort", Abort(actor="test", reason="test over"))
        await asyncio.wait_for(handle.result(), timeout=30)
    except Exception:  # noqa: BLE001 - whatever went wrong, nothing is left running
        try:
            await handle.terminate("test over")
        except RPCError:
            pass


async def test_the_controls_move_a_rollout_and_retry_starts_a_new_one(driven: Driven, unique: str) -> None:
    """Each control reaches the running rollout and is logged with its actor and reason; refusals are one line; status
    shows the ladder and every measurement, --json the same; after the abort, retry asks the feature for rollout 2."""
    d = driven
    handle = await start_feature(d.engine, unique, tunables=tunables(10, 50, 100), spec=SPEC)
    fid, flag = handle.id, f"duo_chat_{unique}"
    try:
        await handle.execute_update("complete_stage", CompleteStage(
            stage=FeatureStage.IMPLEMENT, actor="achen", prompt_version="1.0.0-dev", flag_name=flag,
        ))
        await wait_stage(handle, FeatureStage.ROLLOUT, timeout=150)
        first = f"{fid}:rollout:1"
        with FlagFollower(d.stack, d.gitlab, "duo_chat", flag, scenario="no_traffic") as follower:
            # No traffic: the first step's bake ends inconclusive, and the analysis pauses the rollout.
            await rollout_now(d, handle, lambda s: s.paused_by == "analysis", timeout=BAKE.total_seconds() + 40)
            human = await ok(d, "rollout", "status", fid)
            assert f"{first}  rollout 1 of {fid} (running)" in human
            assert f"flag: {flag} (gitlab_instance)  phase: paused  step 1 of 3: production: 10 % of actors" in human
            assert "paused by the analysis" in human and "test run: bakes under 15 minutes allowed" in human
            assert "1. production: 10 % of actors" in human and "inconclusive; paused" in human
            assert "3. production: 100 % of actors" in human
            assert "no data" in human and "<= 0.05 / > 0.05" in human
            line = await refused(d, "rollout", "resume", fid, "--actor", "achen")
            assert f"{first} refused resume: an inconclusive step waits for retry, promote or abort, not resume" in line

            follower.configure(scenario="healthy")
            said = await ok(d, "rollout", "retry", migration_of(fid), "-f", "duo_chat", "--reason", "traffic is back", "--actor", "achen")
            assert said.strip() == f"{first}: retried: baking production: 10 % of actors again"
            pausing = ("rollout", "pause", fid, "--reason", "checking the dashboards", "--actor", "achen", "--request-id", f"p-{unique}")
            said = await ok(d, *pausing)
            assert said.strip() == f"{first}: paused at production: 10 % of actors"
            assert await ok(d, *pausing) == said  # the same request id: run once, answered again
            assert "the rollout is paused already" in await refused(d, "rollout", "pause", fid, "--actor", "achen")
            assert "resumed" in await ok(d, "rollout", "resume", fid, "--reason", "dashboards are fine", "--actor", "achen")
            line = await refused(d, "rollout", "promote", fid, "--actor", "achen")
            assert line == f"error: {first} refused promote: this command needs a reason"
            said = await ok(d, "rollout", "promote", fid, "--reason", "healthy for a while", "--actor", "achen")
            assert said.strip() == f"{first}: next: production: 50 % of actors"
            said = await ok(d, "rollout", "promote-full", fid, "--reason", "the release needs it", "--actor", "lead")
            assert said.strip() == f"{first}: promoted to production: 100 % of actors"
            await rollout_now(d, handle, lambda s: s.step == 2 and any(r.step == 2 and r.measurements for r in s.records))
            await ok(d, "rollout", "pause", fid, "--reason", "reading the table", "--actor", "lead")

            human = await ok(d, "rollout", "status", fid)
            assert "paused by @lead" in human and "▶" in human
            assert "promoted by @achen" in human and "promoted by @lead" in human
            for logged in ("retried by @achen — traffic is back", "paused by @achen — checking the dashboards",
                           "resumed by @achen — dashboards are fine", "promoted by @achen — healthy for a while",
                           "promoted to 100 % by @lead — the release needs it", "paused by @lead — reading the table"):
                assert logged in human, logged
            report = json.loads(await ok(d, "rollout", "status", fid, "--json"))
            assert (report["rollout_workflow_id"], report["attempt"], report["running"], report["phase"]) == (first, 1, True, "paused")
            assert (report["step"], report["paused_by"], report["test_run"], report["flag"]) == (3, "lead", True, flag)
            assert [s["outcome"] for s in report["steps"]] == ["promoted by @achen", "promoted by @lead", "paused"]
            top = [m for m in report["measurements"] if m["step"] == 3]
            assert {m["metric"] for m in top} == {"error_ratio", "latency_p95", "acceptance_rate"}
            error = next(m for m in top if m["metric"] == "error_ratio")
            assert (error["success"], error["failure"], error["min_requests"]) == ("<= 0.05", "> 0.05", 20)
            assert error["value"] is not None and error["requests"] > 0 and error["result"] in ("successful", "inconclusive", "failed")
            assert [m["bake"] for m in report["measurements"] if m["step"] == 1][0] == 1
            assert max(m["bake"] for m in report["measurements"] if m["step"] == 1) >= 2  # the retry baked it again
            assert [e["actor"] for e in report["log"] if e["actor"] != "model-migration"] == ["achen"] * 4 + ["lead"] * 2

            said = await ok(d, "rollout", "abort", fid, "--reason", "test over", "--actor", "lead")
            assert said.strip() == f"{first}: aborted; the flag is off everywhere"
        await wait_stage(handle, FeatureStage.IMPLEMENT, timeout=60)

        human = await ok(d, "status", fid)
        assert "driven by the engine (gitlab_instance)" in human and "rollout 1, started" in human
        assert ": aborted — aborted: test over" in human and "running rollout" not in human, human
        ended = await ok(d, "rollout", "status", fid)
        assert f"{first}  rollout 1 of {fid} (ended)" in ended and "outcome: aborted: test over" in ended
        assert "aborted by @lead — test over" in ended
        line = await refused(d, "rollout", "promote", fid, "--reason", "now", "--actor", "lead")
        assert "rollout 1 has ended (aborted: test over), nothing to promote — model-migration rollout retry" in line

        said = await ok(d, "rollout", "retry", fid, "--reason", "the cause is fixed", "--actor", "achen")
        assert said.strip() == f"{fid}: rollout 2 started from step 1"
        st = await wait_stage(handle, FeatureStage.ROLLOUT)
        assert isinstance(st, FeatureStatus) and st.rollout_workflow_id == f"{fid}:rollout:2"
        await rollout_now(d, handle, lambda s: s.phase in (Phase.BAKING, Phase.PAUSED))
        report = json.loads(await ok(d, "rollout", "status", fid, "--json"))
        assert (report["rollout_workflow_id"], report["attempt"], report["running"]) == (f"{fid}:rollout:2", 2, True)
        human = await ok(d, "status", fid)
        assert f"running rollout: {fid}:rollout:2" in human and "rollout 2, started" in human
    finally:
        await finish(handle)


async def test_a_feature_without_an_engine_rollout_is_told_what_to_do(driven: Driven, unique: str) -> None:
    """A feature whose team drives the flag is pointed at report-rollout; a driven one not yet in rollout is told so."""
    d = driven
    by_hand = await start_feature(d.engine, unique, feature="code_explanation")
    waiting = await start_feature(d.engine, unique, spec=SPEC)
    try:
        await wait_stage(waiting, FeatureStage.IMPLEMENT)
        for verb in ("pause", "resume", "promote", "promote-full", "abort", "retry", "status"):
            line = await refused(d, "rollout", verb, by_hand.id, *(("--reason", "r") if verb != "status" else ()))
            assert f"{by_hand.id} has no engine rollout: its team drives flag" in line, line
            assert f"report-rollout {by_hand.id} --percentage <n>" in line
        line = await refused(d, "rollout", "promote", migration_of(waiting.id), "-f", "duo_chat", "--reason", "r")
        assert f"{waiting.id} has no engine rollout yet: the feature is in implement" in line
        assert "has no engine rollout yet" in await refused(d, "rollout", "retry", waiting.id)
        assert "has no engine rollout yet" in await refused(d, "rollout", "status", waiting.id)
        assert "no workflow" in await refused(d, "rollout", "pause", f"{migration_of(waiting.id)}x:feature:duo_chat")
    finally:
        await finish(by_hand)
        await finish(waiting)
