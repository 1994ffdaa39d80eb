"""FeatureMigrationWorkflow: the Temporal glue around the feature stage machine.

The rules live in ``model_migration/domain/feature.py``. Here: the run loop that posts the
notes the machine asks for, the escalation timer, and the messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    import workflows.attributes as attributes
    import workflows.metrics as metrics
    import workflows.views as views
    from activities import interface
    from activities.payloads import (
        AddToEpicInput,
        CleanupMergeRequestInput,
        EnsureIssueInput,
        EnsureLabelsInput,
        IssueLinkInput,
        UpdateIssueInput,
    )
    from model_migration.domain import feature as machine
    from model_migration.domain.deadlines import plan_due_dates
    from model_migration.domain.errors import CommandRejected
    from model_migration.domain.escalation import next_escalation
    from model_migration.domain.feature_state import CleanupOpened, OpenCleanup, RolloutEnded, StartRollout
    from model_migration.domain.gateway import cleanup_change
    from model_migration.domain.models import IssueRef
    from model_migration.domain.stages import FeatureStage
    from workflows.common import Journal, call, handle, marker_base, notify, until_done, validate
    from workflows.messages import (
        FEATURE_PROGRESS,
        Abort,
        Approve,
        CommandResult,
        CompleteStage,
        EvaluationResult,
        ExtendDeadline,
        FeatureMigrationInput,
        FeatureOutcome,
        FeatureStatus,
        ParentCommand,
        Pause,
        Reject,
        ReportEvaluation,
        ReportRollout,
        RerunEvaluation,
        Resume,
        RetryRollout,
        RolloutResult,
        evaluation_workflow_id,
    )
    from workflows.rollout_messages import rollout_workflow_id
    from workflows.timer import EscalationTimer
    from workflows.versions import BLOCKED_NOTICE_PATCH, DRAIN_OUTBOX_PATCH, ENSURE_LABELS_PATCH, ISSUE_LINK_PATCH


@workflow.defn
class FeatureMigrationWorkflow:
    @workflow.init
    def __init__(self, input: FeatureMigrationInput) -> None:
        self.input = input
        self.id = workflow.info().workflow_id
        due = plan_due_dates(input.planned_from or workflow.now(), input.tunables.plan)
        self.state = machine.initial(input.feature, input.tunables.ladder, due, input.revision)
        self.key = marker_base(self.id, input.rerun)
        self.journal = Journal(self.key)
        self.timer = EscalationTimer(kept=input.revision >= 2)
        self.issue: IssueRef | None = None
        self.issue_closed = False
        self.labels_ensured = False
        self.version = 0  # bumped by every change the run loop must see
        self.progress_dirty = True
        self.gate_task: asyncio.Task[None] | None = None
        self.rollout_task: asyncio.Task[None] | None = None
        self.cleanup_task: asyncio.Task[None] | None = None
        #: Every rollout the engine drove, with its steps and measurements, for the outcome.
        self.rollout_results: list[RolloutResult] = []

    @workflow.run
    async def run(self, input: FeatureMigrationInput) -> FeatureOutcome:
        self._publish(first=True)
        metrics.stage_entered("feature", self.state.stage.value)
        try:
            await self._gitlab(self._ensure_issue)
            if self.input.epic is not None:  # a deprecation's feature: only runs started with an epic
                await self._gitlab(self._file_under_epic)
            if self.input.tracking_issue is not None and workflow.patched(ISSUE_LINK_PATCH):
                await self._gitlab(self._link_to_tracking_issue)
            while True:
                await self._gitlab(self._flush)
                if self.state.stage.terminal:
                    break
                await self._wait()
            self.timer.cancel()
            self._stop_gate()
            await self._stop_rollout()
            await self._gitlab(self._close_issue)
        except asyncio.CancelledError:
            self.timer.cancel()
            self._stop_gate()
            # The parent went away with REQUEST_CANCEL: record it and tidy the issue up.
            if not self.state.stage.terminal:
                self._apply(Abort(actor="model-migration", reason="the parent migration was cancelled"))
            await self._stop_rollout()
            await self._gitlab(self._flush)
            await self._gitlab(self._close_issue)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return views.feature_outcome(self.state, self.issue, tuple(self.rollout_results))

    # -- the machine ----------------------------------------------------------------------

    def _apply(self, command: machine.Command) -> machine.Decision:
        """Decide, keep the state, and carry out the effects that need no waiting."""
        decision = machine.decide(self.state, command, workflow.now())
        before, self.state = self.state, decision.state
        metrics.feature_change(before, self.state, command)
        for effect in decision.effects:
            if isinstance(effect, machine.Note):
                self.journal.note(effect)
            elif isinstance(effect, machine.Publish):
                self._publish()
            elif isinstance(effect, machine.RunGate):
                self.gate_task = asyncio.create_task(self._run_gate(effect.attempt))
            elif isinstance(effect, StartRollout):
                self.rollout_task = asyncio.create_task(self._run_rollout(effect))
            elif isinstance(effect, OpenCleanup):
                self.cleanup_task = asyncio.create_task(self._gitlab(self._open_cleanup))
            else:
                self.progress_dirty = True
        if decision.effects or decision.state is not before:
            self.version += 1
        return decision

    def _command(self, name: str, command: machine.Command) -> CommandResult:
        return handle(name, command, lambda: self._apply(command))

    def _validate(self, command: machine.Command) -> None:
        validate(lambda: machine.decide(self.state, command, workflow.now()))

    def _publish(self, first: bool = False) -> None:
        values = attributes.feature_values(self.input, self.state.stage, self.state.due())
        attributes.publish(values, first=first)

    async def _wait(self) -> None:
        """Wait for a command, firing escalations as their times come."""
        s, version = self.state, self.version
        planned = None if s.paused else next_escalation(s.due(), s.ladder, s.escalation, workflow.now())
        if await self.timer.sleep(planned.at if planned else None, lambda: self.version != version):
            assert planned is not None
            self._apply(machine.Escalate(planned=planned))

    # -- the evaluation gate (revision 4) -----------------------------------------------------

    async def _run_gate(self, attempt: int) -> None:
        """Run evaluation ``attempt`` as a child workflow, then let the machine take its verdict."""
        request = views.evaluation_input(self.input, self.state, self.state.gates[attempt - 1])
        try:
            result = await workflow.execute_child_workflow(
                "EvaluationWorkflow", request, result_type=EvaluationResult, id=evaluation_workflow_id(self.key, attempt),
            )
            event = machine.GateDecided(attempt=attempt, result=result.gate, run_url=result.run_url, error=result.error)
        except ChildWorkflowError as err:
            event = machine.GateDecided(attempt=attempt, error=f"the evaluation workflow failed: {err.cause or err}")
        # A paused feature takes its verdict when it is resumed.
        await workflow.wait_condition(lambda: not self.state.paused)
        self._apply(event)

    def _stop_gate(self) -> None:
        if self.gate_task is not None and not self.gate_task.done():
            self.gate_task.cancel()

    # -- the rollout (revision 5) --------------------------------------------------------------

    async def _run_rollout(self, start: StartRollout) -> None:
        """Drive the flag as a child workflow; its end moves the feature (``domain/feature_rollout.py``)."""
        await workflow.wait_condition(lambda: self.issue is not None)
        previous = self.rollout_results[-1] if self.rollout_results else None
        request = views.rollout_input(self.key, self.input, self.state, start, self.issue, previous)
        try:
            result = await workflow.execute_child_workflow(
                "RolloutWorkflow", request, result_type=RolloutResult, id=rollout_workflow_id(self.key, start.attempt),
            )
            self.rollout_results.append(result)
            label = request.ladder[result.failed_step].label if result.failed_step is not None else ""
            event = RolloutEnded(attempt=start.attempt, phase=result.phase.value, outcome=result.outcome,
                                 failed_step=result.failed_step, failed_label=label, timeline=views.rollout_timeline(result))
        except ChildWorkflowError as err:
            event = RolloutEnded(attempt=start.attempt, phase="failed", outcome=f"the rollout workflow failed: {err.cause or err}")
        self._apply(event)

    async def _stop_rollout(self) -> None:
        """A feature that ends mid-rollout cancels it: the rollout turns the flag off, then ends."""
        for task in (self.rollout_task, self.cleanup_task):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

    async def _open_cleanup(self) -> None:
        if self.state.cleanup_mr or self.state.stage != FeatureStage.CLEANUP:
            return
        replaced = self.input.replaced
        if replaced is None:
            self._apply(CleanupOpened(detail="No replaced model was named: no prompt definitions to remove."))
            return
        change = cleanup_change(
            self.input.migration_id, self.input.feature, replaced, self.input.model,
            tracking_url=self.input.tracking_issue.web_url if self.input.tracking_issue else "",
            feature_issue_url=self.issue.web_url if self.issue else "",
        )
        request = CleanupMergeRequestInput(
            branch=change.branch, deletes=change.deletes, commit_message=change.commit_message, title=change.title,
            description=change.description, labels=change.labels,
        )
        mr = await call(interface.ensure_cleanup_mr, request, self._timeout)
        self._apply(CleanupOpened(url=mr.web_url, detail="" if mr.web_url else "The old model's prompt definitions were already gone."))

    # -- GitLab ----------------------------------------------------------------------------

    async def _gitlab(self, step: Callable[[], Awaitable[None]]) -> None:
        await until_done(step, on_block=self._block, is_blocked=lambda: bool(self.state.blocked))

    async def _block(self, reason: str) -> None:
        self._apply(machine.Block(reason=f"GitLab: {reason}"))
        if workflow.patched(BLOCKED_NOTICE_PATCH):
            # GitLab refused us, so a note cannot reach anyone: tell people another way, once per block.
            self._apply(machine.BlockedNoticeSent())
            f = self.state.feature
            await notify(
                self.id, (f.dri, f.manager, "ai-framework"),
                f"{f.title} migration is blocked in {self.state.stage} on GitLab access",
                f"{reason}. Fix the token or permissions, then run: model-migration resume {self.id}",
                self._timeout,
            )

    async def _ensure_issue(self) -> None:
        if self.issue is None:
            draft = views.rollout_issue_draft(self.key, self.input, self.state)
            self.issue = await call(interface.ensure_issue, EnsureIssueInput(draft=draft), self._timeout)
            self.progress_dirty = True

    async def _file_under_epic(self) -> None:
        assert self.issue is not None and self.input.epic is not None
        request = AddToEpicInput(group=self.input.epic.group, epic_iid=self.input.epic.iid, issue_id=self.issue.id)
        await call(interface.add_to_epic, request, self._timeout)

    async def _link_to_tracking_issue(self) -> None:
        assert self.issue is not None and self.input.tracking_issue is not None
        link = IssueLinkInput(iid=self.input.tracking_issue.iid, target_iid=self.issue.iid)
        await call(interface.ensure_issue_link, link, self._timeout)

    async def _flush(self) -> None:
        if self.issue is None:
            await self._ensure_issue()
        assert self.issue is not None
        await self._ensure_labels()
        await self.journal.flush(self.issue.iid, self._timeout)
        await self._notify_parent()
        # A command that came while the parent was told queued a note: post it now, before the
        # loop waits, closes the issue or returns (asked only then, so ordinary runs carry no marker).
        while self.journal.outbox and workflow.patched(DRAIN_OUTBOX_PATCH):
            await self._ensure_labels()
            await self.journal.flush(self.issue.iid, self._timeout)
            await self._notify_parent()

    async def _ensure_labels(self) -> None:
        """Create the escalation labels before the first note whose ``/label`` names one."""
        if self.labels_ensured or not any(n.add_labels for n in self.journal.outbox):
            return
        if workflow.patched(ENSURE_LABELS_PATCH):
            labels = tuple(sorted({step.label for step in self.state.ladder if step.label}))
            await call(interface.ensure_labels, EnsureLabelsInput(labels=labels), self._timeout)
        self.labels_ensured = True

    async def _close_issue(self) -> None:
        if self.issue is None or self.issue_closed or self.journal.closed:
            return
        request = UpdateIssueInput(iid=self.issue.iid, state_event="close", remove_labels=self.state.labels_added)
        await call(interface.update_issue, request, self._timeout)
        self.issue_closed = True

    async def _notify_parent(self) -> None:
        if not self.progress_dirty or not self.input.parent_id:
            return
        self.progress_dirty = False
        parent = workflow.get_external_workflow_handle(self.input.parent_id)
        try:
            await parent.signal(FEATURE_PROGRESS, views.feature_progress(self.state, self.issue))
        except Exception as err:  # the parent may be gone; the feature goes on regardless
            workflow.logger.warning("parent not told of progress: %s", err)

    @property
    def _timeout(self) -> timedelta:
        return self.input.tunables.activity_timeout

    # -- messages ------------------------------------------------------------------------------

    @workflow.update
    def complete_stage(self, cmd: CompleteStage) -> CommandResult:
        return self._command("complete_stage", cmd)

    @complete_stage.validator
    def _check_complete_stage(self, cmd: CompleteStage) -> None:
        self._validate(cmd)

    @workflow.update
    def report_evaluation(self, cmd: ReportEvaluation) -> CommandResult:
        return self._command("report_evaluation", cmd)

    @report_evaluation.validator
    def _check_report_evaluation(self, cmd: ReportEvaluation) -> None:
        self._validate(cmd)

    @workflow.update
    def report_rollout(self, cmd: ReportRollout) -> CommandResult:
        return self._command("report_rollout", cmd)

    @report_rollout.validator
    def _check_report_rollout(self, cmd: ReportRollout) -> None:
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

    @workflow.update
    def extend_deadline(self, cmd: ExtendDeadline) -> CommandResult:
        return self._command("extend_deadline", cmd)

    @extend_deadline.validator
    def _check_extend_deadline(self, cmd: ExtendDeadline) -> None:
        self._validate(cmd)

    @workflow.update
    def approve(self, cmd: Approve) -> CommandResult:
        return self._command("approve", cmd)

    @approve.validator
    def _check_approve(self, cmd: Approve) -> None:
        self._validate(cmd)

    @workflow.update
    def reject(self, cmd: Reject) -> CommandResult:
        return self._command("reject", cmd)

    @reject.validator
    def _check_reject(self, cmd: Reject) -> None:
        self._validate(cmd)

    @workflow.update
    def rerun_evaluation(self, cmd: RerunEvaluation) -> CommandResult:
        return self._command("rerun_evaluation", cmd)

    @rerun_evaluation.validator
    def _check_rerun_evaluation(self, cmd: RerunEvaluation) -> None:
        self._validate(cmd)

    @workflow.update
    def retry_rollout(self, cmd: RetryRollout) -> CommandResult:
        return self._command("retry_rollout", cmd)

    @retry_rollout.validator
    def _check_retry_rollout(self, cmd: RetryRollout) -> None:
        self._validate(cmd)

    @workflow.signal
    def parent_command(self, cmd: ParentCommand) -> None:
        try:
            self._apply(cmd)
        except CommandRejected as err:  # a signal has no one to answer: log it, change nothing
            workflow.logger.warning("parent command %s ignored: %s", cmd.kind, err)

    @workflow.query
    def status(self) -> FeatureStatus:
        s = self.state
        planned = None
        if not s.stage.terminal and not s.paused:
            planned = next_escalation(s.due(), s.ladder, s.escalation, workflow.now())
        return views.feature_status(self.id, self.input, s, self.issue, planned, key=self.key)
