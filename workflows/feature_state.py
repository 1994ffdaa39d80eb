"""The feature workflow's state and what each command does to it.

Handlers only change state and queue notes; the run loop posts them in order.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from model_migration.domain import deadlines, templates
    from model_migration.domain.deadlines import Deadline
    from model_migration.domain.escalation import EscalationState, PlannedEscalation
    from model_migration.domain.models import IssueRef
    from model_migration.domain.stages import Stage, next_feature_stage
    from workflows import attributes
    from workflows.common import Journal, utc_date
    from workflows.messages import (
        CommandResult, CompleteStage, ExtendDeadline, FeatureMigrationInput, FeatureOutcome,
        FeatureProgress, FiredEscalation, NextEscalation, ParentCommand, PendingAction,
        ReportEvaluation, ReportRollout, RolloutStep, Status, Verdict,
    )

PENDING = {
    Stage.IMPLEMENT: ("create the prompt version and feature flag for the new model", "complete_stage implement"),
    Stage.EVALUATE: ("evaluate candidate against baseline and report the result", "report_evaluation"),
    Stage.ROLLOUT: ("roll the feature flag out to 100 %", "report_rollout"),
    Stage.CLEANUP: ("remove the feature flag and update the docs", "complete_stage cleanup"),
}


class FeatureState:
    def __init__(self, input: FeatureMigrationInput, workflow_id: str, now: datetime) -> None:
        self.input = input
        self.workflow_id = workflow_id
        self.feature = input.feature
        self.stage = Stage.IMPLEMENT
        self.deadlines = deadlines.plan_due_dates(input.planned_from or now, input.tunables.plan)
        self.extended: dict[Stage, str] = {}
        self.escalation = EscalationState()
        self.fired: list[FiredEscalation] = []
        self.labels_added: set[str] = set()
        self.paused = False
        self.paused_at: datetime | None = None
        self.blocked = ""
        self.issue: IssueRef | None = None
        self.issue_closed = False
        self.evaluations: list[ReportEvaluation] = []
        self.rollout: list[RolloutStep] = []
        self.prompt_version = ""
        self.flag = input.feature.flag
        self.outcome_text = ""
        self.version = 0  # bumped by every change the run loop must see
        self.progress_dirty = True

    # -- helpers ----------------------------------------------------------------------------

    def due(self) -> datetime:
        return deadlines.due_in(self.deadlines, self.stage)

    @property
    def percentage(self) -> int:
        return self.rollout[-1].percentage if self.rollout else 0

    def changed(self) -> None:
        self.version += 1
        self.progress_dirty = True

    def publish(self, first: bool = False) -> None:
        attributes.publish(attributes.feature_values(self.input, self.stage, self.due()), first=first)

    def move(self, to: Stage, actor: str, journal: Journal, detail: str = "") -> None:
        before = self.stage
        journal.record(before, to, actor, detail)
        self.stage = to
        self.escalation = EscalationState()
        remove = tuple(sorted(self.labels_added))
        self.labels_added.clear()
        owner = None if to.terminal else self.feature.dri
        journal.note(
            templates.transition_note(
                feature_title=self.feature.title, from_stage=before, to_stage=to, actor=actor,
                at=workflow.now(), detail=detail,
                next_due=None if to.terminal else utc_date(self.due()), owner=owner,
            ),
            remove_labels=remove,
            due_date=None if to.terminal else utc_date(self.due()),
        )
        self.publish()
        self.changed()

    def result(self, message: str) -> CommandResult:
        return CommandResult(stage=self.stage, message=message)

    # -- commands ---------------------------------------------------------------------------

    def complete_stage(self, cmd: CompleteStage, journal: Journal) -> CommandResult:
        if cmd.stage == Stage.IMPLEMENT:
            self.prompt_version = cmd.prompt_version or ""
            self.flag = cmd.flag_name or self.flag
            detail = f"Prompt version `{self.prompt_version}`, feature flag `{self.flag}`. {cmd.note}".strip()
        else:
            detail = f"Feature flag `{self.flag}` removed. {cmd.note}".strip()
            self.outcome_text = "done"
        self.move(next_feature_stage(cmd.stage), cmd.actor, journal, detail)
        return self.result(f"{cmd.stage} complete; now in {self.stage}")

    def report_evaluation(self, cmd: ReportEvaluation, journal: Journal) -> CommandResult:
        self.evaluations.append(cmd)
        rows = "\n".join(
            f"| {m.name} | {m.baseline:g} | {m.candidate:g} |" for m in cmd.metrics
        )
        table = f"\n\n| Metric | Baseline | Candidate |\n|---|---|---|\n{rows}" if rows else ""
        detail = f"Evaluation verdict **{cmd.verdict}** on `{cmd.dataset or self.feature.dataset}`. {cmd.summary}".strip() + table
        if cmd.verdict == Verdict.PASS:
            self.move(Stage.ROLLOUT, cmd.actor, journal, detail)
        elif cmd.verdict == Verdict.FAIL:
            self.move(Stage.IMPLEMENT, cmd.actor, journal, detail + "\n\nA new prompt version is needed.")
        else:
            journal.note(templates.command_note(command="report_evaluation", actor=cmd.actor, at=workflow.now(), detail=detail + "\n\nInconclusive: report another evaluation."))
            self.changed()
        return self.result(f"evaluation {cmd.verdict}; now in {self.stage}")

    def report_rollout(self, cmd: ReportRollout, journal: Journal) -> CommandResult:
        self.rollout.append(RolloutStep(percentage=cmd.percentage, at=workflow.now(), actor=cmd.actor, rollback=cmd.rollback))
        what = "Rolled back" if cmd.rollback else "Rolled out"
        detail = f"{what} `{self.flag}` to {cmd.percentage} %. {cmd.note}".strip()
        if cmd.percentage == 100 and not cmd.rollback:
            self.move(Stage.CLEANUP, cmd.actor, journal, detail)
        else:
            journal.note(templates.command_note(command="report_rollout", actor=cmd.actor, at=workflow.now(), detail=detail))
            self.changed()
        return self.result(f"{cmd.percentage} % recorded; now in {self.stage}")

    def pause(self, actor: str, reason: str, journal: Journal) -> CommandResult:
        self.paused, self.paused_at = True, workflow.now()
        journal.note(templates.command_note(command="pause", actor=actor, at=workflow.now(), detail=reason))
        self.changed()
        return self.result("paused; escalations are on hold")

    def resume(self, actor: str, note: str, journal: Journal) -> CommandResult:
        if self.paused and self.paused_at is not None:
            # The clock stops while paused: deadlines move by the time spent paused.
            self.deadlines = deadlines.shift_from(self.deadlines, self.stage, workflow.now() - self.paused_at)
            self.publish()
        self.paused, self.paused_at, self.blocked = False, None, ""
        journal.note(templates.command_note(command="resume", actor=actor, at=workflow.now(), detail=note))
        self.changed()
        return self.result(f"resumed in {self.stage}")

    def abort(self, actor: str, reason: str, journal: Journal) -> CommandResult:
        self.outcome_text = f"aborted: {reason}"
        self.paused, self.blocked = False, ""
        self.move(Stage.ABORTED, actor, journal, f"Aborted: {reason}")
        return self.result("aborted")

    def extend_deadline(self, cmd: ExtendDeadline, journal: Journal) -> CommandResult:
        self.deadlines = deadlines.extend(self.deadlines, cmd.stage, cmd.new_date, self.stage, workflow.now())
        self.extended[cmd.stage] = cmd.reason
        if cmd.stage == self.stage:
            self.escalation = EscalationState()
        detail = f"{cmd.stage} now due {cmd.new_date:%Y-%m-%d %H:%M} UTC: {cmd.reason}"
        journal.note(templates.command_note(command="extend_deadline", actor=cmd.actor, at=workflow.now(), detail=detail), due_date=utc_date(self.due()))
        self.publish()
        self.changed()
        return self.result(detail)

    def apply_parent_command(self, cmd: ParentCommand, journal: Journal) -> None:
        if self.stage.terminal:
            return
        if cmd.kind == "pause" and not self.paused:
            self.pause(cmd.actor, cmd.reason, journal)
        elif cmd.kind == "resume" and (self.paused or self.blocked):
            self.resume(cmd.actor, cmd.reason, journal)
        elif cmd.kind == "abort":
            self.abort(cmd.actor, cmd.reason or "the migration was aborted", journal)

    def block(self, reason: str) -> None:
        self.blocked = reason
        self.changed()

    def fire(self, planned: PlannedEscalation) -> None:
        self.fired.append(FiredEscalation(stage=self.stage, kind=planned.kind, at=workflow.now(), occurrence=planned.occurrence))
        self.changed()

    # -- views ------------------------------------------------------------------------------

    def progress(self) -> FeatureProgress:
        return FeatureProgress(
            feature=self.feature.name, stage=self.stage,
            issue_url=self.issue.web_url if self.issue else "",
            eta=self.deadlines[Stage.CLEANUP], escalations=len(self.fired), outcome=self.outcome_text,
        )

    def outcome(self) -> FeatureOutcome:
        return FeatureOutcome(
            feature=self.feature.name, title=self.feature.title, stage=self.stage,
            outcome=self.outcome_text or str(self.stage),
            issue_url=self.issue.web_url if self.issue else "", escalations=len(self.fired),
        )

    def status(self, history: list, planned: PlannedEscalation | None) -> Status:  # type: ignore[type-arg]
        pending = None
        if self.blocked:
            pending = PendingAction(action=f"fix GitLab access ({self.blocked}), then resume", owner="ai-framework", command="resume")
        elif self.paused:
            pending = PendingAction(action="resume the feature", owner=self.feature.dri, command="resume")
        elif self.stage in PENDING:
            action, command = PENDING[self.stage]
            pending = PendingAction(action=action, owner=self.feature.dri, command=command)
        return Status(
            workflow_id=self.workflow_id, kind="feature", stage=self.stage, paused=self.paused,
            blocked=self.blocked, model=self.input.model.gitlab_identifier, provider=self.input.model.provider,
            replaced=self.input.replaced.gitlab_identifier if self.input.replaced else "",
            feature=self.feature.name, issue=self.issue, history=tuple(history),
            deadlines=tuple(
                Deadline(stage=k, due=v, extended=k in self.extended, reason=self.extended.get(k, ""))
                for k, v in self.deadlines.items()
            ),
            next_escalation=NextEscalation(stage=self.stage, kind=planned.kind, at=planned.at) if planned else None,
            pending_action=pending, escalations=tuple(self.fired), evaluations=tuple(self.evaluations),
            rollout=tuple(self.rollout), rollout_percentage=self.percentage,
            prompt_version=self.prompt_version, flag=self.flag,
        )
