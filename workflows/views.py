"""What the workflows show: status, progress and outcomes, read from the machines' state."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.rollout_payloads import FlagTarget
    from model_migration.domain import templates
    from model_migration.domain.deadlines import Deadline
    from model_migration.domain.escalation import PlannedEscalation
    from model_migration.domain.feature import FeatureState
    from model_migration.domain.feature_state import GateRecord, StartRollout
    from model_migration.domain.migration import MigrationState
    from model_migration.domain.models import IssueDraft, IssueRef
    from model_migration.domain.rollout_templates import plan_issue_title, render_plan_issue
    from model_migration.domain.rollout_views import RolloutPlan, step_views
    from model_migration.domain.stages import FeatureStage, MigrationStage
    from workflows.messages import (
        EvaluationInput,
        FeatureMigrationInput,
        FeatureOutcome,
        FeatureProgress,
        FeatureStatus,
        MigrationInput,
        MigrationStatus,
        NextEscalation,
        PendingAction,
        RolloutResult,
    )
    from workflows.rollout_messages import RolloutInput, RolloutTunables, rollout_workflow_id
    from workflows.tracking import TrackingIssue

#: What a feature's team does next, and the command that says it is done.
PENDING = {
    FeatureStage.IMPLEMENT: ("create the prompt version and feature flag for the new model", "complete_stage implement"),
    FeatureStage.EVALUATE: ("evaluate candidate against baseline and report the result", "report_evaluation"),
    FeatureStage.ROLLOUT: ("roll the feature flag out to 100 %", "report_rollout"),
    FeatureStage.CLEANUP: ("remove the feature flag and update the docs", "complete_stage cleanup"),
}


def rollout_issue_draft(key: str, input: FeatureMigrationInput, s: FeatureState) -> IssueDraft:
    """The feature's confidential "AI Model Rollout" issue, found again by its marker. A feature whose
    flag the engine drives (revision 5) gets every section of GitLab's template, which its rollout
    keeps up to date; the others keep the issue they always had."""
    f, model = s.feature, input.model
    if s.driven:
        title, description = plan_issue_title(f, model), render_plan_issue(rollout_plan(input, s))
    else:
        title = templates.rollout_issue_title(f, model)
        description = templates.rollout_issue_body(
            feature=f, model=model, replaced=input.replaced, due={k: v.date() for k, v in s.deadlines.items()},
            tracking_issue_url=input.tracking_issue.web_url if input.tracking_issue else "",
            ladder=list(input.tunables.rollout_ladder),
        )
    return IssueDraft(
        title=title,
        description=description,
        marker=f"{key}:issue",
        labels=["type::feature", "feature::maintenance", "AI Model Migration", f.group],
        assignee_username=f.dri,
        due_date=s.due().date(),
        confidential=True,
    )


def blocked_action(reason: str) -> PendingAction:
    return PendingAction(action=f"fix GitLab access ({reason}), then resume", owner="ai-framework", command="resume")


def feature_progress(s: FeatureState, issue: IssueRef | None) -> FeatureProgress:
    return FeatureProgress(
        feature=s.feature.name, stage=s.stage, issue_url=issue.web_url if issue else "",
        eta=s.deadlines[FeatureStage.CLEANUP], escalations=len(s.fired), outcome=s.outcome, issue_iid=issue.iid if issue else 0,
    )


def feature_outcome(s: FeatureState, issue: IssueRef | None, rollouts: tuple[RolloutResult, ...] = ()) -> FeatureOutcome:
    return FeatureOutcome(
        feature=s.feature.name, title=s.feature.title, stage=s.stage, outcome=s.outcome or str(s.stage),
        issue_url=issue.web_url if issue else "", escalations=len(s.fired), rollouts=rollouts,
    )


def rollout_plan(input: FeatureMigrationInput, s: FeatureState) -> RolloutPlan:
    """What the rollout-plan issue says that does not change step by step."""
    spec, o = input.feature.rollout, input.tunables.rollout
    return RolloutPlan(
        feature=s.feature.model_copy(update={"flag": s.flag}), model=input.model, replaced=input.replaced, ladder=spec.steps(o),
        analysis=spec.templates(), analysis_window=o.analysis_window, hold=o.hold or spec.hold,
        due={k: v.date() for k, v in s.deadlines.items()},
        stages_done=frozenset(t.from_stage for t in s.history if isinstance(t.from_stage, FeatureStage)),
        tracking_issue_url=input.tracking_issue.web_url if input.tracking_issue else "",
    )


def rollout_input(
    key: str, input: FeatureMigrationInput, s: FeatureState, start: StartRollout, issue: IssueRef | None,
    previous: RolloutResult | None = None,
) -> RolloutInput:
    """What rollout ``start.attempt`` drives: the catalog's flag target and ladder, the run's overrides;
    the plan from which it keeps the rollout-plan issue and the flag issue up to date."""
    spec, o, f = input.feature.rollout, input.tunables.rollout, input.feature
    assert spec.target is not None
    ladder = spec.steps(o)
    earlier = step_views(ladder, previous.records, phase=previous.phase) if previous is not None else ()
    return RolloutInput(
        feature=f.name, dri=f.dri, manager=f.manager,
        target=FlagTarget(kind=spec.target, name=s.flag, environments=spec.environments),
        candidate=input.model.gitlab_identifier,
        baseline=input.replaced.gitlab_identifier if input.replaced else f.current_model,
        issue_iid=issue.iid if issue else 0, ladder=ladder, analysis=spec.templates(), test_run=o.test_run,
        from_step=min(start.from_step, len(ladder) - 1),
        tunables=RolloutTunables(
            analysis_interval=o.analysis_interval, analysis_window=o.analysis_window, hold=o.hold or spec.hold,
            drain_window=o.drain_window, drain_recheck=o.drain_recheck, activity_timeout=input.tunables.activity_timeout,
            baseline_window=o.baseline_window,
        ),
        plan=rollout_plan(input, s), plan_marker=f"{key}:issue", previous_steps=earlier,
    )


def rollout_timeline(result: RolloutResult) -> str:
    """The rollout's log as a table, for the feature's last note."""
    rows = [
        f"| {e.at:%Y-%m-%d %H:%M:%S} | {e.step + 1} | {e.event} | @{e.actor} | {e.detail.replace('|', '/').replace(chr(10), ' ')} |"
        for e in result.log
    ]
    return "| When (UTC) | Step | Event | By | Detail |\n|---|---|---|---|---|\n" + "\n".join(rows)


def rollout_id(key: str, s: FeatureState) -> str:
    """The running rollout's workflow id, or empty."""
    run = s.rollout_run
    return rollout_workflow_id(key, run.attempt) if run is not None and run.running else ""


