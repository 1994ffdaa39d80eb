"""Escalations over real-length deadlines, on the time-skipping server."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from model_migration.domain.escalation import EscalationKind
from model_migration.domain.stages import Stage
from tests.temporal_fixtures import Engine
from tests.workflows.support import CATALOG, start_feature, status, wait_issue
from workflows.messages import Tunables


async def test_three_weeks_undone_escalates_in_order(skip_env: WorkflowEnvironment, skip_engine: Engine, unique: str) -> None:
    """Implement left undone for 3 weeks: reminder, due, then one overdue note a day, in order."""
    handle = await start_feature(skip_engine, unique, "code_generation", Tunables(), as_parent=False)
    st = await wait_issue(handle)
    due = st.deadlines[0].due
    await skip_env.sleep(timedelta(weeks=3))
    st = await status(handle)
    kinds = [e.kind for e in st.escalations]
    # Implement is due on day 7: a reminder on day 5, the due notice on day 7, overdue daily from day 8.
    overdue = 21 - 7
    assert kinds == [EscalationKind.REMINDER, EscalationKind.DUE] + [EscalationKind.OVERDUE] * overdue
    assert all(e.stage == Stage.IMPLEMENT for e in st.escalations)
    close = timedelta(minutes=1)
    assert abs(st.escalations[0].at - (due - timedelta(days=2))) < close
    assert abs(st.escalations[1].at - due) < close
    gaps = [b.at - a.at for a, b in zip(st.escalations[2:], st.escalations[3:])]
    assert all(abs(gap - timedelta(days=1)) < close for gap in gaps)

    feature = CATALOG.feature("code_generation")
    gl = skip_engine.gitlab_client()
    notes = [n.body for n in gl.list_notes(st.issue.iid)]
    assert len(notes) == len(kinds)
    assert f"@{feature.dri}" in notes[0] and f"@{feature.manager}" not in notes[0]
    assert f"@{feature.manager}" in notes[1] and "priority::2" in notes[1]
    assert all(f"@{feature.manager}" in n for n in notes[2:])
    labels = set(gl.get_issue(st.issue.iid).labels)
    assert {"priority::1", "priority::2"} <= labels
    await handle.terminate("test over")
