"""FeatureMigrationWorkflow on the dev server: stages, validators, pause, abort, deadlines, status."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError

from model_migration.domain.escalation import EscalationKind
from model_migration.domain.stages import FeatureStage
from tests.temporal_fixtures import Engine
from tests.workflows.support import CATALOG, drive, start_feature, status, wait_issue
from workflows.messages import Abort, CompleteStage, ExtendDeadline, MetricResult, Pause, ReportEvaluation, ReportRollout, Resume, Verdict


async def rejected(handle, name: str, payload) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(name, payload)
    return str(info.value.cause)


async def accepted_updates(handle) -> int:  # type: ignore[no-untyped-def]
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)


async def test_feature_happy_path(engine: Engine, unique: str) -> None:
    """A feature walks implement → evaluate → rollout → cleanup → done, one note per transition."""
    handle = await start_feature(engine, unique)
    st = await wait_issue(handle)
    await drive(handle)
    outcome = await handle.result()
    assert outcome.stage == FeatureStage.DONE and outcome.outcome == "done"
    gl = engine.gitlab_client()
    issue = gl.get_issue(st.issue.iid)
    assert issue.state == "closed" and issue.confidential
    assert {"type::feature", "feature::maintenance", "AI Model Migration"} <= set(issue.labels)
    notes = [n.body for n in gl.list_notes(st.issue.iid)]
    transitions = [n for n in notes if "→" in n.splitlines()[0]]
    assert len(transitions) == 4, notes
    assert sum("Rolled out" in n for n in notes) == 6  # 1..75 % as notes, 100 % in the transition note


async def test_out_of_order_commands_are_rejected_before_history(engine: Engine, unique: str) -> None:
    """Commands that do not fit the stage are refused by validators and never reach history
    (revision 3: the team reports its evaluation; the gate's own rules are in test_evaluation_gate)."""
    handle = await start_feature(engine, unique, revision=3)
    await wait_issue(handle)
    msg = await rejected(handle, "complete_stage", CompleteStage(stage=FeatureStage.EVALUATE, actor="x"))
    assert "cannot complete evaluate: the feature is in implement" in msg
    msg = await rejected(handle, "complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="x", prompt_version="v2"))
    assert "not semver" in msg
    msg = await rejected(handle, "report_rollout", ReportRollout(actor="x", percentage=10))
    assert "feature is in implement" in msg
    await handle.execute_update("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="x", prompt_version="1.0.0-dev"))
    msg = await rejected(handle, "report_evaluation", ReportEvaluation(actor="x", verdict=Verdict.PASS))
    assert "needs its metrics" in msg
    metric = MetricResult(name="correctness", baseline=3.0, candidate=3.2)
    await handle.execute_update("report_evaluation", ReportEvaluation(actor="x", verdict=Verdict.PASS, metrics=(metric,)))
    await handle.execute_update("report_rollout", ReportRollout(actor="x", percentage=50))
    msg = await rejected(handle, "report_rollout", ReportRollout(actor="x", percentage=50))
    assert "already at 50 %" in msg
    msg = await rejected(handle, "report_rollout", ReportRollout(actor="x", percentage=25))
    assert "below the current 50" in msg
    await handle.execute_update("report_rollout", ReportRollout(actor="x", percentage=0, rollback=True))
    assert await accepted_updates(handle) == 4
    assert (await status(handle)).rollout_percentage == 0
    await handle.execute_update("abort", Abort(actor="x", reason="test over"))


async def test_failed_evaluation_sends_feature_back_to_implement(engine: Engine, unique: str) -> None:
    """Revision 3: a failed reported evaluation returns the feature to implement for a new prompt version."""
    handle = await start_feature(engine, unique, revision=3)
    await wait_issue(handle)
    await handle.execute_update("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="x", prompt_version="1.0.0-dev"))
    await handle.execute_update("report_evaluation", ReportEvaluation(actor="x", verdict=Verdict.FAIL, summary="too many poor answers"))
    st = await status(handle)
    assert st.stage == FeatureStage.IMPLEMENT
    assert [t.to_stage for t in st.history] == [FeatureStage.EVALUATE, FeatureStage.IMPLEMENT]
    await handle.execute_update("abort", Abort(actor="x", reason="test over"))


async def test_pause_holds_commands_and_resume_moves_deadlines(engine: Engine, unique: str) -> None:
    """Paused features refuse stage commands; resuming shifts the open deadlines by the pause."""
    handle = await start_feature(engine, unique)
    before = await wait_issue(handle)
    await handle.execute_update("pause", Pause(actor="lead", reason="waiting on provider quota"))
    st = await status(handle)
    assert st.paused and st.next_escalation is None
    msg = await rejected(handle, "complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="x", prompt_version="1.0.0"))
    assert "paused" in msg
    assert "already paused" in await rejected(handle, "pause", Pause(actor="lead"))
    await handle.execute_update("resume", Resume(actor="lead"))
    after = await status(handle)
    assert not after.paused
    assert after.deadlines[0].due > before.deadlines[0].due
    await handle.execute_update("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="x", prompt_version="1.0.0"))
    assert (await status(handle)).stage == FeatureStage.EVALUATE
    await handle.execute_update("abort", Abort(actor="x", reason="test over"))


async def test_abort_closes_the_issue(engine: Engine, unique: str) -> None:
    """Abort ends the feature as aborted, notes why, and closes its issue."""
    handle = await start_feature(engine, unique)
    st = await wait_issue(handle)
    assert "needs a reason" in await rejected(handle, "abort", Abort(actor="x", reason=" "))
    await handle.execute_update("abort", Abort(actor="lead", reason="feature is being retired"))
    outcome = await handle.result()
    assert outcome.stage == FeatureStage.ABORTED and "feature is being retired" in outcome.outcome
    gl = engine.gitlab_client()
    assert gl.get_issue(st.issue.iid).state == "closed"
    assert any("feature is being retired" in n.body for n in gl.list_notes(st.issue.iid))


async def test_extend_deadline_moves_timers(engine: Engine, unique: str) -> None:
    """extend_deadline moves the stage and later ones, and the next escalation with them."""
    handle = await start_feature(engine, unique)
    st = await wait_issue(handle)
    old = {d.stage: d.due for d in st.deadlines}
    new = old[FeatureStage.IMPLEMENT] + timedelta(days=5)
    msg = await rejected(
        handle,
        "extend_deadline",
        ExtendDeadline(actor="x", stage=FeatureStage.IMPLEMENT, new_date=old[FeatureStage.IMPLEMENT] - timedelta(days=30), reason="r"),
    )
    assert "in the past" in msg or "not after" in msg
    await handle.execute_update(
        "extend_deadline", ExtendDeadline(actor="lead", stage=FeatureStage.IMPLEMENT, new_date=new, reason="holiday")
    )
    st = await status(handle)
    moved = {d.stage: d.due for d in st.deadlines}
    assert moved[FeatureStage.IMPLEMENT] == new
    assert moved[FeatureStage.CLEANUP] - old[FeatureStage.CLEANUP] == timedelta(days=5)
    assert st.next_escalation is not None and st.next_escalation.at == new - timedelta(days=2)
    assert st.deadlines[0].extended and st.deadlines[0].reason == "holiday"
    await handle.execute_update("abort", Abort(actor="x", reason="test over"))


async def test_status_query_contents(engine: Engine, unique: str) -> None:
    """status reports stage, deadlines, next escalation, the pending action and its owner."""
    handle = await start_feature(engine, unique)
    st = await wait_issue(handle)
    assert st.kind == "feature" and st.stage == FeatureStage.IMPLEMENT and st.feature == "duo_chat"
    assert [d.stage for d in st.deadlines] == [FeatureStage.IMPLEMENT, FeatureStage.EVALUATE, FeatureStage.ROLLOUT, FeatureStage.CLEANUP]
    assert st.next_escalation is not None and st.next_escalation.kind == EscalationKind.REMINDER
    assert st.pending_action is not None and st.pending_action.command == "complete_stage implement"
    assert st.pending_action.owner == CATALOG.feature("duo_chat").dri
    await handle.execute_update(
        "complete_stage",
        CompleteStage(stage=FeatureStage.IMPLEMENT, actor="achen", prompt_version="2.1.0-dev", flag_name="duo_chat_sonnet_45"),
    )
    st = await status(handle)
    assert st.prompt_version == "2.1.0-dev" and st.flag == "duo_chat_sonnet_45"
    assert st.history[-1].actor == "achen" and st.history[-1].from_stage == FeatureStage.IMPLEMENT
    await handle.execute_update("abort", Abort(actor="x", reason="test over"))
