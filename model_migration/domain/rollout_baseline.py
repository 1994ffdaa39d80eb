"""The old model's observed baseline, measured before the first rollout step, pure.

The "AI Model Rollout" plan's continue criteria name the latency (p50/p90/p95) and acceptance
rate observed for the old model. ``baseline_queries`` gives the PromQL for them (instant queries
looking back over ``window``), over the metric names the AI gateway exports (``rollout.py``);
the answers, keyed by the same names, make an ``ObservedBaseline``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from string import Template

from pydantic import BaseModel, ConfigDict, field_validator

from model_migration.domain.rollout import ACCEPTED, DURATION, SHOWN, promql_duration

FROZEN = ConfigDict(frozen=True)
#: How far back the baseline looks: a week covers the weekday and weekend traffic alike.
BASELINE_WINDOW = timedelta(days=7)


def _quantile(q: float) -> str:
    return f'histogram_quantile({q}, sum by (le) (rate({DURATION}_bucket{{feature="$feature",model="$model"}}[$window])))'


def _rate(metric: str) -> str:
    return f'sum(rate({metric}{{feature="$feature",model="$model"}}[$window]))'


#: PromQL with ``$feature``, ``$model`` and ``$window``, keyed by ``ObservedBaseline``'s fields.
#: Latencies are in seconds. The acceptance rate counts no accepted suggestion yet as 0, while
#: no suggestion shown at all leaves no value (as the analysis ratios do).
BASELINE_QUERIES: dict[str, str] = {
    "latency_p50": _quantile(0.5),
    "latency_p90": _quantile(0.9),
    "latency_p95": _quantile(0.95),
    "acceptance_rate": f"(({_rate(ACCEPTED)} or vector(0)) / {_rate(SHOWN)})",
}


def baseline_queries(feature: str, model: str, window: timedelta = BASELINE_WINDOW) -> dict[str, str]:
    """Each baseline query filled in for ``feature`` served by ``model`` (its gitlab_identifier)."""
    values = {"feature": feature, "model": model, "window": promql_duration(window)}
    return {name: Template(query).substitute(values) for name, query in BASELINE_QUERIES.items()}


class ObservedBaseline(BaseModel):
    """What the old model did before the rollout: latencies in seconds, the acceptance rate as a
    ratio (0–1); None where Prometheus had no value."""

    model_config = FROZEN
    latency_p50: float | None = None
    latency_p90: float | None = None
    latency_p95: float | None = None
    acceptance_rate: float | None = None
    #: The model measured (its gitlab_identifier) and the window, when known.
    model: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @field_validator("latency_p50", "latency_p90", "latency_p95", "acceptance_rate")
    @classmethod
    def _no_nan(cls, value: float | None) -> float | None:
        return None if value is None or math.isnan(value) or math.isinf(value) else value
