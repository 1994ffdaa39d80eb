"""The engine's metrics from workflow code, through the SDK's workflow-safe meter.

``workflow.metric_meter()`` records nothing while a workflow replays, so a metric counts what
happened once, not every time a worker rebuilds a workflow from its history; and recording
adds nothing to the history. Names and labels: ``model_migration.metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from model_migration import metrics as names
    from model_migration.domain.commands import FiredEscalation, ReportEvaluation
    from model_migration.domain.feature_state import FeatureState, GateDecided
    from model_migration.domain.migration import MigrationState
    from model_migration.domain.rollout_machine import RolloutState, StepRecord


def _count(name: str, description: str, labels: dict[str, str]) -> None:
    workflow.metric_meter().create_counter(name, description).add(1, labels)


def stage_entered(kind: str, stage: str) -> None:
    """``kind``: ``migration`` | ``feature`` | ``deprecation`` | ``rollout``."""
    _count(names.STAGE_ENTERED, "Stages (a rollout's phases) workflows entered", {"workflow": kind, "stage": str(stage)})


def escalation(kind: str, escalation_kind: str) -> None:
    _count(names.ESCALATIONS, "Escalations fired, by kind", {"workflow": kind, "kind": str(escalation_kind)})


def gate_verdict(kind: str, verdict: str) -> None:
    _count(names.GATE_VERDICTS, "Evaluation gate verdicts", {"workflow": kind, "verdict": str(verdict)})


def rollout_step(outcome: str) -> None:
    _count(names.ROLLOUT_STEPS, "Rollout steps whose analysis ended, by outcome", {"outcome": str(outcome)})


def gitlab_block(kind: str, event: str) -> None:
    """``event``: ``blocked`` (GitLab refused the engine for good) or ``resumed``."""
    _count(names.GITLAB_BLOCKS, "Workflows blocked on GitLab, and resumed", {"workflow": kind, "event": event})


def stage_change(kind: str, before: str, after: str) -> None:
    if after != before:
        stage_entered(kind, after)


def block_change(kind: str, before: str, after: str) -> None:
    """A workflow's ``blocked`` reason before and after a change: a block starts, or ends."""
    if after and not before:
        gitlab_block(kind, "blocked")
    elif before and not after:
        gitlab_block(kind, "resumed")


def escalations_fired(kind: str, before: Sequence[FiredEscalation], after: Sequence[FiredEscalation]) -> None:
    """The escalations a change appended to a state's ``fired``."""
    for fired in after[len(before):]:
        escalation(kind, fired.kind.value)


def rollout_change(before: RolloutState, after: RolloutState) -> None:
    """A rollout's phase entered and its steps' analyses ended, from one change of its state."""
    stage_change("rollout", before.phase.value, after.phase.value)
    previous: Sequence[StepRecord | None] = before.records
    for index, record in enumerate(after.records):
        old = previous[index] if index < len(previous) else None
        if record.outcome is not None and (old is None or old.outcome != record.outcome):
            rollout_step(record.outcome.value)


def feature_change(before: FeatureState, after: FeatureState, command: object) -> None:
    """Everything a feature's metrics count, from one command applied to its state."""
    stage_change("feature", before.stage.value, after.stage.value)
    block_change("feature", before.blocked, after.blocked)
    escalations_fired("feature", before.fired, after.fired)
    if isinstance(command, GateDecided) and command.result is not None:
        gate_verdict("feature", command.result.verdict.value)
    elif isinstance(command, ReportEvaluation) and after.evaluations != before.evaluations:
        gate_verdict("feature", command.verdict.value)


def migration_change(before: MigrationState, after: MigrationState) -> None:
    stage_change("migration", before.stage.value, after.stage.value)
    block_change("migration", before.blocked, after.blocked)
