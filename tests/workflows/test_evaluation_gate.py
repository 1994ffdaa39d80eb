"""The evaluate stage at revision 4: the engine runs the harness and the gate itself.

The sandbox's simulator decides what each (model, prompt version) scores, so the prompt version
a test completes implement with picks the gate's verdict: ``9.0.0-fail`` fails, ``9.0.0-unsure``
is inconclusive, ``9.0.0-erroring`` errs on about 30 % of examples; anything else passes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from temporalio.client import WorkflowHandle

from model_migration.domain.commands import Approve, Reject, RerunEvaluation
from model_migration.domain.escalation import EscalationKind
from model_migration.domain.evaluation import EvaluationSpec
from model_migration.domain.stages import FeatureStage
from tests.temporal_fixtures import Engine, assert_eventually
from tests.workflows.support import CATALOG, TARGET, start_feature, status, wait_issue, wait_stage
from tests.workflows.test_feature import rejected
from workflows.messages import Abort, CompleteStage, FeatureStatus, ReportEvaluation, Verdict, evaluation_workflow_id

MODEL = TARGET.gitlab_identifier
#: Results always fail on this dataset, whatever the prompt version: for the loop cap.
ALWAYS_FAILS = "code_review.merge_requests.v1"
KNOBS = {
    f"{MODEL}@9.0.0-fail": "fail",
    f"{MODEL}@9.0.0-unsure": "inconclusive",
    f"{MODEL}@9.0.0-erroring": "erroring",
    f"{ALWAYS_FAILS}:{MODEL}": "fail",
}


@pytest.fixture
def simulator(gitlab_sandbox) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The sandbox's experiment service, with fast runs and the knobs above."""
    base = f"{gitlab_sandbox.url}/api/evaluation"
    headers = {"PRIVATE-TOKEN": gitlab_sandbox.token}
    assert requests.put(f"{base}/-/config", json={"run_seconds": 0, "profiles": KNOBS}, headers=headers, timeout=10).ok
    yield base
    requests.put(f"{base}/-/config", json={}, headers=headers, timeout=10)


