"""The migration's GitLab side: its tracking issue, the feature table on it, its notes, and the
AI gateway merge request that adds the model configuration. Each method is one GitLab step,
run by the migration workflow under its blocked-on-GitLab loop."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import interface
    from activities.payloads import (
        AddToEpicInput,
        ConfigMergeRequestInput,
        EnsureIssueInput,
        MergeRequestInput,
        MergeRequestRef,
        TrackingView,
        UpdateIssueInput,
        WriteTrackingIssueInput,
    )
    from model_migration.domain import gateway, templates
    from model_migration.domain.models import IssueDraft, IssueRef
    from workflows.common import Journal, call, call_local
    from workflows.messages import FeatureProgress, MigrationInput
    from workflows.versions import INITIATIVE_REVISION, SCALE_REVISION, TABLE_DIFF_PATCH

MODELS_YML = "ai_gateway/model_selection/models.yml"
FIRST_PROMPT_VERSION = "1.0.0-dev"
LABELS = ("AI Model Migration", "group::ai framework")


class TrackingIssue:
    def __init__(self, workflow_id: str, key: str, input: MigrationInput, eta: datetime, children: dict[str, FeatureProgress]) -> None:
        self.id, self.key, self.input, self.eta = workflow_id, key, input, eta
        #: The workflow's live view of its features; the table is drawn from it.
        self.children = children
        self.journal = Journal(key)
        self.issue: IssueRef | None = None
        self.config_mr: MergeRequestRef | None = None
        self.written_body = ""
        self.filed = False

    @property
    def _timeout(self) -> timedelta:
        return self.input.tunables.activity_timeout

    @property
    def drawn_by_activity(self) -> bool:
        """Revision 5: the local activity ``write_tracking_issue`` draws the description from
        ``view()``; neither the text nor the rows enter history, only the issue's reference."""
        return self.input.revision >= SCALE_REVISION

    def view(self) -> TrackingView:
        rows = [
            templates.FeatureRow(
                feature=f, stage=self.children[f.name].stage, eta=(self.children[f.name].eta or self.eta).date(),
                issue_url=self.children[f.name].issue_url, outcome=self.children[f.name].outcome,
            )
            for f in self.input.features
        ]
        target = self.input.tunables.plan.target
        return TrackingView(
            migration_id=self.id, model=self.input.model, replaced=self.input.replaced, rows=tuple(rows),
            target_date=target.date() if target else None, config_mr_url=self.config_mr.web_url if self.config_mr else "",
        )

    def body(self) -> str:
        view = self.view()
        return templates.tracking_issue_body(
            migration_id=view.migration_id, model=view.model, replaced=view.replaced, rows=list(view.rows),
            target_date=view.target_date, config_mr_url=view.config_mr_url,
        )

    async def ensure(self) -> None:
        self.written_body = self.body()
        if self.drawn_by_activity:
            request = WriteTrackingIssueInput(
                marker=f"{self.key}:tracking", view=self.view(), title=templates.tracking_issue_title(self.input.model),
                labels=LABELS, due_date=self.eta.date(),
            )
            self.issue = (await call_local(interface.write_tracking_issue, request, self._timeout)).issue
            return
        draft = IssueDraft(
            title=templates.tracking_issue_title(self.input.model), description=self.written_body,
            marker=f"{self.key}:tracking", labels=list(LABELS), due_date=self.eta.date(),
        )
        self.issue = await call(interface.ensure_issue, EnsureIssueInput(draft=draft), self._timeout)

    async def file_under_initiative(self) -> None:
        """Put the tracking issue in the initiative epic (revision 4, when one is configured), or in
        the deprecation's epic that started this migration, itself a child of the initiative."""
        epic = self.input.deprecation_epic or self.input.initiative_epic
        if epic is None or self.input.revision < INITIATIVE_REVISION or self.filed:
            return
        assert self.issue is not None
        request = AddToEpicInput(group=epic.group, epic_iid=epic.iid, issue_id=self.issue.id)
        await call(interface.add_to_epic, request, self._timeout)
        self.filed = True

    async def update_table(self) -> None:
        assert self.issue is not None
        body = self.body()
        if self.drawn_by_activity:
            if body != self.written_body:  # rendered here only to tell: the activity draws it again
                request = WriteTrackingIssueInput(marker=f"{self.key}:tracking", view=self.view(), iid=self.issue.iid)
                await call_local(interface.write_tracking_issue, request, self._timeout)
                self.written_body = body
            return
        if workflow.patched(TABLE_DIFF_PATCH) and body == self.written_body:
            return
        description = body + "\n\n" + f"<!-- model-migration:{self.key}:tracking -->"
        await call(interface.update_issue, UpdateIssueInput(iid=self.issue.iid, description=description), self._timeout)
        self.written_body = body

    async def flush(self) -> None:
        assert self.issue is not None
        await self.journal.flush(self.issue.iid, self._timeout)

    async def close(self) -> None:
        assert self.issue is not None
        await call(interface.update_issue, UpdateIssueInput(iid=self.issue.iid, state_event="close"), self._timeout)

    async def ensure_config_mr(self) -> None:
        model, features = self.input.model, self.input.features
        files = {
            gateway.prompt_definition_path(f, model, FIRST_PROMPT_VERSION): gateway.prompt_definition(f, model, FIRST_PROMPT_VERSION)
            for f in features
        }
        tracking = self.issue.web_url if self.issue else ""
        request = ConfigMergeRequestInput(
            branch=gateway.config_branch(self.key), files=files, appends={MODELS_YML: gateway.models_yml_entry(model)},
            commit_message=f"Add {model.name} ({model.gitlab_identifier}) and {FIRST_PROMPT_VERSION} prompts",
            title=f"Add model configuration for {model.name}",
            description=(
                f"Adds `{model.gitlab_identifier}` to `{MODELS_YML}` and a `{FIRST_PROMPT_VERSION}` prompt "
                f"definition for each feature being migrated.\n\nTracking issue: {tracking}\n\n"
                f"<!-- model-migration:{self.key}:config -->"
            ),
            labels=LABELS,
        )
        self.config_mr = await call(interface.ensure_model_config_mr, request, self._timeout)

    async def refresh_config_mr(self) -> None:
        assert self.config_mr is not None
        self.config_mr = await call(interface.merge_request_state, MergeRequestInput(iid=self.config_mr.iid), self._timeout)
