"""Payloads of the baseline workflow, in their own module so the workflow sandbox passes them
through, as the engine's ``workflows.messages`` is."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

FROZEN = ConfigDict(frozen=True)


class BaselineInput(BaseModel):
    """How many activities to run before the first update and after each update."""

    model_config = FROZEN
    initial: int = 0
    per_update: tuple[int, ...] = ()


class Step(BaseModel):
    model_config = FROZEN
    index: int


class StepResult(BaseModel):
    model_config = FROZEN
    index: int


class NoopInput(BaseModel):
    model_config = FROZEN
    seq: int


class NoopResult(BaseModel):
    model_config = FROZEN
    seq: int


class BaselineResult(BaseModel):
    model_config = FROZEN
    updates: int
    activities: int
