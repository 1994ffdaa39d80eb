"""ModelDeprecationWorkflow on the time-skipping server: weeks of plan in seconds of wall time.

Dates are relative to the test server's clock, which runs ahead of the wall clock. The
retiring model is Claude 3.7 Sonnet; the candidates are Claude Sonnet 4.5, which passes every
gate, and code-gecko, which fails them (the sandbox's simulator decides), so Sonnet 4.5 wins
clearly; evaluated at ``9.0.0-unsure`` its gate is inconclusive and the choice is a close call.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from model_migration.domain.deprecation import DeprecationRequest, PlanRules
from model_migration.domain.models import EpicDraft, EpicRef
from model_migration.domain.stages import FeatureStage, MigrationStage
from tests.temporal_fixtures import Engine, assert_eventually
from tests.timeskip import settle_and_terminate, skip
from tests.workflows.support import CATALOG, SLOW, drive, status, wait_issue
from tests.workflows.test_evaluation_gate import simulator  # noqa: F401 - the fixture
from workflows.deprecation import ModelDeprecationWorkflow
from workflows.deprecation_messages import (
    DeprecationInput,
    DeprecationResult,
    DeprecationStage,
    DeprecationStatus,
    SelectReplacement,
    UpdateCutoff,
)
from workflows.messages import Abort, CompleteStage, feature_workflow_id

RETIRING = CATALOG.model("claude_3_7_sonnet_20250219")
WINNER = CATALOG.model("claude_sonnet_4_5_20250929")
LOSER = CATALOG.model("code_gecko_002")
FEATURES = ("duo_chat", "code_explanation", "root_cause_analysis")
#: Rollout takes 6 steps × 2 days, so a feature still implementing is late from T−15 on.
RULES = PlanRules(bake=timedelta(days=2))
#: The migration's init waits for the test to complete it, with no merge request polls meanwhile.
TUNABLES = SLOW.model_copy(update={"merge_poll": timedelta(hours=1)})
LADDER = ["reminder T−14d", "reminder T−7d", "managers T−2d", "due"] + ["critical"] * 8


def deprecation(today: date, cutoff_in: int, *, candidates: tuple[Any, ...] = (LOSER,), prompt_version: str = "1.0.0-dev",
                initiative: EpicRef | None = None) -> DeprecationInput:
    request = DeprecationRequest(
        model=RETIRING.gitlab_identifier, deprecation_date=today, cutoff=today + timedelta(days=cutoff_in),
        announcement_url="https://docs.anthropic.com/en/docs/resources/model-deprecations",
        recommended=WINNER.gitlab_identifier, candidates=tuple(c.gitlab_identifier for c in candidates),
    )
    return DeprecationInput(
        request=request, retiring=RETIRING, recommended=WINNER, candidates=candidates,
        features=tuple(CATALOG.feature(f) for f in FEATURES), tunables=TUNABLES, rules=RULES,
        prompt_version=prompt_version, initiative_epic=initiative,
    )


async def start(engine: Engine, unique: str, request: DeprecationInput) -> WorkflowHandle:
    return await engine.client.start_workflow(
        ModelDeprecationWorkflow.run, request, id=f"deprecation:test/{unique}", task_queue=engine.task_queue,
    )


async def dstatus(handle: WorkflowHandle) -> DeprecationStatus:
    return await handle.query("status", result_type=DeprecationStatus)


async def reach(handle: WorkflowHandle, stage: DeprecationStage, timeout: float = 90) -> DeprecationStatus:
    async def check() -> DeprecationStatus:
        st = await dstatus(handle)
        assert st.stage == stage, f"{st.stage}, not {stage}"
        return st

    return await assert_eventually(check, timeout=timeout)


async def features_started(engine: Engine, handle: WorkflowHandle) -> dict[str, WorkflowHandle]:
    """Merge the model configuration (complete init), then the feature children once each has its issue."""
    migration = engine.client.get_workflow_handle(f"{handle.id}:migration")

    async def init_open() -> None:
        st = await status(migration)
        assert st.stage == MigrationStage.INIT and st.config_mr_url, st.stage

    await assert_eventually(init_open, timeout=30)
    await migration.execute_update("complete_stage", CompleteStage(stage=MigrationStage.INIT, actor="ai-lead"))
    children = {f: engine.client.get_workflow_handle(feature_workflow_id(migration.id, f)) for f in FEATURES}
    for child in children.values():
        await wait_issue(child)
    return children


async def finish(engine: Engine, handle: WorkflowHandle) -> None:
    """Stop the deprecation, its migration and its features once no activity runs: the test ends
    with nothing in flight (a workflow ended mid-activity holds the test server's clock for good)."""
    await settle_and_terminate(engine.client)


def epic_notes(engine: Engine, epic_url: str) -> list[str]:
    gl = engine.gitlab_client()
    iid = EpicRef.from_web_url(epic_url).iid
    notes = gl._group().epics.get(iid).notes.list(get_all=True, sort="asc", order_by="created_at")
    return [n.body for n in notes]


async def test_a_full_deprecation_with_a_late_feature_getting_the_whole_ladder(
    skip_env: WorkflowEnvironment, skip_engine: Engine, unique: str, simulator: str,  # noqa: F811
) -> None:
    now = await skip_env.get_current_time()
    handle = await start(skip_engine, unique, deprecation(now.date(), 56))
    st = await reach(handle, DeprecationStage.MIGRATING)
    assert st.replacement == WINNER.gitlab_identifier and st.fallback == LOSER.gitlab_identifier
    assert st.choice is not None and st.choice.clear, st.choice
    assert st.due == now.date() + timedelta(days=28) and st.feasible
    gl = skip_engine.gitlab_client()
    epic = gl.get_epic(EpicRef.from_web_url(st.epic_url).iid)
    assert epic.title == f"Replace discontinued {RETIRING.name} with {WINNER.name}"

    children = await features_started(skip_engine, handle)
    await drive(children["duo_chat"])
    await drive(children["code_explanation"])
    late = children["root_cause_analysis"]
    late_issue = (await status(late)).issue
    assert late_issue is not None

    await skip(skip_env, timedelta(days=57))
    st = await dstatus(handle)
    reached = [e for e in st.fired if e.features]
    assert [e.name for e in reached] == LADDER
    assert all(e.features == ("root_cause_analysis",) for e in reached), reached
    assert [e.on for e in reached[-8:]] == [st.cutoff - timedelta(days=7 - i) for i in range(8)]
    assert st.late == ("root_cause_analysis",) and set(st.on_track) == set()

    notes = [n.body for n in gl.list_notes(late_issue.iid) if "Deprecation escalation" in n.body]
    assert [n.split("(", 1)[1].split(")", 1)[0] for n in notes] == LADDER
    feature = CATALOG.feature("root_cause_analysis")
    assert f"@{feature.dri}" in notes[0] and f"@{feature.manager}" not in notes[0]
    assert f"@{feature.manager}" in notes[2] and "@ai-framework" in notes[3]
    labels = set(gl.get_issue(late_issue.iid).labels)
    assert {"priority::1", "severity::2"} <= labels

    await late.execute_update("abort", Abort(actor="ai-lead", reason="root cause analysis is retired with the model"))
    result = await handle.result()
    assert isinstance(result, DeprecationResult) and result.all_finished
    outcomes = {f.feature: (f.stage, f.finished_on is not None and f.finished_on <= result.due) for f in result.features}
    assert outcomes == {
        "duo_chat": (FeatureStage.DONE, True), "code_explanation": (FeatureStage.DONE, True),
        "root_cause_analysis": (FeatureStage.ABORTED, False),
    }
    epic = gl.get_epic(epic.iid)
    assert epic.state == "closed"
    in_epic = {i.iid for i in gl.epic_issues(epic.iid)}
    feature_issues = {(await status(c)).issue.iid for c in children.values()}  # type: ignore[union-attr]
    assert feature_issues < in_epic and len(in_epic) == 4  # and the tracking issue
    bodies = epic_notes(skip_engine, result.epic_url)
    assert "Replacement tournament" in bodies[0] and f"`{WINNER.key}` | pass" in bodies[0] and f"`{LOSER.key}` | fail" in bodies[0]
    assert "Replacement chosen" in bodies[1]
    assert "finished" in bodies[-1] and "| Duo Chat | " in bodies[-1]


async def test_a_cutoff_extension_moves_every_timer(
    skip_env: WorkflowEnvironment, skip_engine: Engine, unique: str, simulator: str,  # noqa: F811
) -> None:
    """code-gecko's case: the provider moves the cutoff out; the due date, the calendar and the
    features' stage deadlines all move with it, and the reason is recorded."""
    now = await skip_env.get_current_time()
    handle = await start(skip_engine, unique, deprecation(now.date(), 49))
    await reach(handle, DeprecationStage.MIGRATING)
    # Moved once before the features start (the migration still in init): they start with the moved plan.
    await handle.execute_update("update_cutoff", UpdateCutoff(new_date=now.date() + timedelta(days=56), reason="first notice"))
    children = await features_started(skip_engine, handle)
    before = {d.stage: d.due for d in (await status(children["duo_chat"])).deadlines}
    assert before[FeatureStage.CLEANUP] == datetime.combine(now.date() + timedelta(days=28), time(), tzinfo=UTC)

    new = now.date() + timedelta(days=84)
    for bad, why in (
        (UpdateCutoff(new_date=now.date() + timedelta(days=56), reason="same"), "already"),
        (UpdateCutoff(new_date=now.date() + timedelta(days=20), reason="too soon"), "on or before today"),
        (UpdateCutoff(new_date=new, reason=" "), "needs an actor and a reason"),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update("update_cutoff", bad)
        assert why in str(err.value.cause)
    await handle.execute_update("update_cutoff", UpdateCutoff(new_date=new, reason="Google extended the shutdown", actor="ai-lead"))
    st = await dstatus(handle)
    assert st.cutoff == new and st.due == now.date() + timedelta(days=56)
    assert [(c.new, c.reason) for c in st.cutoff_changes][-1] == (new, "Google extended the shutdown")

    async def shifted() -> None:
        after = {d.stage: d.due for d in (await status(children["duo_chat"])).deadlines}
        assert after[FeatureStage.IMPLEMENT] - before[FeatureStage.IMPLEMENT] == timedelta(days=28), (before, after)

    await assert_eventually(shifted)
    await skip(skip_env, timedelta(days=30))
    assert not [e for e in (await dstatus(handle)).fired if e.name.startswith("reminder")]  # T−14 was day 14, now day 42
    await skip(skip_env, timedelta(days=13))
    st = await dstatus(handle)
    assert [(e.name, e.on) for e in st.fired] == [("reminder T−14d", now.date() + timedelta(days=42))]
    assert "Google extended the shutdown" in skip_engine.gitlab_client().get_epic(EpicRef.from_web_url(st.epic_url).iid).description
    await finish(skip_engine, handle)


async def test_an_infeasible_plan_escalates_on_day_0(
    skip_env: WorkflowEnvironment, skip_engine: Engine, unique: str, simulator: str, gitlab_sandbox,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    """Late mode on day 0, with the numbers; the epic is filed under the initiative epic, and so
    (through the epic) is the migration's tracking issue."""
    gl = skip_engine.gitlab_client()
    draft = EpicDraft(title=f"AI Model Version Migration Initiative {unique}", description="", marker=f"initiative:{unique}")
    initiative = gl.ensure_epic(draft)
    ref = EpicRef(group=gitlab_sandbox.group_path, iid=initiative.iid)
    now = await skip_env.get_current_time()
    handle = await start(skip_engine, unique, deprecation(now.date(), 33, initiative=ref))  # due in 5 days; the work needs 20

    async def escalated() -> DeprecationStatus:
        st = await dstatus(handle)
        assert st.fired and st.fired[0].name.startswith("late mode"), st.fired
        return st

    st = await assert_eventually(escalated, timeout=30)
    assert not st.feasible and st.fired[0].on == now.date() and set(st.fired[0].features) == set(FEATURES)
    assert st.fired[0].label == "priority::1"

    async def noted() -> None:
        assert any("infeasible by 15 days" in b for b in epic_notes(skip_engine, st.epic_url))

    await assert_eventually(noted)
    epic = gl._group().epics.get(EpicRef.from_web_url(st.epic_url).iid)
    assert epic.parent_iid == initiative.iid
    await reach(handle, DeprecationStage.MIGRATING)  # the tournament's children are done: nothing is left running
    await finish(skip_engine, handle)


async def test_a_close_call_waits_for_select_replacement(
    skip_env: WorkflowEnvironment, skip_engine: Engine, unique: str, simulator: str,  # noqa: F811
) -> None:
    now = await skip_env.get_current_time()
    handle = await start(skip_engine, unique, deprecation(now.date(), 56, candidates=(), prompt_version="9.0.0-unsure"))
    st = await reach(handle, DeprecationStage.SELECTING)
    assert st.choice is not None and not st.choice.clear and "inconclusive" in st.choice.reason
    for bad, why in (
        (SelectReplacement(model="gpt_5", reason="x"), "not a candidate"),
        (SelectReplacement(model=WINNER.gitlab_identifier, reason=""), "needs an actor and a reason"),
        (SelectReplacement(model=RETIRING.gitlab_identifier, reason="x", definition=RETIRING), "being retired"),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update("select_replacement", bad)
        assert why in str(err.value.cause)
    await skip(skip_env, timedelta(days=3))  # past the 2 days it has: AI Framework is reminded
    assert any("still undecided" in b for b in epic_notes(skip_engine, st.epic_url))
    await handle.execute_update("select_replacement", SelectReplacement(
        model=WINNER.gitlab_identifier, reason="within noise; Sonnet 4.5 is the provider's recommendation", actor="ai-lead",
    ))
    st = await reach(handle, DeprecationStage.MIGRATING)
    assert st.replacement == WINNER.gitlab_identifier
    epic = skip_engine.gitlab_client().get_epic(EpicRef.from_web_url(st.epic_url).iid)
    assert epic.title.endswith(f"with {WINNER.name}")
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update("select_replacement", SelectReplacement(model=WINNER.gitlab_identifier, reason="again"))
    assert "no replacement is awaited" in str(err.value.cause)
    await finish(skip_engine, handle)


def test_the_input_refuses_what_cannot_be_a_deprecation() -> None:
    today = datetime(2026, 1, 5).date()
    with pytest.raises(ValueError, match="being retired"):
        deprecation(today, 56, candidates=(RETIRING,))
    with pytest.raises(ValueError, match="not on claude_3_7_sonnet_20250219: code_completion"):
        good = deprecation(today, 56).model_dump()
        DeprecationInput.model_validate({**good, "features": [CATALOG.feature("code_completion").model_dump()]})
    with pytest.raises(ValueError, match="at least 1"):
        DeprecationInput.model_validate({**deprecation(today, 56).model_dump(), "features": []})
