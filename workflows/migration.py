"""ModelMigrationWorkflow: init, one child per feature, then cleanup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    import workflows.attributes as attributes
    import workflows.metrics as metrics
    import workflows.views as views
    from model_migration.domain import migration as machine
    from model_migration.domain import templates
    from model_migration.domain.compat import compatibility_problems
    from model_migration.domain.feature import Note
    from model_migration.domain.stages import FeatureStage, MigrationStage
    from workflows.common import handle, marker_base, notify, until_done, validate
    from workflows.feature import FeatureMigrationWorkflow
    from workflows.messages import (
        DEPRECATION_PROGRESS,
        FEATURE_PROGRESS,
        Abort,
        CommandResult,
        CompleteStage,
        FeatureMigrationInput,
        FeatureOutcome,
        FeatureProgress,
        MigrationInput,
        MigrationResult,
        MigrationStatus,
        ParentCommand,
        ParentCommandKind,
        Pause,
        Resume,
        feature_workflow_id,
    )
    from workflows.tracking import TrackingIssue
    from workflows.versions import CONFIG_MR_PATCH, FEATURE_REVISION, MIGRATION_BLOCKED_NOTICE_PATCH, SCALE_REVISION



@workflow.defn
class ModelMigrationWorkflow:
    @workflow.init
    def __init__(self, input: MigrationInput) -> None:
        self.input = input
        self.id = workflow.info().workflow_id
        self.state = machine.MigrationState(revision=input.revision)
        self.problems: list[str] = []
        self.children: dict[str, FeatureProgress] = {
            f.name: FeatureProgress(feature=f.name, stage=FeatureStage.IMPLEMENT) for f in input.features
        }
        self.outcomes: dict[str, FeatureOutcome] = {}
        self.eta = attributes.migration_eta(input, workflow.now())
        self.table_dirty = False
        self.forward: list[ParentCommand] = []
        #: A deprecation moved its cutoff by this much: features start with their plan moved too.
        self.shift = timedelta(0)
        self.features_started = False
        #: What the deprecation parent was last told of each feature (revision 5 tells it only changes).
        self.told: dict[str, FeatureProgress] = {}
        self.gitlab = TrackingIssue(self.id, marker_base(self.id, input.rerun), input, self.eta, self.children)

    @property
    def stage(self) -> MigrationStage:
        return self.state.stage

    @workflow.run
    async def run(self, input: MigrationInput) -> MigrationResult:
        self._publish(first=True)
        metrics.stage_entered("migration", self.stage.value)
        await self._gitlab(self.gitlab.ensure)
        await self._gitlab(self.gitlab.file_under_initiative)
        self.problems = compatibility_problems(input.model, input.features)
        if self.problems:
            self.gitlab.journal.note(Note(body=templates.compatibility_note(self.problems)))
            self._move(MigrationStage.FAILED, "model-migration", "infrastructure compatibility check failed")
            await self._gitlab(self.gitlab.flush)
            return self._result()
        detail = f"{len(input.features)} feature migrations started"
        if workflow.patched(CONFIG_MR_PATCH):
            detail = await self._model_configuration() + "; " + detail
        if self.stage == MigrationStage.INIT:
            self._move(MigrationStage.FEATURES, self.state.init_completed_by or input.started_by, detail)
            await self._run_features()
        if self.stage != MigrationStage.ABORTED:
            self._move(MigrationStage.CLEANUP, "model-migration", "every feature finished")
        self.gitlab.journal.note(Note(body=templates.summary_note(
            migration_id=self.id, at=workflow.now(),
            outcomes=[(o.title, o.outcome, o.issue_url) for o in self._ordered_outcomes()],
        )))
        await self._gitlab(self.gitlab.flush)
        await self._gitlab(self.gitlab.close)
        if self.stage == MigrationStage.CLEANUP:
            self._move(MigrationStage.DONE, "model-migration", "tracking issue closed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result()

    async def _model_configuration(self) -> str:
        """Open the AI gateway merge request, record it on the tracking issue, wait for the merge."""
        await self._gitlab(self.gitlab.ensure_config_mr)
        await self._gitlab(self.gitlab.update_table)
        mr = self.gitlab.config_mr
        assert mr is not None
        poll = self.input.tunables.merge_poll
        while mr.state != "merged" and not self.state.init_completed_by and self.stage == MigrationStage.INIT:
            try:
                await workflow.wait_condition(
                    lambda: bool(self.state.init_completed_by) or self.stage != MigrationStage.INIT, timeout=poll,
                )
            except TimeoutError:
                await self._gitlab(self.gitlab.refresh_config_mr)
                mr = self.gitlab.config_mr
                assert mr is not None
        if self.state.init_completed_by:
            return f"init completed by @{self.state.init_completed_by}"
        return f"model configuration merged ({mr.web_url})"

    async def _run_features(self) -> None:
        handles = []
        self.features_started = True
        tunables = self.input.tunables
        if self.shift and tunables.plan.target is not None:  # only a deprecation's migration is shifted
            tunables = tunables.model_copy(update={"plan": tunables.plan.model_copy(update={"target": tunables.plan.target + self.shift})})
        for feature in self.input.features:
            child = FeatureMigrationInput(
                migration_id=self.id, feature=feature, model=self.input.model,
                replaced=self.input.replaced, tunables=tunables,
                tracking_issue=self.gitlab.issue, parent_id=self.id, started_by=self.input.started_by,
                planned_from=workflow.now(), revision=FEATURE_REVISION if self.input.revision >= 3 else 2,
                rerun=self.input.rerun, epic=self.input.deprecation_epic,
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
                await self._tell_parent()
                await self._gitlab(self.gitlab.update_table)
        for outcome in results.result():
            self.outcomes[outcome.feature] = outcome
            self.children[outcome.feature] = self.children[outcome.feature].model_copy(
                update={"stage": outcome.stage, "outcome": outcome.outcome, "issue_url": outcome.issue_url}
            )
        await self._gitlab(self.gitlab.update_table)

    async def _tell_parent(self) -> None:
        """A deprecation's migration tells its parent where every feature is (inputs with a parent only)."""
        if self.input.parent_id is None:
            return
        progress = list(self.children.values())
        if self.input.revision >= SCALE_REVISION:  # the parent keeps what it was told: only the changes
            progress = [p for p in progress if self.told.get(p.feature) != p]
            if not progress:
                return
            self.told.update((p.feature, p) for p in progress)
        parent = workflow.get_external_workflow_handle(self.input.parent_id)
        try:
            await parent.signal(DEPRECATION_PROGRESS, progress)
        except Exception as err:  # a parent that is gone needs nothing
            workflow.logger.info("progress not passed to %s: %s", self.input.parent_id, err)

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

    async def _gitlab(self, step: Callable[[], Awaitable[None]]) -> None:
        await until_done(step, on_block=self._block, is_blocked=lambda: bool(self.state.blocked))
        if self.state.blocked:
            self._apply(machine.Unblock())

    async def _block(self, reason: str) -> None:
        self._apply(machine.Block(reason=f"GitLab: {reason}"))
        if workflow.patched(MIGRATION_BLOCKED_NOTICE_PATCH):
            # GitLab refused us, so no note can reach anyone: tell them another way.
            await notify(
                self.id, tuple(dict.fromkeys((self.input.started_by, "ai-framework"))),
                f"Migration to {self.input.model.name} is blocked in {self.stage} on GitLab access",
                f"{reason}. Fix the token or permissions, then run: model-migration resume {self.id}",
                self._timeout,
            )

    @property
    def _timeout(self) -> timedelta:
        return self.input.tunables.activity_timeout

    # -- state ------------------------------------------------------------------------------

    def _apply(self, command: machine.Command) -> machine.Decision:
        decision = machine.decide(self.state, command, workflow.now())
        metrics.migration_change(self.state, decision.state)
        self.state = decision.state
        for effect in decision.effects:
            if isinstance(effect, machine.Forward):
                self.forward.append(effect.command)
            else:
                self._publish()
        return decision

    def _move(self, to: MigrationStage, actor: str, detail: str = "") -> None:
        self._apply(machine.Advance(to=to, actor=actor, detail=detail))

    def _command(self, name: str, command: machine.Command) -> CommandResult:
        return handle(name, command, lambda: self._apply(command))

    def _validate(self, command: machine.Command) -> None:
        validate(lambda: machine.decide(self.state, command, workflow.now()))

    def _publish(self, first: bool = False) -> None:
        attributes.publish(attributes.migration_values(self.input, self.stage, self.eta), first=first)

    def _ordered_outcomes(self) -> list[FeatureOutcome]:
        return [self.outcomes[f.name] for f in self.input.features if f.name in self.outcomes]

    def _result(self) -> MigrationResult:
        outcomes = self._ordered_outcomes()
        return MigrationResult(
            migration_id=self.id, stage=self.stage, features=tuple(outcomes),
            tracking_issue_url=self.gitlab.issue.web_url if self.gitlab.issue else "",
            escalations=sum(o.escalations for o in outcomes), problems=tuple(self.problems),
        )

    # -- messages ---------------------------------------------------------------------------

    @workflow.signal(name=FEATURE_PROGRESS)
    def feature_progress(self, progress: FeatureProgress) -> None:
        if progress.feature in self.children:
            self.children[progress.feature] = progress
            self.table_dirty = True

    @workflow.signal
    def parent_command(self, cmd: ParentCommand) -> None:
        """A deprecation's cutoff moved: features not started yet start with the moved plan, running
        ones move their current and later stages."""
        if cmd.kind != ParentCommandKind.SHIFT or not cmd.shift:
            workflow.logger.warning("parent command %s ignored: a migration takes only shift", cmd.kind)
            return
        if self.features_started:
            self.forward.append(cmd)
        else:
            self.shift += cmd.shift

    @workflow.update
    def complete_stage(self, cmd: CompleteStage) -> CommandResult:
        return self._command("complete_stage", cmd)

    @complete_stage.validator
    def _check_complete_stage(self, cmd: CompleteStage) -> None:
        self._validate(cmd)

    @workflow.update
    def pause(self, cmd: Pause) -> CommandResult:
        return self._command("pause", cmd)

    @pause.validator
    def _check_pause(self, cmd: Pause) -> None:
        self._validate(cmd)

    @workflow.update
    def resume(self, cmd: Resume) -> CommandResult:
        return self._command("resume", cmd)

    @resume.validator
    def _check_resume(self, cmd: Resume) -> None:
        self._validate(cmd)

    @workflow.update
    def abort(self, cmd: Abort) -> CommandResult:
        return self._command("abort", cmd)

    @abort.validator
    def _check_abort(self, cmd: Abort) -> None:
        self._validate(cmd)

    @workflow.query
    def status(self) -> MigrationStatus:
        return views.migration_status(self.id, self.input, self.state, self.gitlab, self.children, self.eta, self.problems)
