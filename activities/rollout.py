"""The rollout activities: flag writes through a flag target, measurements through Prometheus.

Each flag write sets a value (never increments), so a retried activity is harmless. The worker
injects one factory per flag kind (GitLab's Features API, a project's feature flags, an Unleash
server) and one Prometheus client; the engine queries Prometheus, never the gateway.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog
from temporalio import activity

from activities.rollout_payloads import (
    ApplyFlagStepInput,
    BaselineInput,
    FlagKind,
    FlagOffInput,
    FlagTarget,
    MeasureStepInput,
    OldModelRateInput,
    RolloutActivity,
)
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.rollout import REQUESTS, LadderStep, Measurement, MetricTemplate, promql_duration
from model_migration.domain.rollout_baseline import ObservedBaseline, baseline_queries

log = structlog.get_logger("rollout")


class Flag(Protocol):
    """One flag in its environments (``model_migration/clients/flag_targets.py``)."""

    def apply(self, step: LadderStep) -> None: ...

    def off(self, environment: str | None = None) -> None: ...

    def remove(self) -> None: ...

    def state(self) -> dict[str, str]: ...


class Metrics(Protocol):
    """Prometheus's HTTP API (``model_migration/clients/prometheus.py``)."""

    def instant(self, query: str) -> float | None: ...

    def measure(
        self, template: MetricTemplate, feature: str, candidate: str, baseline: str, window: timedelta,
        baseline_window: timedelta | None = None,
    ) -> Measurement: ...


class RolloutActivities:
    def __init__(self, flags: Mapping[FlagKind, Callable[[FlagTarget], Flag]], metrics: Callable[[], Metrics]) -> None:
        self._flags = flags
        self._metrics = metrics

    def _flag(self, target: FlagTarget) -> Flag:
        make = self._flags.get(target.kind)
        if make is None:
            raise DomainError(f"no {target.kind} flag target is configured on this worker", type=ErrorType.INVALID_INPUT)
        return make(target)

    @activity.defn(name=RolloutActivity.APPLY_FLAG_STEP)
    def apply_flag_step(self, request: ApplyFlagStepInput) -> str:
        flag = self._flag(request.target)
        flag.apply(request.step)
        state = flag.state()
        log.info("flag_step_applied", flag=request.target.name, step=request.step.label, state=state)
        return ", ".join(f"{env}: {value}" for env, value in sorted(state.items()))

    @activity.defn(name=RolloutActivity.FLAG_OFF)
    def flag_off(self, request: FlagOffInput) -> str:
        flag = self._flag(request.target)
        flag.off()
        state = flag.state()
        log.warning("flag_off", flag=request.target.name, state=state)
        return ", ".join(f"{env}: {value}" for env, value in sorted(state.items()))

    @activity.defn(name=RolloutActivity.REMOVE_FLAG)
    def remove_flag(self, request: FlagOffInput) -> None:
        self._flag(request.target).remove()
        log.info("flag_removed", flag=request.target.name)

    @activity.defn(name=RolloutActivity.MEASURE_STEP)
    def measure_step(self, request: MeasureStepInput) -> list[Measurement]:
        metrics = self._metrics()
        return [
            metrics.measure(t, request.feature, request.candidate, request.baseline, request.window, request.baseline_window)
            for t in request.analysis
        ]

    @activity.defn(name=RolloutActivity.OLD_MODEL_RATE)
    def old_model_rate(self, request: OldModelRateInput) -> float | None:
        window = promql_duration(request.window)
        metrics = self._metrics()
        rate = metrics.instant(f'sum(rate({REQUESTS}{{feature="{request.feature}",model="{request.model}"}}[{window}]))')
        if rate is not None and not math.isnan(rate):
            return rate
        # No series for the old model: zero if the feature is served (by the new one), unknown if nothing is seen at all.
        served = metrics.instant(f'sum(rate({REQUESTS}{{feature="{request.feature}"}}[{window}]))')
        return 0.0 if served is not None and served > 0 else None

    @activity.defn(name=RolloutActivity.OBSERVE_BASELINE)
    def observe_baseline(self, request: BaselineInput) -> ObservedBaseline:
        """The old model before the first step: what the Continue criteria compare against."""
        metrics = self._metrics()
        values = {name: metrics.instant(query) for name, query in baseline_queries(request.feature, request.model, request.window).items()}
        until = datetime.now(UTC)
        return ObservedBaseline.model_validate({**values, "model": request.model, "since": until - request.window, "until": until})

    def all(self) -> list[Callable[..., object]]:
        return [self.apply_flag_step, self.flag_off, self.remove_flag, self.measure_step, self.old_model_rate, self.observe_baseline]
