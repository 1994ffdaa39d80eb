"""Typed references to the rollout activities, for workflows to call (see ``interface.py``)."""

from __future__ import annotations

from temporalio import activity

from activities.interface import Declared
from activities.rollout_payloads import ApplyFlagStepInput, FlagOffInput, MeasureStepInput, OldModelRateInput, RolloutActivity
from model_migration.domain.rollout import Measurement


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
