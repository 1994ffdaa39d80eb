"""How a feature's flag is rolled out: by the team (ChatOps) or by the engine, and on what.

A catalog entry's ``rollout:`` names the flag target the engine drives (``target``), the
environments the flag lives in, and optionally its own ladder, bake, hold and analysis. With no
``target`` the team drives the flag by hand and reports each step (``report_rollout``), as
before. The run's tunables may override the ladder and bake (``RolloutOverrides``); a bake
under 15 minutes needs the run marked as a test or demo run.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, model_validator

from model_migration.domain.rollout import (
    DEFAULT_ANALYSIS,
    DEFAULT_LADDER,
    HOLD,
    PRODUCTION,
    LadderStep,
    MetricTemplate,
    RolloutError,
    check_ladder,
)

FROZEN = ConfigDict(frozen=True)


def _checked(ladder: tuple[LadderStep, ...], *, test_run: bool) -> None:
    """``check_ladder`` as a validator: its one line becomes the validation error's."""
    try:
        check_ladder(ladder, test_run=test_run)
    except RolloutError as err:
        raise ValueError(err.message) from None


class FlagKind(StrEnum):
    GITLAB_INSTANCE = "gitlab_instance"  # GitLab's Features API, as GitLab.com rolls out its own features
    GITLAB_PROJECT = "gitlab_project"  # a project's feature flags (Unleash strategies)
    UNLEASH = "unleash"  # an Unleash server's admin API


class RolloutSpec(BaseModel):
    """A feature's rollout, from its catalog entry."""

    model_config = FROZEN
    #: The flag target the engine drives; none: the team drives the flag and reports (ChatOps).
    target: FlagKind | None = None
    #: The environments the flag lives in (each one's URL and token come from the worker's settings).
    environments: tuple[str, ...] = ("staging", PRODUCTION)
    #: The feature's own ladder; default: GitLab's (``DEFAULT_LADDER``).
    ladder: tuple[LadderStep, ...] | None = None
    #: Every step's bake, instead of each step's own.
    bake: timedelta | None = None
    hold: timedelta = HOLD
    #: The feature's own analysis templates; default: error ratio, p95 latency, acceptance rate.
    analysis: tuple[MetricTemplate, ...] | None = None

    @property
    def driven(self) -> bool:
        return self.target is not None

    @model_validator(mode="after")
    def _real_bakes(self) -> RolloutSpec:
        """A catalog entry is production configuration: no test run, so GitLab's 15-minute bake holds."""
        if self.target is not None:
            _checked(self.steps(), test_run=False)
            if self.hold < HOLD:
                raise ValueError(f"the hold at 100 % must be at least {HOLD}: GitLab's process holds a day before cleanup")
            unknown = sorted({s.environment for s in self.steps()} - set(self.environments))
            if unknown:
                raise ValueError(f"the ladder uses environments not in environments: {', '.join(unknown)}")
        return self

    def steps(self, override: RolloutOverrides | None = None) -> tuple[LadderStep, ...]:
        ladder = (override.ladder if override and override.ladder else None) or self.ladder or DEFAULT_LADDER
        bake = (override.bake if override else None) or self.bake
        return tuple(s.model_copy(update={"bake": bake}) for s in ladder) if bake else ladder

    def templates(self) -> tuple[MetricTemplate, ...]:
        return self.analysis or DEFAULT_ANALYSIS


class RolloutOverrides(BaseModel):
    """A run's overrides of its features' catalog rollouts (``Tunables.rollout``)."""

    model_config = FROZEN
    ladder: tuple[LadderStep, ...] | None = None
    bake: timedelta | None = None
    hold: timedelta | None = None
    #: A test or demo run: bakes under 15 minutes are allowed, and ``status`` says so.
    test_run: bool = False
    #: How often a baking step is measured, and over what window.
    analysis_interval: timedelta = timedelta(minutes=5)
    analysis_window: timedelta = timedelta(minutes=5)
    #: The window over which the old model must have served nothing, and how often to look again.
    drain_window: timedelta = timedelta(hours=1)
    drain_recheck: timedelta = timedelta(hours=1)
    #: How far back the old model's baseline is measured before the first step.
    baseline_window: timedelta = timedelta(days=7)

    @model_validator(mode="after")
    def _bakes(self) -> RolloutOverrides:
        if self.bake is not None and self.bake <= timedelta(0):
            raise ValueError("the bake must be longer than zero")
        for span in (self.analysis_interval, self.analysis_window, self.drain_window, self.drain_recheck, self.baseline_window):
            if span <= timedelta(0):
                raise ValueError("analysis and drain windows must be longer than zero")
        if self.ladder:
            _checked(self.ladder, test_run=self.test_run)
        if self.bake is not None:
            _checked(tuple(s.model_copy(update={"bake": self.bake}) for s in DEFAULT_LADDER), test_run=self.test_run)
        if self.hold is not None and self.hold < HOLD and not self.test_run:
            raise ValueError(f"a hold under {HOLD} at 100 % needs the run marked as a test or demo run")
        return self