def _rollout_action(s: FeatureState, key: str) -> PendingAction | None:
    run = s.rollout_run
    if not s.driven or run is None:
        return None
    if s.stage == FeatureStage.ROLLOUT and run.running:
        return PendingAction(action=f"the engine is rolling flag {s.flag} out (rollout {run.attempt}, {rollout_id(key, s)})",
                             owner="model-migration", command="rollout status")
    if s.stage == FeatureStage.IMPLEMENT and not run.running:
        return PendingAction(action=f"rollout {run.attempt} {run.outcome or run.phase}: fix the cause, then retry the rollout "
                                    "or complete implement with a new prompt version", owner=s.feature.dri, command="rollout retry")
    if s.stage == FeatureStage.CLEANUP:
        return PendingAction(action="the engine is opening the clean-up merge request", owner="model-migration")
    return None


def feature_status(
    workflow_id: str, input: FeatureMigrationInput, s: FeatureState, issue: IssueRef | None,
    planned: PlannedEscalation | None, key: str = "",
) -> FeatureStatus:
    pending = None
    engine = _rollout_action(s, key or workflow_id)
    if s.blocked:
        pending = blocked_action(s.blocked)
    elif s.paused:
        pending = PendingAction(action="resume the feature", owner=s.feature.dri, command="resume")
    elif engine is not None:
        pending = engine
    elif s.stage == FeatureStage.EVALUATE and s.gated:
        pending = _gate_action(s)
    elif s.stage in PENDING:
        action, command = PENDING[s.stage]
        pending = PendingAction(action=action, owner=s.feature.dri, command=command)
    return FeatureStatus(
        workflow_id=workflow_id, stage=s.stage, paused=s.paused, blocked=s.blocked,
        model=input.model.gitlab_identifier, provider=input.model.provider,
        replaced=input.replaced.gitlab_identifier if input.replaced else "",
        feature=s.feature.name, issue=issue, history=s.history,
        deadlines=tuple(
            Deadline(stage=k, due=v, extended=k in s.extended, reason=s.extended.get(k, ""))
            for k, v in s.deadlines.items()
        ),
        next_escalation=NextEscalation(stage=s.stage, kind=planned.kind, at=planned.at) if planned else None,
        pending_action=pending, escalations=s.fired, evaluations=s.evaluations, rollout=s.rollout,
        rollout_percentage=s.percentage, prompt_version=s.prompt_version, flag=s.flag,
        gates=s.gates, evaluation_loops=s.loops, max_evaluation_loops=s.feature.evaluation.max_loops,
        flag_target=str(input.feature.rollout.target or "") if s.driven else "", rollouts=s.rollouts,
        rollout_workflow_id=rollout_id(key or workflow_id, s), cleanup_mr=s.cleanup_mr,
    )


