"""The rollout ladder and the analysis at each step, pure.

**The ladder** follows GitLab's feature-flag rollout process: non-production environments at
50 % then 100 %, production for GitLab team members only, then 1 → 10 → 25 → 50 → 75 → 100 % of
actors. Every step bakes at least ``MIN_BAKE`` (15 minutes) before the next; a shorter bake is
refused unless the run is marked as a test or demo run. At 100 % in production the feature holds
``HOLD`` (a day) before cleanup.

**The analysis** at each step, in the shape of Argo Rollouts' analysis templates: each metric is
a PromQL instant query comparing the candidate model with the baseline model for the feature over
the bake window, with a success condition, a failure condition, a minimum request count and a
failure limit (consecutive failed measurements before rollback). A measurement is

- **inconclusive** when there is no value (no data, NaN) or too few requests;
- **failed** when the failure condition holds;
- **successful** when the success condition holds;
- inconclusive otherwise (between the two: the grey zone a human decides).

A step is **failed** once any metric has failed ``failure_limit`` times in a row, **inconclusive**
when any metric's latest measurement is, and **successful** when every metric's latest one is.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from datetime import timedelta
from enum import StrEnum
from string import Template

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model_migration.domain.errors import DomainError, ErrorType

FROZEN = ConfigDict(frozen=True)
MIN_BAKE = timedelta(minutes=15)
HOLD = timedelta(days=1)
PRODUCTION = "production"
#: Metric names the AI gateway exports per feature and model (``feature``, ``model`` labels).
REQUESTS = "ai_gateway_requests_total"
ERRORS = "ai_gateway_request_errors_total"
DURATION = "ai_gateway_request_duration_seconds"
ACCEPTED = "ai_gateway_suggestions_accepted_total"
SHOWN = "ai_gateway_suggestions_shown_total"


class RolloutError(DomainError):
    type = ErrorType.INVALID_INPUT


class Audience(StrEnum):
    ACTORS = "actors"  # a percentage of actors (users)
    TEAM_MEMBERS = "team_members"  # GitLab team members only (feature_group=gitlab_team_members)


class LadderStep(BaseModel):
    model_config = FROZEN
    environment: str = PRODUCTION
    audience: Audience = Audience.ACTORS
    percentage: int = Field(default=100, ge=0, le=100)
    bake: timedelta = MIN_BAKE
    #: Whether the analysis judges this step. Default: production steps only, since the AI
    #: gateway's metrics in Prometheus are production's; a non-production step bakes, unjudged.
    analyse: bool | None = None

    @property
    def analysed(self) -> bool:
        return self.environment == PRODUCTION if self.analyse is None else self.analyse

    @property
    def label(self) -> str:
        who = "GitLab team members" if self.audience == Audience.TEAM_MEMBERS else f"{self.percentage} % of actors"
        return f"{self.environment}: {who}"


def _step(environment: str, percentage: int, audience: Audience = Audience.ACTORS) -> LadderStep:
    return LadderStep(environment=environment, audience=audience, percentage=percentage)


DEFAULT_LADDER: tuple[LadderStep, ...] = (
    _step("staging", 50), _step("staging", 100),
    _step(PRODUCTION, 0, Audience.TEAM_MEMBERS),
    *(_step(PRODUCTION, p) for p in (1, 10, 25, 50, 75, 100)),
)


def check_ladder(ladder: Sequence[LadderStep], *, test_run: bool = False) -> None:
    """Refuse a ladder that does not end at 100 % of production actors, that goes down within an
    environment, that leaves production for another environment, or that bakes under 15 minutes
    (unless ``test_run``: a test or demo run, which ``status`` then shows)."""
    if not ladder:
        raise RolloutError("a rollout ladder needs at least one step")
    last = ladder[-1]
    if (last.environment, last.audience, last.percentage) != (PRODUCTION, Audience.ACTORS, 100):
        raise RolloutError(f"the ladder must end at {PRODUCTION}: 100 % of actors, not at {last.label}")
    short = [s.label for s in ladder if s.bake < MIN_BAKE]
    if short and not test_run:
        raise RolloutError(
            f"bake time under {MIN_BAKE.seconds // 60} minutes at {', '.join(short)}: "
            "GitLab's process needs 15 minutes between steps; mark the run as a test or demo run to go faster"
        )
    seen_production = False
    previous: LadderStep | None = None
    for step in ladder:
        if seen_production and step.environment != PRODUCTION:
            raise RolloutError(f"{step.label} comes after production: non-production environments go first")
        seen_production = seen_production or step.environment == PRODUCTION
        same_audience = previous is not None and (previous.environment, previous.audience) == (step.environment, step.audience)
        if same_audience and previous is not None and step.percentage <= previous.percentage:
            raise RolloutError(f"{step.label} does not go up from {previous.percentage} %")
        previous = step


def ladder_time(ladder: Sequence[LadderStep], hold: timedelta = HOLD) -> timedelta:
    """The machine-bound calendar time of a rollout: every bake, then the hold at 100 %."""
    return sum((s.bake for s in ladder), timedelta()) + hold


# -- analysis --------------------------------------------------------------------------------


class Outcome(StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


class Condition(BaseModel):
    """``value <op> threshold``, e.g. ``<= 0.02``."""

    model_config = FROZEN
    op: str
    threshold: float

    @field_validator("op")
    @classmethod
    def _known(cls, op: str) -> str:
        if op not in _OPERATORS:
            raise ValueError(f"operator {op!r} is not one of {', '.join(_OPERATORS)}")
        return op

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


class MetricTemplate(BaseModel):
    """One analysis metric. ``query`` is PromQL with ``$feature``, ``$candidate``, ``$baseline``,
    ``$window`` and ``$baseline_window`` placeholders; ``requests`` counts the candidate's requests
    in the window. The baseline looks back over the whole rollout: once the candidate serves
    everyone, the baseline model has no traffic left in the last window to compare with."""

    model_config = FROZEN
    name: str
    query: str
    requests: str
    success: Condition
    failure: Condition
    min_requests: int = Field(default=50, ge=0)
    failure_limit: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _placeholders(self) -> MetricTemplate:
        for text in (self.query, self.requests):
            try:
                Template(text).substitute(feature="f", candidate="c", baseline="b", window="1s", baseline_window="1s")
            except (KeyError, ValueError) as err:
                raise ValueError(f"{self.name}: the query has an unknown placeholder ({err})") from None
        return self

    def render(
        self, feature: str, candidate: str, baseline: str, window: timedelta, baseline_window: timedelta | None = None,
    ) -> tuple[str, str]:
        """The metric's query and its request-count query, filled in; the baseline's range is
        ``baseline_window`` (at least ``window``)."""
        values = {
            "feature": feature, "candidate": candidate, "baseline": baseline, "window": promql_duration(window),
            "baseline_window": promql_duration(max(window, baseline_window or window)),
        }
        return Template(self.query).substitute(values), Template(self.requests).substitute(values)


def promql_duration(span: timedelta) -> str:
    """A PromQL range: whole seconds, at least one."""
    return f"{max(1, int(span.total_seconds()))}s"


def _range(model: str) -> str:
    return "$baseline_window" if model == "baseline" else "$window"


def _rate(metric: str, model: str) -> str:
    return f'sum(rate({metric}{{feature="$feature",model="${model}"}}[{_range(model)}]))'


def _ratio(numerator: str, denominator: str, model: str) -> str:
    """A ratio of two rates. A counter appears with its first increment, so a numerator with no
    series yet (no error so far) counts as 0; an empty denominator (no traffic) leaves no value."""
    return f"(({_rate(numerator, model)} or vector(0)) / {_rate(denominator, model)})"


def _p95(model: str) -> str:
    return f'histogram_quantile(0.95, sum by (le) (rate({DURATION}_bucket{{feature="$feature",model="${model}"}}[{_range(model)}])))'


_CANDIDATE_REQUESTS = f'sum(increase({REQUESTS}{{feature="$feature",model="$candidate"}}[$window]))'

DEFAULT_ANALYSIS: tuple[MetricTemplate, ...] = (
    MetricTemplate(
        name="error_ratio",  # the candidate's error ratio above the baseline's
        query=f"{_ratio(ERRORS, REQUESTS, 'candidate')} - {_ratio(ERRORS, REQUESTS, 'baseline')}",
        requests=_CANDIDATE_REQUESTS, success=Condition(op="<=", threshold=0.01), failure=Condition(op=">", threshold=0.02),
    ),
    MetricTemplate(
        name="latency_p95",  # the candidate's p95 over the baseline's
        query=f"{_p95('candidate')} / {_p95('baseline')}",
        requests=_CANDIDATE_REQUESTS, success=Condition(op="<=", threshold=1.2), failure=Condition(op=">", threshold=1.5),
    ),
    MetricTemplate(
        name="acceptance_rate",  # the candidate's acceptance rate minus the baseline's
        query=f"{_ratio(ACCEPTED, SHOWN, 'candidate')} - {_ratio(ACCEPTED, SHOWN, 'baseline')}",
        requests=_CANDIDATE_REQUESTS, success=Condition(op=">=", threshold=-0.02), failure=Condition(op="<", threshold=-0.05),
    ),
)


class Measurement(BaseModel):
    """One instant query's answer: ``value`` None when Prometheus had no sample (or NaN)."""

    model_config = FROZEN
    metric: str
    value: float | None
    requests: float = 0.0

    @field_validator("value")
    @classmethod
    def _nan_is_none(cls, value: float | None) -> float | None:
        return None if value is None or math.isnan(value) or math.isinf(value) else value


