"""Payloads of the rollout workflow: its input and tunables, its result, and its status."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from activities.rollout_payloads import FlagTarget
from model_migration.domain import rollout_machine as machine
from model_migration.domain.rollout import DEFAULT_ANALYSIS, DEFAULT_LADDER, HOLD, LadderStep, MetricTemplate, RolloutError, check_ladder
from model_migration.domain.rollout_baseline import BASELINE_WINDOW
from model_migration.domain.rollout_views import RolloutPlan, StepView

FROZEN = ConfigDict(frozen=True)


class RolloutTunables(BaseModel):
    model_config = FROZEN
    #: How often a baking step is measured.
    analysis_interval: timedelta = timedelta(minutes=5)
    #: How far back each measurement looks (PromQL range).
    analysis_window: timedelta = timedelta(minutes=5)
    hold: timedelta = HOLD
    #: The window over which the old model must have served nothing.
    drain_window: timedelta = timedelta(hours=1)
    #: How long to wait before checking the old model's traffic again.
    drain_recheck: timedelta = timedelta(hours=1)
    activity_timeout: timedelta = timedelta(seconds=30)
    #: How far back the old model's baseline (latency percentiles, acceptance) is measured before the first step.
    baseline_window: timedelta = BASELINE_WINDOW


class RolloutInput(BaseModel):
    model_config = FROZEN
    feature: str
    dri: str
    manager: str = ""
    target: FlagTarget
    candidate: str  # the new model's gitlab_identifier
    baseline: str  # the old model's
    issue_iid: int = Field(ge=0, default=0)  # the feature issue the notes go on (0: none)
    ladder: tuple[LadderStep, ...] = DEFAULT_LADDER
    analysis: tuple[MetricTemplate, ...] = DEFAULT_ANALYSIS
    #: A test or demo run: bakes under 15 minutes are allowed, and status says so.
    test_run: bool = False
    from_step: int = Field(default=0, ge=0)
    #: The rollout-plan issue (the feature issue, ``issue_iid``) and its "Feature Flag Roll Out"
    #: issue are kept up to date from this, when given; ``plan_marker`` is the feature issue's.
    plan: RolloutPlan | None = None
    plan_marker: str = ""
    #: An earlier rollout's steps, as the issues show them (a retry from the failed step).
    previous_steps: tuple[StepView, ...] = ()

    @model_validator(mode="after")
    def _a_ladder_it_may_climb(self) -> RolloutInput:
        """Checked as the input is decoded: a bad ladder fails the run once, in one line, instead of its first task."""
        try:
            check_ladder(self.ladder, test_run=self.test_run)
        except RolloutError as err:
            raise ValueError(err.message) from None
        if self.from_step >= len(self.ladder):
            raise ValueError(f"from_step {self.from_step} is not on the ladder of {len(self.ladder)} steps")
        return self
    tunables: RolloutTunables = Field(default_factory=RolloutTunables)


class RolloutResult(BaseModel):
    model_config = FROZEN
    phase: machine.Phase
    outcome: str
    failed_step: int | None = None
    records: tuple[machine.StepRecord, ...] = ()
    log: tuple[machine.LogEntry, ...] = ()


class RolloutStatus(BaseModel):
    model_config = FROZEN
    phase: machine.Phase
    step: int
    step_label: str
    test_run: bool
    paused_by: str = ""
    flag: str = ""
    records: tuple[machine.StepRecord, ...] = ()
    log: tuple[machine.LogEntry, ...] = ()


def rollout_workflow_id(feature_key: str, attempt: int) -> str:
    """One id per rollout attempt of a feature run: a retry after a rollback is a new attempt."""
    return f"{feature_key}:rollout:{attempt}"