def _gate_action(s: FeatureState) -> PendingAction:
    gate = s.gate
    if gate is None or gate.running:
        what = f"evaluation #{gate.attempt} is running ({gate.harness})" if gate else "the evaluation is starting"
        return PendingAction(action=what, owner="model-migration")
    if gate.awaiting_decision:
        return PendingAction(action=f"decide inconclusive evaluation #{gate.attempt}", owner=s.feature.dri, command="approve | reject")
    return PendingAction(action=f"fix the harness ({gate.error}), then re-run it", owner=s.feature.dri, command="evaluate --rerun")


def evaluation_input(input: FeatureMigrationInput, s: FeatureState, gate: GateRecord) -> EvaluationInput:
    """What evaluation ``gate`` runs: the new model and prompt version against the current ones."""
    f = s.feature
    return EvaluationInput(
        feature=f.name, dataset=f.dataset, prompt_id=f.prompt_id,
        baseline_model=f.current_model, baseline_prompt_version=f.evaluation.baseline_prompt_version,
        candidate_model=input.model.gitlab_identifier, candidate_prompt_version=gate.prompt_version,
        spec=f.evaluation, harness=gate.harness, results_url=gate.results_url, tunables=input.tunables,
    )


def migration_status(
    workflow_id: str, input: MigrationInput, s: MigrationState, gitlab: TrackingIssue,
    children: dict[str, FeatureProgress], eta: datetime, problems: list[str],
) -> MigrationStatus:
    pending = None
    mr = gitlab.config_mr
    if s.blocked:
        pending = blocked_action(s.blocked)
    elif s.stage == MigrationStage.FEATURES:
        open_ = [p.feature for p in children.values() if not p.stage.terminal]
        pending = PendingAction(action=f"feature teams: {', '.join(open_)}", owner="feature teams")
    elif s.stage == MigrationStage.INIT and mr is not None:
        pending = PendingAction(
            action=f"merge the model configuration {mr.web_url} (or complete init)",
            owner="ai-framework", command="complete_stage init",
        )
    return MigrationStatus(
        workflow_id=workflow_id, stage=s.stage, paused=s.paused, blocked=s.blocked,
        model=input.model.gitlab_identifier, provider=input.model.provider,
        replaced=input.replaced.gitlab_identifier if input.replaced else "",
        issue=gitlab.issue, history=s.history, deadlines=(Deadline(stage=FeatureStage.CLEANUP, due=eta),),
        pending_action=pending, features=tuple(children[f.name] for f in input.features), problems=tuple(problems),
        config_mr_url=mr.web_url if mr else "", config_mr_state=mr.state if mr else "",
    )