async def implement(handle: WorkflowHandle, version: str) -> None:
    await handle.execute_update("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="achen", prompt_version=version))


async def settled(handle: WorkflowHandle, attempt: int) -> FeatureStatus:
    """The status once evaluation ``attempt`` has its verdict (or its error)."""

    async def check() -> FeatureStatus:
        st = await status(handle)
        assert isinstance(st, FeatureStatus) and len(st.gates) >= attempt, st
        assert not st.gates[attempt - 1].running, st.gates[attempt - 1]
        return st

    return await assert_eventually(check, timeout=60)


async def note_with(engine: Engine, st: FeatureStatus, text: str) -> str:
    """The note holding ``text``, once the workflow has posted it (notes go out after the state changes)."""

    async def posted() -> str:
        found = [n for n in notes(engine, st) if text in n]
        assert found, f"no note with {text!r} yet"
        return found[-1]

    return await assert_eventually(posted)


def notes(engine: Engine, st: FeatureStatus) -> list[str]:
    assert st.issue is not None
    with engine.gitlab_client() as gl:
        return [n.body for n in gl.list_notes(st.issue.iid)]


async def test_a_passing_gate_rolls_out_and_keeps_examples_out_of_history(engine: Engine, unique: str, simulator: str) -> None:
    """Pass → rollout, with one note holding the table and the run's link; the child's history holds no examples."""
    handle = await start_feature(engine, unique)
    await wait_issue(handle)
    await implement(handle, "1.0.0-dev")
    st = await wait_stage(handle, FeatureStage.ROLLOUT, timeout=60)
    gate = st.gates[0]
    assert gate.result is not None and gate.result.verdict is Verdict.PASS and gate.run_url.startswith("http")
    assert {m.name for m in gate.result.metrics} == set(EvaluationSpec().margins)
    assert gate.result.usable >= 200 and len(gate.result.digest) == 64
    body = await note_with(engine, st, "evaluate → rollout")
    assert "| correctness |" in body and "Gate verdict **pass**" in body and gate.run_url in body
    child = engine.client.get_workflow_handle(evaluation_workflow_id(handle.id, 1))
    history = await child.fetch_history()
    size = sum(len(p.data) for e in history.events for p in _payloads(e))
    assert size < 20_000, f"the evaluation history carries {size} bytes of payloads"
    await handle.execute_update("abort", Abort(actor="x", reason="test over"))


def _payloads(event):  # type: ignore[no-untyped-def]
    """Every payload an event carries: inputs, results, heartbeat details."""
    for attr in ("workflow_execution_started_event_attributes", "activity_task_scheduled_event_attributes",
                 "activity_task_completed_event_attributes", "workflow_execution_completed_event_attributes"):
        if event.HasField(attr):
            holder = getattr(event, attr)
            for field in ("input", "result"):
                if hasattr(holder, field) and holder.HasField(field):
                    yield from getattr(holder, field).payloads


async def test_fail_then_a_higher_prompt_version_passes(engine: Engine, unique: str, simulator: str) -> None:
    """Fail → implement naming the failing metrics; the same or a lower version is refused; a higher one passes."""
    handle = await start_feature(engine, unique)
    await wait_issue(handle)
    await implement(handle, "9.0.0-fail")
    st = await settled(handle, 1)
    assert st.stage == FeatureStage.IMPLEMENT and st.evaluation_loops == 1
    result = st.gates[0].result
    assert result is not None and result.verdict is Verdict.FAIL and "correctness" in result.failing_metrics
    body = await note_with(engine, st, "evaluate → implement")
    assert "Failing: **" in body and "correctness" in body and "higher than `9.0.0-fail`" in body
    for version in ("9.0.0-fail", "8.9.9"):
        msg = await rejected(handle, "complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="achen", prompt_version=version))
        assert "not higher than 9.0.0-fail" in msg
    await implement(handle, "9.0.1")
    st = await wait_stage(handle, FeatureStage.ROLLOUT, timeout=60)
    assert [g.verdict for g in st.gates] == [Verdict.FAIL, Verdict.PASS]
    assert [g.prompt_version for g in st.gates] == ["9.0.0-fail", "9.0.1"]
    await handle.execute_update("abort", Abort(actor="x", reason="test over"))


async def test_the_loop_cap_escalates_to_the_manager_and_ai_framework(engine: Engine, unique: str, simulator: str) -> None:
    """The max_loops-th failed evaluation escalates, with priority::1 on the issue."""
    feature = CATALOG.feature("code_review")
    assert feature.dataset == ALWAYS_FAILS
    spec = feature.model_copy(update={"evaluation": feature.evaluation.model_copy(update={"max_loops": 2})})
    handle = await start_feature(engine, unique, "code_review", spec=spec)
    await wait_issue(handle)
    await implement(handle, "1.0.0")
    st = await settled(handle, 1)
    assert st.stage == FeatureStage.IMPLEMENT and not any(e.kind is EscalationKind.LOOP_CAP for e in st.escalations)
    await implement(handle, "1.1.0")
    st = await settled(handle, 2)
    assert st.stage == FeatureStage.IMPLEMENT and st.evaluation_loops == 2
    assert [e.kind for e in st.escalations if e.kind is EscalationKind.LOOP_CAP] == [EscalationKind.LOOP_CAP]
    body = await note_with(engine, st, "failed 2 times")
    assert f"@{feature.manager}" in body and "@ai-framework" in body
    assert st.issue is not None
    with engine.gitlab_client() as gl:
        assert "priority::1" in gl.get_issue(st.issue.iid).labels
    await handle.execute_update("abort", Abort(actor="x", reason="test over"))


@pytest.mark.parametrize("decision", ["approve", "reject"])
async def test_inconclusive_waits_for_the_dri(engine: Engine, unique: str, simulator: str, decision: str) -> None:
    """Inconclusive → the DRI approves (rollout) or rejects (implement), with a reason recorded in a note and in status."""
    handle = await start_feature(engine, unique)
    await wait_issue(handle)
    await implement(handle, "9.0.0-unsure")
    st = await settled(handle, 1)
    assert st.stage == FeatureStage.EVALUATE and st.gates[0].awaiting_decision
    assert st.pending_action is not None and st.pending_action.command == "approve | reject"
    assert "needs a reason" in await rejected(handle, decision, Approve(actor="achen", reason=" "))
    command = Approve(actor="achen", reason="latency matters more here") if decision == "approve" else Reject(
        actor="achen", reason="readability regressed on long threads")
    await handle.execute_update(decision, command)
    st = await status(handle)
    assert st.stage == (FeatureStage.ROLLOUT if decision == "approve" else FeatureStage.IMPLEMENT)
    gate = st.gates[0]
    assert (gate.decided_by, gate.decision, gate.reason) == ("achen", decision, command.reason)
    await note_with(engine, st, command.reason)
    assert "not evaluate" in await rejected(handle, decision, command)  # decided once; the feature has moved on
    await handle.execute_update("abort", Abort(actor="x", reason="test over"))


async def test_harness_errors_are_retried_then_escalated_and_a_rerun_recovers(
    engine: Engine, unique: str, simulator: str, gitlab_sandbox
) -> None:  # type: ignore[no-untyped-def]
    """A harness erring on too many examples is run again (3 runs), then escalated; `rerun_evaluation` after a fix passes."""
    before = _registrations(gitlab_sandbox)
    handle = await start_feature(engine, unique)
    await wait_issue(handle)
    await implement(handle, "9.0.0-erroring")
    st = await settled(handle, 1)
    assert st.stage == FeatureStage.EVALUATE and st.gates[0].error and "errored" in st.gates[0].error
    # Three harness runs, each registered once: three activities, none retried (a retry would resume, not register).
    child = await engine.client.get_workflow_handle(evaluation_workflow_id(handle.id, 1)).fetch_history()
    started = [
        e.activity_task_started_event_attributes.attempt for e in child.events if e.HasField("activity_task_started_event_attributes")
    ]
    assert started == [1, 1, 1], started
    assert _registrations(gitlab_sandbox) - before >= 3  # the service saw them (other tests' workers may add their own)
    assert [e.kind for e in st.escalations] == [EscalationKind.HARNESS]
    body = await note_with(engine, st, "gave no verdict")
    assert "@ai-framework" in body and "--rerun" in body
    assert st.pending_action is not None and st.pending_action.command == "evaluate --rerun"
    fixed = {**KNOBS, f"{MODEL}@9.0.0-erroring": "pass"}
    headers = {"PRIVATE-TOKEN": gitlab_sandbox.token}
    assert requests.put(f"{simulator}/-/config", json={"run_seconds": 0, "profiles": fixed}, headers=headers, timeout=10).ok
    await handle.execute_update("rerun_evaluation", RerunEvaluation(actor="achen", reason="provider quota raised"))
    st = await wait_stage(handle, FeatureStage.ROLLOUT, timeout=60)
    assert len(st.gates) == 2 and st.gates[1].verdict is Verdict.PASS
    await handle.execute_update("abort", Abort(actor="x", reason="test over"))


def _registrations(sandbox) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for _, method, path, status, _ in sandbox.server.requests.entries()
               if method == "POST" and path.endswith("/v1/experiments/register") and status == 200)


async def test_a_teams_report_goes_through_the_gate(engine: Engine, unique: str, simulator: str, gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """report_evaluation needs a results URL; the gate, not the team's verdict, decides."""
    headers = {"PRIVATE-TOKEN": gitlab_sandbox.token}
    body = {"dataset": "duo_chat.questions.v3", "prompt_id": "chat/react", "prompt_version": "2.0.0", "model": "sim-fail",
            "evaluators": list(EvaluationSpec().evaluators), "baseline": {"model": "sim-baseline", "prompt_version": "1.0.0"}}
    request_id = requests.post(f"{simulator}/v1/experiments/register", json=body, headers=headers, timeout=10).json()["request_id"]
    url = f"{simulator}/v1/experiments/results?request_id={request_id}"
    assert requests.get(f"{simulator}/v1/experiments/state", params={"request_id": request_id}, headers=headers, timeout=10).ok
    handle = await start_feature(engine, unique)
    await wait_issue(handle)
    await implement(handle, "9.0.0-unsure")
    await settled(handle, 1)
    assert "needs --url" in await rejected(handle, "report_evaluation", ReportEvaluation(actor="achen", verdict=Verdict.PASS))
    await handle.execute_update("report_evaluation", ReportEvaluation(actor="achen", verdict=Verdict.PASS, url=url))
    st = await settled(handle, 2)
    assert st.stage == FeatureStage.IMPLEMENT
    gate = st.gates[1]
    assert gate.team_verdict is Verdict.PASS and gate.verdict is Verdict.FAIL and gate.results_url == url
    await note_with(engine, st, "The team reported **pass**; the gate's verdict stands.")
    await handle.execute_update("abort", Abort(actor="x", reason="test over"))
