"""FeatureMigrationWorkflow: implement → evaluate → roll out → cleanup for one feature."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.payloads import Activity, EnsureIssueInput, IssueLinkInput, UpdateIssueInput
    from model_migration.domain import deadlines, stages, templates
    from model_migration.domain.errors import CommandRejected, ErrorType
    from model_migration.domain.escalation import EscalationKind, PlannedEscalation, after_firing, next_escalation
    from model_migration.domain.models import IssueDraft, IssueRef
    from workflows.common import (
        BLOCKED_NOTICE_PATCH, ISSUE_LINK_PATCH, GitLabBlocked, Journal, call, notify, utc_date,
    )
    from workflows.feature_state import FeatureState
    from workflows.messages import (
        FEATURE_PROGRESS, Abort, CommandResult, CompleteStage, ExtendDeadline, FeatureMigrationInput, FeatureOutcome,
        FeatureProgress, ParentCommand, Pause, ReportEvaluation, ReportRollout, Resume, Status,
    )


def rejected(err: CommandRejected) -> ApplicationError:
    return ApplicationError(err.message, type=ErrorType.COMMAND_REJECTED.value, non_retryable=True)


@workflow.defn
class FeatureMigrationWorkflow:
    @workflow.init
    def __init__(self, input: FeatureMigrationInput) -> None:
        self.input = input
        self.s = FeatureState(input, workflow.info().workflow_id, workflow.now())
        self.journal = Journal(workflow.info().workflow_id)
        #: The escalation timer and when it fires (revision 2 on; see ``_wait``).
        self._timer: asyncio.Task[None] | None = None
        self._timer_at: datetime | None = None

    @workflow.run
    async def run(self, input: FeatureMigrationInput) -> FeatureOutcome:
        s = self.s
        s.publish(first=True)
        try:
            await self._gitlab(self._ensure_issue)
            if self.input.tracking_issue is not None and workflow.patched(ISSUE_LINK_PATCH):
                await self._gitlab(self._link_to_tracking_issue)
            while True:
                await self._gitlab(self._flush)
                if s.stage.terminal:
                    break
                await self._wait()
            self._disarm()
            await self._gitlab(self._close_issue)
        except asyncio.CancelledError:
            self._disarm()
            # The parent went away with REQUEST_CANCEL: record it and tidy the issue up.
            if not s.stage.terminal:
                s.abort("model-migration", "the parent migration was cancelled", self.journal)
            await self._gitlab(self._flush)
            await self._gitlab(self._close_issue)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return s.outcome()

    # -- stages -------------------------------------------------------------------------

    async def _wait(self) -> None:
        """Wait for a command, firing escalations as their times come."""
        s = self.s
        version = s.version
        changed = lambda: s.version != version  # noqa: E731
        planned = None if s.paused else next_escalation(s.due(), self.input.tunables.ladder, s.escalation, workflow.now())
        if self.input.revision < 2:
            await self._wait_with_fresh_timer(planned, changed)
            return
        if planned is None:
            self._disarm()
            await workflow.wait_condition(changed)
            return
        if planned.at > workflow.now():
            # A command that leaves the escalation where it was (a rollout step, say) keeps
            # the timer: one timer per planned escalation, not one per command.
            timer = self._arm(planned.at)
            await workflow.wait_condition(lambda: changed() or timer.done())
            if not timer.done():
                return
            self._timer = None
            if changed():
                return  # a command came with the timer: plan again from the new state
        else:
            self._disarm()  # due already (a worker back after a while): no timer for the old plan
        self._escalate(planned)

    async def _wait_with_fresh_timer(self, planned: PlannedEscalation | None, changed: Callable[[], bool]) -> None:
        """Revision 1: a new timer on every wait, cancelled by any command."""
        if planned is None:
            await workflow.wait_condition(changed)
            return
        delay = planned.at - workflow.now()
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(changed, timeout=delay)
                return
            except asyncio.TimeoutError:
                pass
        self._escalate(planned)

    def _arm(self, at: datetime) -> asyncio.Task[None]:
        """The timer that fires at ``at``: the running one if it is for that time, else a new one."""
        if self._timer is not None and self._timer_at == at and not self._timer.done():
            return self._timer
        self._disarm()
        self._timer = asyncio.create_task(workflow.sleep(at - workflow.now()))
        self._timer_at = at
        return self._timer

    def _disarm(self) -> None:
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _escalate(self, planned: PlannedEscalation) -> None:
        s, step = self.s, self.input.tunables.ladder[planned.step]
        s.escalation = after_firing(planned)
        s.fire(planned)
        body = templates.escalation_note(
            kind=planned.kind.value, stage=s.stage, due=s.due(), dri=s.feature.dri,
            manager=s.feature.manager, at=workflow.now(), occurrence=planned.occurrence,
            feature_title=s.feature.title,
        )
        labels = (step.label,) if step.label else ()
        s.labels_added.update(labels)
        self.journal.note(body, add_labels=labels)

    async def _ensure_issue(self) -> None:
        s = self.s
        if s.issue is not None:
            return
        f, model = s.feature, self.input.model
        draft = IssueDraft(
            title=templates.rollout_issue_title(f, model),
            description=templates.rollout_issue_body(
                feature=f, model=model, replaced=self.input.replaced,
                due={k: v.date() for k, v in s.deadlines.items()},
                tracking_issue_url=self.input.tracking_issue.web_url if self.input.tracking_issue else "",
                ladder=list(self.input.tunables.rollout_ladder),
            ),
            marker=f"{workflow.info().workflow_id}:issue",
            labels=["type::feature", "feature::maintenance", "AI Model Migration", f.group],
            assignee_username=f.dri,
            due_date=utc_date(s.due()),
            confidential=True,
        )
        s.issue = await call(Activity.ENSURE_ISSUE, EnsureIssueInput(draft=draft), IssueRef, self._timeout)
        s.progress_dirty = True

    async def _link_to_tracking_issue(self) -> None:
        assert self.s.issue is not None and self.input.tracking_issue is not None
        link = IssueLinkInput(iid=self.input.tracking_issue.iid, target_iid=self.s.issue.iid)
        await call(Activity.ENSURE_ISSUE_LINK, link, None, self._timeout)

    async def _flush(self) -> None:
        if self.s.issue is None:
            await self._ensure_issue()
        assert self.s.issue is not None
        await self.journal.flush(self.s.issue.iid, self._timeout)
        await self._notify_parent()

    async def _close_issue(self) -> None:
        s = self.s
        if s.issue is None or s.issue_closed:
            return
        remove = tuple(sorted(s.labels_added))
        await call(
            Activity.UPDATE_ISSUE,
            UpdateIssueInput(iid=s.issue.iid, state_event="close", remove_labels=remove),
            IssueRef,
            self._timeout,
        )
        s.issue_closed = True

    async def _notify_parent(self) -> None:
        s = self.s
        if not s.progress_dirty or not self.input.parent_id:
            return
        s.progress_dirty = False
        progress: FeatureProgress = s.progress()
        parent = workflow.get_external_workflow_handle(self.input.parent_id)
        try:
            await parent.signal(FEATURE_PROGRESS, progress)
        except Exception as err:  # the parent may be gone; the feature goes on regardless
            workflow.logger.warning("parent not told of progress: %s", err)

    async def _gitlab(self, step) -> None:  # type: ignore[no-untyped-def]
        """Run a GitLab step; a permanent failure blocks the feature until someone resumes it."""
        while True:
            try:
                await step()
                return
            except GitLabBlocked as err:
                self.s.block(f"GitLab: {err}")
                if workflow.patched(BLOCKED_NOTICE_PATCH):
                    await self._escalate_blocked(str(err))
                await workflow.wait_condition(lambda: not self.s.blocked)

    async def _escalate_blocked(self, reason: str) -> None:
        """GitLab refused us, so a note cannot reach anyone: tell people another way, once per block."""
        s = self.s
        s.fire(PlannedEscalation(step=-1, occurrence=0, at=workflow.now(), kind=EscalationKind.BLOCKED))
        await notify(
            workflow.info().workflow_id, (s.feature.dri, s.feature.manager, "ai-framework"),
            f"{s.feature.title} migration is blocked in {s.stage} on GitLab access",
            f"{reason}. Fix the token or permissions, then run: model-migration resume {workflow.info().workflow_id}",
            self._timeout,
        )

    @property
    def _timeout(self) -> timedelta:
        return self.input.tunables.activity_timeout

    # -- updates --------------------------------------------------------------------------

    @workflow.update
    def complete_stage(self, cmd: CompleteStage) -> CommandResult:
        return self.s.complete_stage(cmd, self.journal)

    @complete_stage.validator
    def _check_complete_stage(self, cmd: CompleteStage) -> None:
        self._check(lambda: stages.check_complete_stage(
            self.s.stage, cmd.stage, paused=self.s.paused or bool(self.s.blocked),
            prompt_version=cmd.prompt_version, flag_name=cmd.flag_name))

    @workflow.update
    def report_evaluation(self, cmd: ReportEvaluation) -> CommandResult:
        return self.s.report_evaluation(cmd, self.journal)

    @report_evaluation.validator
    def _check_report_evaluation(self, cmd: ReportEvaluation) -> None:
        self._check(lambda: stages.check_report_evaluation(self.s.stage, paused=self.s.paused))

    @workflow.update
    def report_rollout(self, cmd: ReportRollout) -> CommandResult:
        return self.s.report_rollout(cmd, self.journal)

    @report_rollout.validator
    def _check_report_rollout(self, cmd: ReportRollout) -> None:
        self._check(lambda: stages.check_report_rollout(
            self.s.stage, cmd.percentage, self.s.percentage, paused=self.s.paused, rollback=cmd.rollback))

    @workflow.update
    def pause(self, cmd: Pause) -> CommandResult:
        return self.s.pause(cmd.actor, cmd.reason, self.journal)

    @pause.validator
    def _check_pause(self, cmd: Pause) -> None:
        self._check(lambda: stages.check_pause(self.s.stage, self.s.paused))

    @workflow.update
    def resume(self, cmd: Resume) -> CommandResult:
        return self.s.resume(cmd.actor, cmd.note, self.journal)

    @resume.validator
    def _check_resume(self, cmd: Resume) -> None:
        self._check(lambda: stages.check_resume(self.s.stage, self.s.paused or bool(self.s.blocked)))

    @workflow.update
    def abort(self, cmd: Abort) -> CommandResult:
        return self.s.abort(cmd.actor, cmd.reason, self.journal)

    @abort.validator
    def _check_abort(self, cmd: Abort) -> None:
        self._check(lambda: stages.check_abort(self.s.stage, cmd.reason))

    @workflow.update
    def extend_deadline(self, cmd: ExtendDeadline) -> CommandResult:
        return self.s.extend_deadline(cmd, self.journal)

    @extend_deadline.validator
    def _check_extend_deadline(self, cmd: ExtendDeadline) -> None:
        def check() -> None:
            stages.check_active(self.s.stage, paused=False)
            deadlines.extend(self.s.deadlines, cmd.stage, cmd.new_date, self.s.stage, workflow.now())
            if not cmd.reason.strip():
                raise CommandRejected("extending a deadline needs a reason")

        self._check(check)

    @staticmethod
    def _check(rule) -> None:  # type: ignore[no-untyped-def]
        try:
            rule()
        except CommandRejected as err:
            raise rejected(err) from None

    # -- signals and queries -------------------------------------------------------------

    @workflow.signal
    def parent_command(self, cmd: ParentCommand) -> None:
        self.s.apply_parent_command(cmd, self.journal)

    @workflow.query
    def status(self) -> Status:
        return self.s.status(
            self.journal.history, planned=next_escalation(
                self.s.due(), self.input.tunables.ladder, self.s.escalation, workflow.now()
            ) if not self.s.stage.terminal and not self.s.paused else None,
        )


