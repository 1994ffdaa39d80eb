"""ModelMigrationWorkflow on the dev server: three features end to end, compatibility, abort."""

from __future__ import annotations

import asyncio

from temporalio.service import RPCError

from model_migration.domain.stages import FeatureStage, MigrationStage
from tests.temporal_fixtures import Engine, assert_eventually
from tests.workflows.support import CATALOG, REPLACED, SLOW, drive, model_for, status
from workflows.messages import MIGRATION_REVISION, Abort, CompleteStage, MigrationInput, MigrationResult, Status, feature_workflow_id
from workflows.migration import ModelMigrationWorkflow

FEATURES = ("duo_chat", "code_generation", "code_explanation")


async def start_migration(engine: Engine, model, features=FEATURES):  # type: ignore[no-untyped-def]
    request = MigrationInput(
        model=model, replaced=REPLACED, features=tuple(CATALOG.feature(f) for f in features), tunables=SLOW, revision=MIGRATION_REVISION
    )
    wid = f"migration:{model.key}"
    return await engine.client.start_workflow(ModelMigrationWorkflow.run, request, id=wid, task_queue=engine.task_queue)


async def config_mr(parent) -> Status:  # type: ignore[no-untyped-def]
    async def opened() -> Status:
        st = await status(parent)
        assert st.config_mr_url, "no model configuration merge request yet"
        return st

    return await assert_eventually(opened)


async def complete_init(parent) -> None:  # type: ignore[no-untyped-def]
    await config_mr(parent)
    await parent.execute_update("complete_stage", CompleteStage(stage=MigrationStage.INIT, actor="ai-lead"))


async def child(engine: Engine, parent_id: str, feature: str):  # type: ignore[no-untyped-def]
    handle = engine.client.get_workflow_handle(feature_workflow_id(parent_id, feature))

    async def ready() -> None:
        try:
            st = await handle.query("status", result_type=Status)
        except RPCError as err:
            raise AssertionError(f"child not started yet: {err}") from err
        assert st.issue is not None

    await assert_eventually(ready)
    return handle


async def test_three_features_end_to_end(engine: Engine, unique: str) -> None:
    """The config MR is merged, three children run to done, the table tracks them, the issue closes."""
    parent = await start_migration(engine, model_for(unique))
    st = await config_mr(parent)
    gl = engine.gitlab_client()
    mr = gl.get_merge_request(int(st.config_mr_url.rsplit("/", 1)[1]))
    assert mr.state == "opened" and "Tracking issue" in mr.description
    models_yml = gl.read_file("ai_gateway/model_selection/models.yml", mr.source_branch)
    assert models_yml is not None and f"gitlab_identifier: {st.model}" in models_yml
    gl.merge_merge_request(mr.iid)
    children = [await child(engine, parent.id, f) for f in FEATURES]

    async def table_has_links() -> Status:
        st = await status(parent)
        assert st.issue is not None
        body = engine.gitlab_client().get_issue(st.issue.iid).description
        assert body.count("/-/issues/") >= 3, body
        return st

    st = await assert_eventually(table_has_links)
    assert st.config_mr_url in gl.get_issue(st.issue.iid).description
    await asyncio.gather(*(drive(h) for h in children))
    result: MigrationResult = await parent.result()
    assert result.stage == FeatureStage.DONE
    assert [f.stage for f in result.features] == [FeatureStage.DONE] * 3
    assert [f.feature for f in result.features] == list(FEATURES)
    gl = engine.gitlab_client()
    tracking = gl.get_issue(st.issue.iid)
    assert tracking.state == "closed"
    assert tracking.title.startswith("AI Model Migration - Anthropic/Claude Sonnet 4.5/")
    assert {"AI Model Migration", "group::ai framework"} <= set(tracking.labels)
    assert tracking.description.count("- [x]") >= 3
    assert gl.find_issue(tracking.title, f"{parent.id}:tracking") is not None
    summary = [n.body for n in gl.list_notes(tracking.iid)]
    assert len(summary) == 1 and all(title in summary[0] for title in ("Duo Chat", "Code Generation", "Code Explanation"))
    history = [t.to_stage for t in (await status(parent)).history]
    assert history == [MigrationStage.FEATURES, FeatureStage.CLEANUP, FeatureStage.DONE]
    assert "model configuration merged" in (await status(parent)).history[0].detail
    linked = gl._project.issues.get(tracking.iid, lazy=True).links.list(get_all=True)  # noqa: SLF001
    feature_iids = {int(f.issue_url.rsplit("/", 1)[1]) for f in result.features}
    assert sorted(link.iid for link in linked) == sorted(feature_iids)


async def test_incompatible_model_stops_with_reasons(engine: Engine, unique: str) -> None:
    """A model too small for a feature fails init and posts the reasons on the tracking issue."""
    model = model_for(unique).model_copy(update={"max_context_tokens": 1000})
    parent = await start_migration(engine, model, ("duo_chat",))
    result: MigrationResult = await parent.result()
    assert result.stage == MigrationStage.FAILED
    assert any("context tokens" in p for p in result.problems)
    st = await status(parent)
    notes = engine.gitlab_client().list_notes(st.issue.iid)
    assert len(notes) == 1 and "context tokens" in notes[0].body


async def test_abort_migration_aborts_every_feature(engine: Engine, unique: str) -> None:
    """Aborting the parent aborts each open child, closes their issues, and ends aborted."""
    parent = await start_migration(engine, model_for(unique), FEATURES[:2])
    msg = ""
    try:
        await parent.execute_update("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="x"))
    except Exception as err:  # noqa: BLE001 - the validator's refusal is what is checked
        msg = str(getattr(err, "cause", err))
    assert "belongs to a feature" in msg
    await complete_init(parent)
    assert (await status(parent)).history[0].actor == "ai-lead"
    children = [await child(engine, parent.id, f) for f in FEATURES[:2]]
    await parent.execute_update("abort", Abort(actor="lead", reason="provider postponed retirement"))
    result: MigrationResult = await parent.result()
    assert result.stage == FeatureStage.ABORTED
    assert [f.stage for f in result.features] == [FeatureStage.ABORTED, FeatureStage.ABORTED]
    gl = engine.gitlab_client()
    for handle in children:
        st = await handle.query("status", result_type=Status)
        assert gl.get_issue(st.issue.iid).state == "closed"
