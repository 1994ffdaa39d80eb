"""Payloads of the rollout activities: the flag target, a ladder step, and the analysis."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from model_migration.domain.rollout import LadderStep, MetricTemplate
from model_migration.domain.rollout_baseline import ObservedBaseline
from model_migration.domain.rollout_spec import FlagKind
from model_migration.domain.rollout_views import RolloutPlan, StepView

FROZEN = ConfigDict(frozen=True)
__all__ = [
    "ApplyFlagStepInput", "BaselineInput", "FlagIssueInput", "FlagKind", "FlagOffInput", "FlagTarget", "MeasureStepInput",
    "OldModelRateInput", "RolloutActivity", "RolloutIssuesInput",
]


class RolloutActivity(StrEnum):
    APPLY_FLAG_STEP = "apply_flag_step"
    FLAG_OFF = "flag_off"
    REMOVE_FLAG = "remove_flag"
    MEASURE_STEP = "measure_step"
    OLD_MODEL_RATE = "old_model_rate"
    OBSERVE_BASELINE = "observe_baseline"


class FlagTarget(BaseModel):
    """Which flag, where: the worker maps each environment to its URL and token from settings."""

    model_config = FROZEN
    kind: FlagKind
    name: str = Field(min_length=1)
    environments: tuple[str, ...] = ("production",)


class ApplyFlagStepInput(BaseModel):
    """Set the flag to exactly this step's state (a value, never an increment: a retry is harmless)."""

    model_config = FROZEN
    target: FlagTarget
    step: LadderStep


class FlagOffInput(BaseModel):
    """Off in every environment of the target (a rollback or an abort)."""

    model_config = FROZEN
    target: FlagTarget


class MeasureStepInput(BaseModel):
    """Every analysis metric for the candidate against the baseline over ``window``, one instant query each."""

    model_config = FROZEN
    feature: str
    candidate: str
    baseline: str
    window: timedelta
    analysis: tuple[MetricTemplate, ...]
    #: The baseline's range: since the rollout began (at least ``window``).
    baseline_window: timedelta | None = None


class OldModelRateInput(BaseModel):
    """The old model's request rate for the feature over ``window`` (requests per second)."""

    model_config = FROZEN
    feature: str
    model: str
    window: timedelta


class BaselineInput(BaseModel):
    """The old model's latency percentiles and acceptance rate for the feature, before the first step."""

    model_config = FROZEN
    feature: str
    model: str
    window: timedelta


class FlagIssueInput(BaseModel):
    """The "Feature Flag Roll Out" issue of the rollout, linked to its rollout-plan issue."""

    model_config = FROZEN
    plan: RolloutPlan
    plan_issue_iid: int
    marker: str


class RolloutIssuesInput(BaseModel):
    """Both issues rendered from the rollout's state and written where they changed: one edit
    per issue per step. The plan issue keeps its marker (``plan_marker``), so it is found again."""

    model_config = FROZEN
    plan: RolloutPlan
    steps: tuple[StepView, ...] = ()
    baseline: ObservedBaseline | None = None
    plan_issue_iid: int
    plan_marker: str
    flag_issue_iid: int = 0
    flag_issue_url: str = ""
    flag_marker: str = ""
    #: The flag is off everywhere (a rollback or an abort); the flag was deleted.
    turned_off: bool = False
    removed: bool = False
    #: Close the flag issue with this edit (the flag was deleted).
    close_flag_issue: bool = False