def judge(template: MetricTemplate, measured: Measurement) -> Outcome:
    if measured.value is None or measured.requests < template.min_requests:
        return Outcome.INCONCLUSIVE
    if template.failure.holds(measured.value):
        return Outcome.FAILED
    if template.success.holds(measured.value):
        return Outcome.SUCCESSFUL
    return Outcome.INCONCLUSIVE


def step_outcome(templates: Sequence[MetricTemplate], history: Sequence[Measurement]) -> Outcome:
    """The step's outcome from every measurement taken during it, oldest first."""
    latest: list[Outcome] = []
    for template in templates:
        mine = [judge(template, m) for m in history if m.metric == template.name]
        if not mine:
            return Outcome.INCONCLUSIVE
        streak = 0
        for outcome in reversed(mine):
            if outcome != Outcome.FAILED:
                break
            streak += 1
        if streak >= template.failure_limit:
            return Outcome.FAILED
        latest.append(mine[-1])
    if any(o != Outcome.SUCCESSFUL for o in latest):
        return Outcome.INCONCLUSIVE
    return Outcome.SUCCESSFUL


def measurement_table(templates: Sequence[MetricTemplate], measured: Sequence[Measurement]) -> str:
    """A step note's table: metric, value, threshold and result."""
    by_name = {t.name: t for t in templates}
    lines = ["| Metric | Value | Requests | Success | Failure | Result |", "|---|---|---|---|---|---|"]
    for m in measured:
        t = by_name[m.metric]
        value = f"{m.value:.4g}" if m.value is not None else "no data"
        lines.append(f"| {m.metric} | {value} | {m.requests:.0f} | {t.success} | {t.failure} | {judge(t, m)} |")
    return "\n".join(lines)
