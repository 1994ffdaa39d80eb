"""Record workflow histories for the replay tests: python -m tests.replay.record

Run it before changing workflow code, commit the JSON it writes, and keep the old
files: every saved history must still replay after the change.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from temporalio.client import WorkflowHandle

import worker as worker_module
from activities.gitlab import GitLabActivities
from activities.rollout import RolloutActivities
from activities.rollout_payloads import FlagKind, FlagTarget
from gitlab_sandbox.gitlab import GitLabSandbox
from gitlab_sandbox.metrics_stack import MetricsStack
from model_migration import operations
from model_migration.clients.flag_targets import GitLabInstanceFlag
from model_migration.clients.gitlab import GitLabClient, WaitGate
from model_migration.clients.prometheus import PrometheusClient
from model_migration.devserver import local_environment
from model_migration.domain.deprecation import DeprecationRequest
from model_migration.domain.escalation import scaled_ladder
from model_migration.domain.models import EpicDraft, EpicRef, IssueDraft, ModelDefinition
from model_migration.domain.rollout import LadderStep
from model_migration.domain.rollout_machine import Abort as RolloutAbort
from model_migration.domain.rollout_machine import Pause as RolloutPause
from model_migration.domain.rollout_machine import Phase, Promote, Retry
from model_migration.domain.rollout_machine import Resume as RolloutResume
from model_migration.domain.stages import FeatureStage, MigrationStage
from model_migration.prometheus_setup import check_prometheus
from tests.conftest import SandboxInfo
from tests.temporal_fixtures import Engine, _evaluation
from tests.workflows.support import CATALOG, REPLACED, SLOW, TARGET, drive, model_for, start_feature, wait_issue
from tests.workflows.test_evaluation_gate import ALWAYS_FAILS, KNOBS, settled
from tests.workflows.test_feature_rollout import SPEC, candidate_gone, tunables
from tests.workflows.test_rollout import ANALYSIS, BASELINE, CANDIDATE, TUNABLES, FlagFollower
from workflows.deprecation import ModelDeprecationWorkflow
from workflows.deprecation_messages import DeprecationInput, DeprecationStage, DeprecationStatus, SelectReplacement, UpdateCutoff
from workflows.messages import (
    MIGRATION_REVISION,
    Abort,
    Approve,
    CompleteStage,
    ExtendDeadline,
    MigrationInput,
    Pause,
    RerunEvaluation,
    Resume,
    RetryRollout,
    Status,
    TournamentInput,
    evaluation_workflow_id,
    feature_workflow_id,
)
from workflows.rollout import RolloutWorkflow
from workflows.rollout_messages import RolloutInput
from workflows.tournament import TournamentWorkflow

HISTORIES = Path(__file__).parent / "histories"
#: A plan day in the recorded deprecations.
DAY = timedelta(seconds=0.2)


async def scenarios(engine: Engine, tag: str) -> dict[str, object]:
    handles: dict[str, object] = {}
    happy = await start_feature(engine, f"{tag}a")
    await wait_issue(happy)
    await drive(happy)
    await happy.result()
    handles["feature_happy"] = happy
    handles["evaluation_pass"] = engine.client.get_workflow_handle(evaluation_workflow_id(happy.id, 1))

    # The gate's other ways (revision 4): fail, then inconclusive and approved, then a harness that errs, re-run.
    gate = await start_feature(engine, f"{tag}e")
    await wait_issue(gate)
    for version, attempt in (("9.0.0-fail", 1), ("9.0.1-unsure", 2)):
        await gate.execute_update("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="achen", prompt_version=version))
        await settled(gate, attempt)
    await gate.execute_update("approve", Approve(actor="achen", reason="recorded"))
    await gate.execute_update("abort", Abort(actor="lead", reason="recorded"))
    await gate.result()
    handles["feature_gate_fail_approve"] = gate
    erring = await start_feature(engine, f"{tag}f")
    await wait_issue(erring)
    implement = CompleteStage(stage=FeatureStage.IMPLEMENT, actor="achen", prompt_version="9.0.0-erroring")
    await erring.execute_update("complete_stage", implement)
    await settled(erring, 1)
    await erring.execute_update("rerun_evaluation", RerunEvaluation(actor="achen", reason="recorded"))
    await settled(erring, 2)
    await erring.execute_update("abort", Abort(actor="lead", reason="recorded"))
    await erring.result()
    handles["feature_gate_harness_error"] = erring
    handles["evaluation_harness_error"] = engine.client.get_workflow_handle(evaluation_workflow_id(erring.id, 1))
    duo = CATALOG.feature("duo_chat")
    candidates = tuple(CATALOG.model(m) for m in ("claude_sonnet_4_5_20250929", "claude_haiku_4_5_20251001", "code_gecko_002"))
    tournament = await engine.client.start_workflow(
        TournamentWorkflow.run, TournamentInput(feature=duo, baseline=CATALOG.model(duo.current_model), candidates=candidates,
                                                tunables=SLOW),
        id=f"tournament:{tag}", task_queue=engine.task_queue,
    )
    await tournament.result()
    handles["tournament"] = tournament

    other = await start_feature(engine, f"{tag}b", "code_generation")
    st = await wait_issue(other)
    await other.execute_update("pause", Pause(actor="lead", reason="quota"))
    await other.execute_update("resume", Resume(actor="lead"))
    due = st.deadlines[0].due + timedelta(days=3)
    await other.execute_update(
        "extend_deadline", ExtendDeadline(actor="lead", stage=FeatureStage.IMPLEMENT, new_date=due, reason="holiday")
    )
    await other.execute_update("abort", Abort(actor="lead", reason="recorded"))
    await other.result()
    handles["feature_pause_extend_abort"] = other

    # Seconds for days: the reminder, the due notice and overdue notes fire before the team acts.
    late = await start_feature(engine, f"{tag}d", "code_review", operations.tunables(day=timedelta(seconds=1)))
    while len((await late.query("status", result_type=Status)).escalations) < 3:
        await asyncio.sleep(0.2)
    await drive(late)
    await late.result()
    handles["feature_escalated"] = late
    return {**handles, **await migration_scenarios(engine, tag)}


async def migration_scenarios(engine: Engine, tag: str) -> dict[str, object]:
    """A migration of two features, filed under an initiative epic, each driven to done."""
    handles: dict[str, object] = {}
    model = model_for(f"{tag}c")
    gl = engine.gitlab_client()
    initiative = gl.ensure_epic(EpicDraft(title="AI Model Version Migration Initiative", description="", marker=f"initiative:{tag}"))
    request = MigrationInput(
        model=model,
        replaced=REPLACED,
        features=(CATALOG.feature("duo_chat"), CATALOG.feature("code_explanation")),
        tunables=SLOW,
        revision=MIGRATION_REVISION,
        initiative_epic=EpicRef(group=gl.group_path or "", iid=initiative.iid),
    )
    parent = engine.client.get_workflow_handle(await operations.start(engine.client, engine.task_queue, request))
    while not (await parent.query("status", result_type=Status)).config_mr_url:
        await asyncio.sleep(0.2)
    await parent.execute_update("complete_stage", CompleteStage(stage=MigrationStage.INIT, actor="ai-lead"))
    for name in ("duo_chat", "code_explanation"):
        child = engine.client.get_workflow_handle(feature_workflow_id(parent.id, name))
        await _issue_opened(child)
        await drive(child)
        handles[f"migration_child_{name}"] = child
    await parent.result()
    handles["migration_two_features"] = parent
    return handles


async def deprecation_scenarios(engine: Engine, tag: str) -> dict[str, object]:
    """A rehearsed deprecation (plan days of 0.2 s): a clear winner, a moved cutoff, one team late;
    and a close call settled by select_replacement."""
    handles: dict[str, object] = {}
    now = datetime.now(UTC)
    features = tuple(CATALOG.feature(f) for f in ("duo_chat", "code_explanation"))
    retiring, winner, loser = (CATALOG.model(m) for m in ("claude_3_7_sonnet_20250219", "claude_sonnet_4_5_20250929", "code_gecko_002"))

    def request(candidates: tuple[ModelDefinition, ...], version: str) -> DeprecationInput:
        ask = DeprecationRequest(
            model=retiring.gitlab_identifier, deprecation_date=now.date(), cutoff=now.date() + timedelta(weeks=8),
            recommended=winner.gitlab_identifier, candidates=tuple(c.gitlab_identifier for c in candidates),
        )
        return DeprecationInput(
            request=ask, retiring=retiring, recommended=winner, candidates=candidates, features=features,
            tunables=SLOW.model_copy(update={"ladder": scaled_ladder(DAY)}), day=DAY, planned_from=now, prompt_version=version,
        )

    clear = await engine.client.start_workflow(
        ModelDeprecationWorkflow.run, request((loser,), "1.0.0-dev"), id=f"deprecation:record/{tag}", task_queue=engine.task_queue,
    )
    migration = engine.client.get_workflow_handle(f"{clear.id}:migration")
    while (await clear.query("status", result_type=DeprecationStatus)).stage != DeprecationStage.MIGRATING:
        await asyncio.sleep(0.2)
    while not (await migration.query("status", result_type=Status)).config_mr_url:
        await asyncio.sleep(0.2)
    await migration.execute_update("complete_stage", CompleteStage(stage=MigrationStage.INIT, actor="ai-lead"))
    await clear.execute_update("update_cutoff", UpdateCutoff(new_date=now.date() + timedelta(weeks=9), reason="recorded"))
    for name in ("duo_chat", "code_explanation"):
        child = engine.client.get_workflow_handle(feature_workflow_id(migration.id, name))
        await _issue_opened(child)
        if name == "code_explanation":  # late: the calendar reaches it first
            while not any(name in e.features for e in (await clear.query("status", result_type=DeprecationStatus)).fired):
                await asyncio.sleep(0.2)
        await drive(child)
        handles[f"deprecation_feature_{name}"] = child
    await clear.result()
    handles["deprecation_clear_winner"] = clear
    handles["deprecation_migration"] = migration

    close = await engine.client.start_workflow(
        ModelDeprecationWorkflow.run, request((), "9.0.1-unsure"), id=f"deprecation:record/{tag}-close", task_queue=engine.task_queue,
    )
    while (await close.query("status", result_type=DeprecationStatus)).stage != DeprecationStage.SELECTING:
        await asyncio.sleep(0.2)
    await close.execute_update("select_replacement", SelectReplacement(model=winner.gitlab_identifier, reason="recorded"))
    while (await close.query("status", result_type=DeprecationStatus)).stage != DeprecationStage.MIGRATING:
        await asyncio.sleep(0.2)
    await close.terminate("recorded")
    await engine.client.get_workflow_handle(f"{close.id}:migration").terminate("recorded")
    handles["deprecation_close_call"] = close
    return handles


async def rollout_scenarios(engine: Engine, tag: str, stack: MetricsStack) -> dict[str, object]:
    """Features whose flag the engine drives (revision 5) on the sandbox's instance flag, the
    gateway following the flag and Prometheus scraping it: a healthy rollout to done with its
    paper trail; a regression rolled back, healed, and retried from the failed step; and a
    rollout started on its own that pauses for no traffic, is retried, promoted, paused, resumed
    and aborted."""

    gitlab = engine.gitlab_client()
    handles: dict[str, object] = {}
    for name, percentages, scenario in (("healthy", (25, 100), {}), ("retried", (10, 25, 100), {"scenario": "regressing"})):
        unique = f"{tag}{name[0]}"
        flag = f"duo_chat_{unique}"
        with FlagFollower(stack, gitlab, "duo_chat", flag, regress_above=15, **scenario) as follower:
            bake = timedelta(seconds=4 if name == "healthy" else 12)
            feature = await start_feature(engine, unique, tunables=tunables(*percentages, bake=bake), spec=SPEC)
            await feature.execute_update("complete_stage", CompleteStage(
                stage=FeatureStage.IMPLEMENT, actor="achen", prompt_version="1.0.0-dev", flag_name=flag,
            ))
            if name == "retried":
                await _rolled_back(feature)
                follower.configure(scenario="healthy")
                await candidate_gone(stack)
                await feature.execute_update("retry_rollout", RetryRollout(actor="achen", reason="recorded"))
            await feature.result()
        handles[f"rollout_feature_{name}"] = feature
        for attempt in (1, 2) if name == "retried" else (1,):
            handles[f"rollout_{name}_{attempt}"] = engine.client.get_workflow_handle(f"{feature.id}:rollout:{attempt}")

    flag = f"quiet_{tag}"
    issue = gitlab.ensure_issue(IssueDraft(title=f"{flag} rollout", description="", marker=f"record:{flag}"))
    with FlagFollower(stack, gitlab, flag, flag, scenario="no_traffic") as follower:
        request = RolloutInput(
            feature=flag, dri="achen", manager="mkowalski", target=FlagTarget(kind=FlagKind.GITLAB_INSTANCE, name=flag),
            candidate=CANDIDATE, baseline=BASELINE, issue_iid=issue.iid, test_run=True, tunables=TUNABLES, analysis=ANALYSIS,
            ladder=tuple(LadderStep(percentage=p, bake=timedelta(seconds=4)) for p in (10, 50, 100)),
        )
        quiet = await engine.client.start_workflow(RolloutWorkflow.run, request, id=f"rollout:record/{tag}", task_queue=engine.task_queue)
        while (await quiet.query(RolloutWorkflow.status)).phase != Phase.PAUSED:
            await asyncio.sleep(0.2)
        follower.configure(scenario="healthy")
        await quiet.execute_update(RolloutWorkflow.retry, Retry(actor="achen", reason="traffic is back"))
        await quiet.execute_update(RolloutWorkflow.promote, Promote(actor="achen", reason="recorded"))
        await quiet.execute_update(RolloutWorkflow.pause, RolloutPause(actor="achen", reason="recorded"))
        await quiet.execute_update(RolloutWorkflow.resume, RolloutResume(actor="achen", reason="recorded"))
        await quiet.execute_update(RolloutWorkflow.abort, RolloutAbort(actor="lead", reason="recorded"))
        await quiet.result()
    handles["rollout_controls"] = quiet
    return handles


async def _rolled_back(feature: WorkflowHandle) -> None:
    """Until the engine has rolled the feature back to implement."""
    while True:
        st = await feature.query("status", result_type=Status)
        if st.stage == FeatureStage.IMPLEMENT and any(r.phase == "rolled_back" for r in getattr(st, "rollouts", ())):
            return
        await asyncio.sleep(0.5)


async def _issue_opened(child: WorkflowHandle) -> None:
    """Until a feature child the parent starts has its issue."""
    while True:
        try:
            if (await child.query("status", result_type=Status)).issue:
                return
        except Exception:  # not started yet
            pass
        await asyncio.sleep(0.2)


def without_stack_traces(text: str) -> str:
    """A failure's stack trace names the recording machine's paths; replay never reads it."""
    data = json.loads(text)

    def scrub(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "stackTrace" and isinstance(value, str):
                    node[key] = ""
                else:
                    scrub(value)
        elif isinstance(node, list):
            for item in node:
                scrub(item)

    scrub(data)
    return json.dumps(data, indent=2)


async def main(version: str, only: str = "") -> None:
    HISTORIES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        token = secrets.token_urlsafe(16)
        box = GitLabSandbox(Path(tmp) / "gitlab.db", token=token, usernames=CATALOG.usernames())
        box.start()
        env = await local_environment()
        try:
            gitlab = GitLabActivities(lambda: GitLabClient(box.url, token, box.project_path, box.group_path))
            profiles = {k: v for k, v in KNOBS.items() if not k.startswith(ALWAYS_FAILS)}  # code_review must pass here
            knobs = {"run_seconds": 0, "profiles": {**profiles, f"{TARGET.gitlab_identifier}@9.0.1-unsure": "inconclusive"}}
            requests.put(f"{box.url}/api/evaluation/-/config", json=knobs, headers={"PRIVATE-TOKEN": token}, timeout=10).raise_for_status()
            info = SandboxInfo(box.url, token, box.project_path, box.group_path, Path(tmp), ())
            evaluation = _evaluation(info, Path(tmp) / "results", WaitGate())
            stack = MetricsStack(Path(tmp) / "metrics", check_prometheus()).start() if only == "rollout" else None
            def flag(target: FlagTarget) -> GitLabInstanceFlag:
                return GitLabInstanceFlag(GitLabClient(box.url, token, box.project_path, box.group_path), target.name)

            metrics_url = stack.prometheus_url if stack else ""
            rollout = RolloutActivities({FlagKind.GITLAB_INSTANCE: flag}, lambda: PrometheusClient(metrics_url)) if stack else None
            try:
                with ThreadPoolExecutor(max_workers=8) as executor:
                    async with worker_module.build_worker(env.client, "record", gitlab, executor, evaluation=evaluation, rollout=rollout):
                        engine, tag = Engine(env.client, "record", gitlab), secrets.token_hex(3)
                        if stack is not None:
                            handles = await rollout_scenarios(engine, tag, stack)
                        else:
                            chosen = {"deprecation": deprecation_scenarios, "migration": migration_scenarios}.get(only, scenarios)
                            handles = await chosen(engine, tag)
            finally:
                if stack is not None:
                    stack.stop()
            index_file = HISTORIES / "ids.json"
            index = json.loads(index_file.read_text()) if index_file.exists() else {}
            for name, handle in handles.items():
                history = await handle.fetch_history()  # type: ignore[attr-defined]
                file = f"{version}-{name}.json"
                (HISTORIES / file).write_text(without_stack_traces(history.to_json()))
                index[file] = handle.id  # type: ignore[attr-defined]
                print(f"wrote {file}", file=sys.stderr)
            index_file.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        finally:
            await env.shutdown()
            box.stop()


if __name__ == "__main__":
    # python -m tests.replay.record <version> [deprecation|migration|rollout]: every scenario, or only those of one workflow.
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "v1", sys.argv[2] if len(sys.argv) > 2 else ""))
