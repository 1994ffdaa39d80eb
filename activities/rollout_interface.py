"""Typed references to the rollout activities, for workflows to call (see ``interface.py``)."""

from __future__ import annotations

from temporalio import activity

from activities.interface import Declared
from activities.payloads import Activity
from activities.rollout_payloads import (
    ApplyFlagStepInput,
    BaselineInput,
    FlagIssueInput,
    FlagOffInput,
    MeasureStepInput,
    OldModelRateInput,
    RolloutActivity,
    RolloutIssuesInput,
)
from model_migration.domain.models import IssueRef
from model_migration.domain.rollout import Measurement
from model_migration.domain.rollout_baseline import ObservedBaseline


@activity.defn(name=RolloutActivity.APPLY_FLAG_STEP)
def apply_flag_step(request: ApplyFlagStepInput) -> str:
    raise Declared(RolloutActivity.APPLY_FLAG_STEP)


@activity.defn(name=RolloutActivity.FLAG_OFF)
def flag_off(request: FlagOffInput) -> str:
    raise Declared(RolloutActivity.FLAG_OFF)


@activity.defn(name=RolloutActivity.REMOVE_FLAG)
def remove_flag(request: FlagOffInput) -> None:
    raise Declared(RolloutActivity.REMOVE_FLAG)


@activity.defn(name=RolloutActivity.MEASURE_STEP)
def measure_step(request: MeasureStepInput) -> list[Measurement]:
    raise Declared(RolloutActivity.MEASURE_STEP)


@activity.defn(name=RolloutActivity.OLD_MODEL_RATE)
def old_model_rate(request: OldModelRateInput) -> float | None:
    raise Declared(RolloutActivity.OLD_MODEL_RATE)


@activity.defn(name=RolloutActivity.OBSERVE_BASELINE)
def observe_baseline(request: BaselineInput) -> ObservedBaseline:
    raise Declared(RolloutActivity.OBSERVE_BASELINE)


@activity.defn(name=Activity.ENSURE_FLAG_ISSUE)
def ensure_flag_issue(request: FlagIssueInput) -> IssueRef:
    raise Declared(Activity.ENSURE_FLAG_ISSUE)


@activity.defn(name=Activity.WRITE_ROLLOUT_ISSUES)
def write_rollout_issues(request: RolloutIssuesInput) -> int:
    raise Declared(Activity.WRITE_ROLLOUT_ISSUES)
