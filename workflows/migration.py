"""ModelMigrationWorkflow: init, one child per feature, then cleanup."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.payloads import (
        Activity, ConfigMergeRequestInput, EnsureIssueInput, MergeRequestInput, MergeRequestRef, UpdateIssueInput,
    )
    from model_migration.domain import gateway, stages, templates
    from model_migration.domain.compat import compatibility_problems
    from model_migration.domain.deadlines import Deadline
    from model_migration.domain.errors import CommandRejected
    from model_migration.domain.models import IssueDraft, IssueRef
    from model_migration.domain.stages import Stage
    from workflows import attributes
    from workflows.common import MIGRATION_BLOCKED_NOTICE_PATCH, GitLabBlocked, Journal, call, notify
    from workflows.feature import FeatureMigrationWorkflow, rejected
    from workflows.messages import (
        FEATURE_PROGRESS, FEATURE_REVISION, Abort, CommandResult, CompleteStage, FeatureMigrationInput, FeatureOutcome, FeatureProgress,
        MigrationInput, MigrationResult, ParentCommand, Pause, PendingAction, Resume, Status,
        feature_workflow_id,
    )


#: Init opens the AI gateway merge request and waits for it (workflows started before this
#: change went straight from init to the features).
CONFIG_MR_PATCH = "model-config-mr"
#: The tracking issue is only edited when its description would change.
TABLE_DIFF_PATCH = "table-only-when-changed"
MODELS_YML = "ai_gateway/model_selection/models.yml"
FIRST_PROMPT_VERSION = "1.0.0-dev"


@workflow.defn
class ModelMigrationWorkflow:
    @workflow.init
    def __init__(self, input: MigrationInput) -> None:
        self.input = input
        self.id = workflow.info().workflow_id
        self.stage = Stage.INIT
        self.journal = Journal(self.id)
        self.issue: IssueRef | None = None
        self.paused = False
        self.blocked = ""
        self.problems: list[str] = []
        self.children: dict[str, FeatureProgress] = {
            f.name: FeatureProgress(feature=f.name, stage=Stage.IMPLEMENT) for f in input.features
        }
        self.outcomes: dict[str, FeatureOutcome] = {}
        self.eta = attributes.migration_eta(input, workflow.now())
        self.table_dirty = False
        self.forward: list[ParentCommand] = []
        self.config_mr: MergeRequestRef | None = None
        self.written_body = ""
        self.init_completed_by = ""

    @workflow.run
    async def run(self, input: MigrationInput) -> MigrationResult:
        self._publish(first=True)
        await self._gitlab(self._ensure_tracking_issue)
        self.problems = compatibility_problems(input.model, input.features)
        if self.problems:
            self.journal.note(templates.compatibility_note(self.problems))
            self._move(Stage.FAILED, "model-migration", "infrastructure compatibility check failed")
            await self._gitlab(self._flush)
            return self._result()
        detail = f"{len(input.features)} feature migrations started"
        if workflow.patched(CONFIG_MR_PATCH):
            detail = await self._model_configuration() + "; " + detail
        if self.stage == Stage.INIT:
            self._move(Stage.FEATURES, self.init_completed_by or input.started_by, detail)
            await self._run_features()
        if self.stage != Stage.ABORTED:
            self._move(Stage.CLEANUP, "model-migration", "every feature finished")
        self.journal.note(templates.summary_note(
            migration_id=self.id, at=workflow.now(),
            outcomes=[(o.title, o.outcome, o.issue_url) for o in self._ordered_outcomes()],
        ))
        await self._gitlab(self._flush)
        await self._gitlab(self._close)
        if self.stage == Stage.CLEANUP:
            self._move(Stage.DONE, "model-migration", "tracking issue closed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result()

    async def _model_configuration(self) -> str:
        """Open the AI gateway merge request, record it on the tracking issue, wait for the merge."""
        await self._gitlab(self._ensure_config_mr)
        await self._gitlab(self._update_table)
        assert self.config_mr is not None
        poll = self.input.tunables.merge_poll
        while self.config_mr.state != "merged" and not self.init_completed_by and self.stage == Stage.INIT:
            try:
                await workflow.wait_condition(lambda: bool(self.init_completed_by) or self.stage != Stage.INIT, timeout=poll)
            except asyncio.TimeoutError:
                await self._gitlab(self._refresh_config_mr)
        if self.init_completed_by:
            return f"init completed by @{self.init_completed_by}"
        return f"model configuration merged ({self.config_mr.web_url})"

    async def _ensure_config_mr(self) -> None:
        model, features = self.input.model, self.input.features
        files = {
            gateway.prompt_definition_path(f, model, FIRST_PROMPT_VERSION): gateway.prompt_definition(f, model, FIRST_PROMPT_VERSION)
            for f in features
        }
        tracking = self.issue.web_url if self.issue else ""
        request = ConfigMergeRequestInput(
            branch=gateway.config_branch(self.id), files=files, appends={MODELS_YML: gateway.models_yml_entry(model)},
            commit_message=f"Add {model.name} ({model.gitlab_identifier}) and {FIRST_PROMPT_VERSION} prompts",
            title=f"Add model configuration for {model.name}",
            description=(
                f"Adds `{model.gitlab_identifier}` to `{MODELS_YML}` and a `{FIRST_PROMPT_VERSION}` prompt "
                f"definition for each feature being migrated.\n\nTracking issue: {tracking}\n\n"
                f"<!-- model-migration:{self.id}:config -->"
            ),
            labels=("AI Model Migration", "group::ai framework"),
        )
        self.config_mr = await call(Activity.ENSURE_CONFIG_MR, request, MergeRequestRef, self._timeout)

    async def _refresh_config_mr(self) -> None:
        assert self.config_mr is not None
        self.config_mr = await call(
            Activity.MERGE_REQUEST_STATE, MergeRequestInput(iid=self.config_mr.iid), MergeRequestRef, self._timeout
        )

    async def _run_features(self) -> None:
        handles = []
        for feature in self.input.features:
            child = FeatureMigrationInput(
                migration_id=self.id, feature=feature, model=self.input.model,
                replaced=self.input.replaced, tunables=self.input.tunables,
                tracking_issue=self.issue, parent_id=self.id, started_by=self.input.started_by,
                planned_from=workflow.now(), revision=FEATURE_REVISION,
            )
            handles.append(await workflow.start_child_workflow(
                FeatureMigrationWorkflow.run, child, id=feature_workflow_id(self.id, feature.name),
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                search_attributes=attributes.at_feature_start(child),
            ))
        results = asyncio.gather(*handles)
        while not results.done():
            await workflow.wait_condition(lambda: results.done() or self.table_dirty or bool(self.forward))
            await self._forward_commands()
            if self.table_dirty:
                self.table_dirty = False
                await self._gitlab(self._update_table)
        for outcome in results.result():
            self.outcomes[outcome.feature] = outcome
            self.children[outcome.feature] = self.children[outcome.feature].model_copy(
                update={"stage": outcome.stage, "outcome": outcome.outcome, "issue_url": outcome.issue_url}
            )
        await self._gitlab(self._update_table)

    async def _forward_commands(self) -> None:
        while self.forward:
            command = self.forward.pop(0)
            for feature in self.input.features:
                progress = self.children[feature.name]
                if progress.stage.terminal:
                    continue
                handle = workflow.get_external_workflow_handle(feature_workflow_id(self.id, feature.name))
                try:
                    await handle.signal(FeatureMigrationWorkflow.parent_command, command)
                except Exception as err:  # a child that finished meanwhile needs nothing
                    workflow.logger.info("command not passed to %s: %s", feature.name, err)

    # -- GitLab -----------------------------------------------------------------------------

    def _body(self) -> str:
        rows = [
            templates.FeatureRow(
                feature=f, stage=self.children[f.name].stage, eta=(self.children[f.name].eta or self.eta).date(),
                issue_url=self.children[f.name].issue_url, outcome=self.children[f.name].outcome,
            )
            for f in self.input.features
        ]
        target = self.input.tunables.plan.target
        return templates.tracking_issue_body(
            migration_id=self.id, model=self.input.model, replaced=self.input.replaced,
            rows=rows, target_date=target.date() if target else None,
            config_mr_url=self.config_mr.web_url if self.config_mr else "",
        )

    async def _ensure_tracking_issue(self) -> None:
        self.written_body = self._body()
        draft = IssueDraft(
            title=templates.tracking_issue_title(self.input.model), description=self.written_body,
            marker=f"{self.id}:tracking", labels=["AI Model Migration", "group::ai framework"],
            due_date=self.eta.date(),
        )
        self.issue = await call(Activity.ENSURE_ISSUE, EnsureIssueInput(draft=draft), IssueRef, self._timeout)

    async def _update_table(self) -> None:
        assert self.issue is not None
        body = self._body()
        if workflow.patched(TABLE_DIFF_PATCH) and body == self.written_body:
            return
        description = body + "\n\n" + f"<!-- model-migration:{self.id}:tracking -->"
        await call(Activity.UPDATE_ISSUE, UpdateIssueInput(iid=self.issue.iid, description=description), IssueRef, self._timeout)
        self.written_body = body

    async def _flush(self) -> None:
        assert self.issue is not None
        await self.journal.flush(self.issue.iid, self._timeout)

    async def _close(self) -> None:
        assert self.issue is not None
        await call(Activity.UPDATE_ISSUE, UpdateIssueInput(iid=self.issue.iid, state_event="close"), IssueRef, self._timeout)

    async def _gitlab(self, step) -> None:  # type: ignore[no-untyped-def]
        while True:
            try:
                await step()
                self.blocked = ""
                return
            except GitLabBlocked as err:
                self.blocked = f"GitLab: {err}"
                if workflow.patched(MIGRATION_BLOCKED_NOTICE_PATCH):
                    # GitLab refused us, so no note can reach anyone: tell them another way.
                    await notify(
                        self.id, tuple(dict.fromkeys((self.input.started_by, "ai-framework"))),
                        f"Migration to {self.input.model.name} is blocked in {self.stage} on GitLab access",
                        f"{err}. Fix the token or permissions, then run: model-migration resume {self.id}",
                        self._timeout,
                    )
                await workflow.wait_condition(lambda: not self.blocked)

    @property
    def _timeout(self):  # type: ignore[no-untyped-def]
        return self.input.tunables.activity_timeout

    # -- state ------------------------------------------------------------------------------

    def _move(self, to: Stage, actor: str, detail: str = "") -> None:
        self.journal.record(self.stage, to, actor, detail)
        self.stage = to
        self._publish()

    def _publish(self, first: bool = False) -> None:
        attributes.publish(attributes.migration_values(self.input, self.stage, self.eta), first=first)

    def _ordered_outcomes(self) -> list[FeatureOutcome]:
        return [self.outcomes[f.name] for f in self.input.features if f.name in self.outcomes]

    def _result(self) -> MigrationResult:
        outcomes = self._ordered_outcomes()
        return MigrationResult(
            migration_id=self.id, stage=self.stage, features=tuple(outcomes),
            tracking_issue_url=self.issue.web_url if self.issue else "",
            escalations=sum(o.escalations for o in outcomes), problems=tuple(self.problems),
        )

    # -- messages ---------------------------------------------------------------------------

    @workflow.signal(name=FEATURE_PROGRESS)
    def feature_progress(self, progress: FeatureProgress) -> None:
        if progress.feature in self.children:
            self.children[progress.feature] = progress
            self.table_dirty = True

    @workflow.update
    def complete_stage(self, cmd: CompleteStage) -> CommandResult:
        self.init_completed_by = cmd.actor
        return CommandResult(stage=self.stage, message="init complete; the feature migrations start")

    @complete_stage.validator
    def _check_complete_stage(self, cmd: CompleteStage) -> None:
        def rule() -> None:
            stages.check_active(self.stage, self.paused)
            if cmd.stage != Stage.INIT:
                raise CommandRejected(f"{cmd.stage} belongs to a feature: send it to the feature workflow (--feature)")
            if self.stage != Stage.INIT:
                raise CommandRejected(f"init is already complete; the migration is in {self.stage}")

        self._check(rule)

    @workflow.update
    def pause(self, cmd: Pause) -> CommandResult:
        self.paused = True
        self.forward.append(ParentCommand(kind="pause", actor=cmd.actor, reason=cmd.reason))
        return CommandResult(stage=self.stage, message="paused; every feature is on hold")

    @pause.validator
    def _check_pause(self, cmd: Pause) -> None:
        self._check(lambda: stages.check_pause(self.stage, self.paused))

    @workflow.update
    def resume(self, cmd: Resume) -> CommandResult:
        self.paused, self.blocked = False, ""
        self.forward.append(ParentCommand(kind="resume", actor=cmd.actor, reason=cmd.note))
        return CommandResult(stage=self.stage, message="resumed")

    @resume.validator
    def _check_resume(self, cmd: Resume) -> None:
        self._check(lambda: stages.check_resume(self.stage, self.paused or bool(self.blocked)))

    @workflow.update
    def abort(self, cmd: Abort) -> CommandResult:
        self.forward.append(ParentCommand(kind="abort", actor=cmd.actor, reason=cmd.reason))
        self._move(Stage.ABORTED, cmd.actor, f"Aborted: {cmd.reason}")
        return CommandResult(stage=self.stage, message="aborted; every open feature is being aborted")

    @abort.validator
    def _check_abort(self, cmd: Abort) -> None:
        def rule() -> None:
            stages.check_abort(self.stage, cmd.reason)
            if self.stage == Stage.CLEANUP:
                raise CommandRejected("every feature has finished; the migration is closing")

        self._check(rule)

    @staticmethod
    def _check(rule) -> None:  # type: ignore[no-untyped-def]
        try:
            rule()
        except CommandRejected as err:
            raise rejected(err) from None

    @workflow.query
    def status(self) -> Status:
        pending = None
        if self.blocked:
            pending = PendingAction(action=f"fix GitLab access ({self.blocked}), then resume", owner="ai-framework", command="resume")
        elif self.stage == Stage.FEATURES:
            open_ = [p.feature for p in self.children.values() if not p.stage.terminal]
            pending = PendingAction(action=f"feature teams: {', '.join(open_)}", owner="feature teams")
        elif self.stage == Stage.INIT and self.config_mr is not None:
            pending = PendingAction(
                action=f"merge the model configuration {self.config_mr.web_url} (or complete init)",
                owner="ai-framework", command="complete_stage init",
            )
        return Status(
            workflow_id=self.id, kind="migration", stage=self.stage, paused=self.paused,
            blocked=self.blocked, model=self.input.model.gitlab_identifier,
            provider=self.input.model.provider,
            replaced=self.input.replaced.gitlab_identifier if self.input.replaced else "",
            issue=self.issue, history=tuple(self.journal.history),
            deadlines=(Deadline(stage=Stage.CLEANUP, due=self.eta),),
            pending_action=pending, features=tuple(self.children[f.name] for f in self.input.features),
            problems=tuple(self.problems),
            config_mr_url=self.config_mr.web_url if self.config_mr else "",
            config_mr_state=self.config_mr.state if self.config_mr else "",
        )
