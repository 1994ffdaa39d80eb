"""Every migration's tracking issue is filed under the initiative epic (migration revision 4)."""

from __future__ import annotations

import pytest

from model_migration.domain.models import EpicDraft, EpicRef
from model_migration.operations import UserError, build_input
from tests.temporal_fixtures import Engine, assert_eventually
from tests.workflows.support import CATALOG, REPLACED, SLOW, model_for, status
from workflows.messages import MIGRATION_REVISION, Abort, MigrationInput
from workflows.migration import ModelMigrationWorkflow


async def test_the_tracking_issue_is_filed_under_the_initiative_epic(engine: Engine, unique: str, gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """With an initiative epic in the input, the tracking issue lands in it, once."""
    gl = engine.gitlab_client()
    epic = gl.ensure_epic(EpicDraft(title=f"AI Model Version Migration Initiative {unique}", description="", marker=f"initiative:{unique}"))
    model = model_for(unique)
    request = MigrationInput(
        model=model, replaced=REPLACED, features=(CATALOG.feature("duo_chat"),), tunables=SLOW, revision=MIGRATION_REVISION,
        initiative_epic=EpicRef(group=gitlab_sandbox.group_path, iid=epic.iid),
    )
    parent = await engine.client.start_workflow(
        ModelMigrationWorkflow.run, request, id=f"migration:{model.key}", task_queue=engine.task_queue,
    )

    async def filed() -> int:
        st = await status(parent)
        assert st.issue is not None
        filed = [i.iid for i in gl.epic_issues(epic.iid)]
        assert filed == [st.issue.iid], filed
        return st.issue.iid

    await assert_eventually(filed)
    history = await parent.fetch_history()
    assert sum(e.activity_task_scheduled_event_attributes.activity_type.name == "add_to_epic"
               for e in history.events if e.HasField("activity_task_scheduled_event_attributes")) == 1
    await parent.execute_update("abort", Abort(actor="x", reason="test over"))


def test_the_reference_is_checked_before_anything_starts() -> None:
    assert EpicRef.parse("gitlab-org&17514") == EpicRef(group="gitlab-org", iid=17514)
    assert str(EpicRef.parse("gitlab-org/modelops&3")) == "gitlab-org/modelops&3"
    for bad in ("17514", "gitlab-org&", "&12", "gitlab-org&x", "gitlab-org&0"):
        with pytest.raises(ValueError, match="not an epic reference"):
            EpicRef.parse(bad)
    with pytest.raises(UserError, match="MODEL_MIGRATION_INITIATIVE_EPIC: 'gitlab-org#12' is not an epic reference"):
        build_input(CATALOG, "claude_sonnet_4_5_20250929", None, ["duo_chat"], initiative="gitlab-org#12")
    request = build_input(CATALOG, "claude_sonnet_4_5_20250929", None, ["duo_chat"], initiative="gitlab-org&12")
    assert request.initiative_epic == EpicRef(group="gitlab-org", iid=12)
