"""Escalations over real-length deadlines, on the time-skipping server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from model_migration.domain.escalation import EscalationKind
from model_migration.domain.stages import FeatureStage
from tests.temporal_fixtures import Engine, assert_eventually
from tests.timeskip import skip
from tests.workflows.support import CATALOG, start_feature, status, wait_issue
from workflows.messages import FEATURE_REVISION, CompleteStage, MetricResult, ReportEvaluation, ReportRollout, Tunables, Verdict

TIMER_STARTED = EventType.EVENT_TYPE_TIMER_STARTED


@pytest.mark.parametrize("revision", [1, FEATURE_REVISION])
async def test_three_weeks_undone_escalates_in_order(
    skip_env: WorkflowEnvironment, skip_engine: Engine, unique: str, revision: int,
) -> None:
    """Implement left undone for 3 weeks: reminder, due, then one overdue note a day, in order;
    with a fresh timer per wait (revision 1) and with kept timers (revision 2)."""
    handle = await start_feature(skip_engine, unique, "code_generation", Tunables(), as_parent=False, revision=revision)
    st = await wait_issue(handle)
    due = st.deadlines[0].due
    await skip(skip_env, timedelta(weeks=3))
    st = await status(handle)
    kinds = [e.kind for e in st.escalations]
    # Implement is due on day 7: a reminder on day 5, the due notice on day 7, overdue daily from day 8.
    overdue = 21 - 7
    assert kinds == [EscalationKind.REMINDER, EscalationKind.DUE] + [EscalationKind.OVERDUE] * overdue
    assert all(e.stage == FeatureStage.IMPLEMENT for e in st.escalations)
    close = timedelta(minutes=1)
    assert abs(st.escalations[0].at - (due - timedelta(days=2))) < close
    assert abs(st.escalations[1].at - due) < close
    gaps = [b.at - a.at for a, b in zip(st.escalations[2:], st.escalations[3:], strict=False)]
    assert all(abs(gap - timedelta(days=1)) < close for gap in gaps)

    feature = CATALOG.feature("code_generation")
    gl = skip_engine.gitlab_client()
    notes = [n.body for n in gl.list_notes(st.issue.iid)]
    assert len(notes) == len(kinds)
    assert f"@{feature.dri}" in notes[0] and f"@{feature.manager}" not in notes[0]
    assert f"@{feature.manager}" in notes[1] and "priority::2" in notes[1]
    assert all(f"@{feature.manager}" in n for n in notes[2:])
    labels = set(gl.get_issue(st.issue.iid).labels)
    # Scoped labels are exclusive (GitLab Premium): priority::1 took priority::2's place.
    assert "priority::1" in labels and "priority::2" not in labels
    await handle.terminate("test over")


async def test_commands_that_leave_the_deadline_keep_the_timer(
    skip_env: WorkflowEnvironment, skip_engine: Engine, unique: str,
) -> None:
    """Rollout steps do not move the rollout deadline, so they add no timer; the reminder and
    the due notice still fire on time afterwards. (Revision 3: the team reports its evaluation, so
    the stages move on the test's commands alone.)"""
    handle = await start_feature(skip_engine, unique, "duo_chat", Tunables(), as_parent=False, revision=3)
    await wait_issue(handle)

    async def quiet() -> None:
        raw = (await handle.describe()).raw_description
        assert not raw.pending_activities and not raw.HasField("pending_workflow_task")

    evaluation = ReportEvaluation(actor="x", verdict=Verdict.PASS, metrics=(MetricResult(name="m", baseline=1.0, candidate=1.1),))
    commands = [
        ("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="x", prompt_version="1.0.0")),
        ("report_evaluation", evaluation),
        *[("report_rollout", ReportRollout(actor="x", percentage=pct)) for pct in (1, 10, 25, 50)],
    ]
    for name, command in commands:  # each meets a workflow that is waiting again
        await assert_eventually(quiet)
        await handle.execute_update(name, command)
    await assert_eventually(quiet)
    st = await status(handle)
    assert st.stage == FeatureStage.ROLLOUT
    history = (await handle.fetch_history()).events
    # One timer per stage entered (implement, evaluate, rollout), none for the four steps.
    assert sum(e.event_type == TIMER_STARTED for e in history) == 3

    due = next(d.due for d in st.deadlines if d.stage == FeatureStage.ROLLOUT)
    await skip(skip_env, due + timedelta(hours=12) - await skip_env.get_current_time())
    st = await status(handle)
    assert [(e.kind, e.stage) for e in st.escalations] == [
        (EscalationKind.REMINDER, FeatureStage.ROLLOUT), (EscalationKind.DUE, FeatureStage.ROLLOUT),
    ]
    close = timedelta(minutes=1)
    assert abs(st.escalations[0].at - (due - timedelta(days=2))) < close
    assert abs(st.escalations[1].at - due) < close
    await handle.terminate("test over")
