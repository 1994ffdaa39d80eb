"""RolloutWorkflow: a feature flag driven up the ladder, each step baked and analysed on real metrics.

Started by the feature workflow when it enters rollout (``<feature key>:rollout:<attempt>``). The
rules are the pure ``domain/rollout_machine.py``; here are the timers (bake, analysis interval,
hold, drain checks), the activities its effects name (flag writes, Prometheus queries, notes on
the feature issue, the DRI's notice) and the human controls as updates with validators. It
returns the rollout's outcome and its step log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    import workflows.metrics as metrics
    from activities import interface
    from activities import rollout_interface as flags
    from activities.payloads import PostNoteInput
    from activities.rollout_payloads import (
        ApplyFlagStepInput,
        BaselineInput,
        FlagIssueInput,
        FlagOffInput,
        MeasureStepInput,
        OldModelRateInput,
        RolloutIssuesInput,
    )
    from model_migration.domain import rollout_machine as machine
    from model_migration.domain.errors import CommandRejected
    from model_migration.domain.models import IssueRef, marker_comment
    from model_migration.domain.rollout_baseline import ObservedBaseline
    from model_migration.domain.rollout_views import step_views
    from workflows.common import GitLabBlocked, call, notify, rejected
    from workflows.rollout_messages import RolloutInput, RolloutResult, RolloutStatus


T = TypeVar("T")


@workflow.defn
class RolloutWorkflow:
    @workflow.init
    def __init__(self, input: RolloutInput) -> None:
        self.input = input
        self.id = workflow.info().workflow_id
        first = machine.start(input.ladder, input.analysis, test_run=input.test_run, from_step=input.from_step)
        self.state = first.state
        self.pending: list[machine.Effect] = list(first.effects)
        self.version = 0
        self.notes = 0
        self.started = workflow.now()
        # The paper trail (with a plan only): the flag issue, the old model's baseline, what was written.
        self.flag_issue: IssueRef | None = None
        self.baseline: ObservedBaseline | None = None
        self.flag_deleted = False

    @workflow.run
    async def run(self, input: RolloutInput) -> RolloutResult:
        metrics.stage_entered("rollout", self.state.phase.value)
        try:
            await self._open_paper_trail()
            while not self.state.phase.terminal or self.pending:
                await self._carry_out()
                if self.state.phase.terminal:
                    continue
                await self._wait()
        except asyncio.CancelledError:
            # The feature was aborted (or its migration cancelled): the flag goes off everywhere
            # before the rollout ends, whatever step it was at.
            if not self.state.phase.terminal:
                self._apply(machine.Abort(actor="model-migration", reason="the feature's migration was aborted"))
            await self._carry_out()
        await self._write_issues()
        await workflow.wait_condition(workflow.all_handlers_finished)
        failed = self.state.step if self.state.phase == machine.Phase.ROLLED_BACK else None
        return RolloutResult(phase=self.state.phase, outcome=self.state.outcome, failed_step=failed,
                             records=self.state.records, log=self.state.log)

    # -- the machine ------------------------------------------------------------------------

    def _apply(self, command: machine.Command) -> machine.Decision:
        decision = machine.decide(self.state, command, workflow.now())
        if decision.state != self.state or decision.effects:
            self.version += 1
        metrics.rollout_change(self.state, decision.state)
        self.state = decision.state
        self.pending.extend(decision.effects)
        return decision

    async def _carry_out(self) -> None:
        """Run the effects in order; an effect's answer may queue more (a flag applied starts its bake)."""
        while self.pending:
            effect = self.pending.pop(0)
            timeout = self.input.tunables.activity_timeout
            if isinstance(effect, machine.ApplyStep):
                step = self.state.ladder[effect.step]
                await call(flags.apply_flag_step, ApplyFlagStepInput(target=self.input.target, step=step), timeout)
                self._apply(machine.Applied(step=effect.step))
                await self._write_issues()
            elif isinstance(effect, machine.AllOff):
                await call(flags.flag_off, FlagOffInput(target=self.input.target), timeout)
                await self._write_issues()
            elif isinstance(effect, machine.RemoveFlag):
                await call(flags.remove_flag, FlagOffInput(target=self.input.target), timeout)
                self.flag_deleted = True
                await self._write_issues()
            elif isinstance(effect, machine.CheckTraffic):
                await self._check_traffic()
            elif isinstance(effect, machine.StepNote):
                await self._note(effect.body)
            else:
                await self._escalate(effect.reason)

    async def _wait(self) -> None:
        """Until the next timer of the phase, or until a command changes the state."""
        s, version = self.state, self.version
        changed = self._changed_since(version)
        if s.phase == machine.Phase.BAKING:
            record = s.record(s.step)
            assert record is not None and record.applied_at is not None
            bake_end = record.applied_at + s.current.bake
            next_measure = min(workflow.now() + self.input.tunables.analysis_interval, bake_end)
            if not s.current.analysed:  # a non-production step only bakes
                next_measure = bake_end
            if await self._sleep_until(next_measure, changed):
                if s.current.analysed:
                    await self._measure(s.step)
                still = self.state.phase == machine.Phase.BAKING and self.state.step == s.step
                if still and workflow.now() >= bake_end:
                    self._apply(machine.BakeEnded(step=s.step))
        elif s.phase == machine.Phase.HOLDING:
            if await self._sleep_until(self._held_since() + self.input.tunables.hold, changed):
                self._apply(machine.HoldEnded())
        elif s.phase == machine.Phase.DRAINING:
            if await self._sleep_until(workflow.now() + self.input.tunables.drain_recheck, changed):
                await self._check_traffic()
        else:  # paused, or applying with nothing queued: a person moves it on
            await workflow.wait_condition(changed)

    def _changed_since(self, version: int) -> Callable[[], bool]:
        return lambda: self.version != version

    async def _sleep_until(self, at: datetime, changed: Callable[[], bool]) -> bool:
        """True when the time came; False when a command changed the state first."""
        delay = at - workflow.now()
        if delay <= timedelta(0):
            return True
        try:
            await workflow.wait_condition(changed, timeout=delay)
            return False
        except TimeoutError:
            return True

    def _held_since(self) -> datetime:
        entry = next(e for e in reversed(self.state.log) if e.event == "holding at 100 %")
        return entry.at

    async def _measure(self, step: int) -> None:
        request = MeasureStepInput(
            feature=self.input.feature, candidate=self.input.candidate, baseline=self.input.baseline,
            window=self.input.tunables.analysis_window, analysis=self.state.analysis,
            baseline_window=workflow.now() - self.started + self.input.tunables.analysis_window,
        )
        measured = await call(flags.measure_step, request, self.input.tunables.activity_timeout)
        self._apply(machine.Measured(step=step, measurements=tuple(measured)))

    async def _check_traffic(self) -> None:
        request = OldModelRateInput(feature=self.input.feature, model=self.input.baseline, window=self.input.tunables.drain_window)
        rate = await call(flags.old_model_rate, request, self.input.tunables.activity_timeout)
        self._apply(machine.TrafficChecked(old_model_rate=rate))

    async def _note(self, body: str) -> None:
        if not self.input.issue_iid:
            return
        self.notes += 1
        marker = f"{self.id}:note:{self.notes}"
        note = PostNoteInput(iid=self.input.issue_iid, body=f"{body}\n\n{marker_comment(marker)}", marker=marker)
        await call(interface.post_note, note, self.input.tunables.activity_timeout)

    # -- the paper trail: the rollout-plan issue and the "Feature Flag Roll Out" issue -------------

    async def _open_paper_trail(self) -> None:
        """Before the first step: the flag issue (one per flag, found again on a retry), the old
        model's baseline from Prometheus, and both issues written once."""
        plan, timeout = self.input.plan, self.input.tunables.activity_timeout
        if plan is None or not self.input.issue_iid:
            return
        marker = f"{self.input.plan_marker}:flag-issue:{self.input.target.name}"
        request = FlagIssueInput(plan=plan, plan_issue_iid=self.input.issue_iid, marker=marker)
        self.flag_issue = await self._paper(lambda: call(flags.ensure_flag_issue, request, timeout))
        window = BaselineInput(feature=self.input.feature, model=self.input.baseline, window=self.input.tunables.baseline_window)
        self.baseline = await self._paper(lambda: call(flags.observe_baseline, window, timeout))
        await self._write_issues()

    async def _write_issues(self) -> None:
        """Both issues as the rollout stands: one edit per issue when something changed, none otherwise."""
        plan, s = self.input.plan, self.state
        if plan is None or not self.input.issue_iid:
            return
        flag_issue = self.flag_issue
        request = RolloutIssuesInput(
            plan=plan, steps=step_views(s.ladder, s.records, phase=s.phase, previous=self.input.previous_steps),
            baseline=self.baseline, plan_issue_iid=self.input.issue_iid, plan_marker=self.input.plan_marker,
            flag_issue_iid=flag_issue.iid if flag_issue else 0, flag_issue_url=flag_issue.web_url if flag_issue else "",
            flag_marker=f"{self.input.plan_marker}:flag-issue:{self.input.target.name}",
            turned_off=s.phase in (machine.Phase.ROLLED_BACK, machine.Phase.ABORTED), removed=self.flag_deleted,
            close_flag_issue=self.flag_deleted,
        )
        await self._paper(lambda: call(flags.write_rollout_issues, request, self.input.tunables.activity_timeout))

    async def _paper(self, step: Callable[[], Awaitable[T]]) -> T | None:
        """The paper trail never stops a rollout: GitLab refusing an issue edit is logged, and the flag goes on."""
        try:
            return await step()
        except (ActivityError, GitLabBlocked) as err:
            workflow.logger.warning("rollout issue not written: %s", err)
            return None

    async def _escalate(self, reason: str) -> None:
        metrics.escalation("rollout", "rollout")
        audience = tuple(p for p in (self.input.dri, self.input.manager) if p)
        body = f"Rollout of {self.input.feature} needs you: {reason}. Run `model-migration status` for the measurements."
        await notify(self.id, audience, f"{self.input.feature} rollout: {reason}", body, self.input.tunables.activity_timeout)

    # -- human controls ---------------------------------------------------------------------

    def _command(self, command: machine.Command) -> str:
        try:
            return self._apply(command).message
        except CommandRejected as err:
            raise rejected(err) from None

    def _check(self, command: machine.Command) -> None:
        try:
            machine.decide(self.state, command, workflow.now())
        except CommandRejected as err:
            raise rejected(err) from None

    @workflow.update
    def pause(self, cmd: machine.Pause) -> str:
        return self._command(cmd)

    @pause.validator
    def _check_pause(self, cmd: machine.Pause) -> None:
        self._check(cmd)

    @workflow.update
    def resume(self, cmd: machine.Resume) -> str:
        return self._command(cmd)

    @resume.validator
    def _check_resume(self, cmd: machine.Resume) -> None:
        self._check(cmd)

    @workflow.update
    def promote(self, cmd: machine.Promote) -> str:
        return self._command(cmd)

    @promote.validator
    def _check_promote(self, cmd: machine.Promote) -> None:
        self._check(cmd)

    @workflow.update
    def promote_full(self, cmd: machine.PromoteFull) -> str:
        return self._command(cmd)

    @promote_full.validator
    def _check_promote_full(self, cmd: machine.PromoteFull) -> None:
        self._check(cmd)

    @workflow.update
    def abort(self, cmd: machine.Abort) -> str:
        return self._command(cmd)

    @abort.validator
    def _check_abort(self, cmd: machine.Abort) -> None:
        self._check(cmd)

    @workflow.update
    def retry(self, cmd: machine.Retry) -> str:
        return self._command(cmd)

    @retry.validator
    def _check_retry(self, cmd: machine.Retry) -> None:
        self._check(cmd)

    @workflow.query
    def status(self) -> RolloutStatus:
        s = self.state
        return RolloutStatus(
            phase=s.phase, step=s.step, step_label=s.current.label, test_run=s.test_run, paused_by=s.paused_by,
            flag=self.input.target.name, records=s.records, log=s.log,
        )
