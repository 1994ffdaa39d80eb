"""The evaluation gate: candidate against baseline on paired examples, pass | inconclusive | fail.

Per metric, a paired non-inferiority test. Δ is the mean of (candidate − baseline) per
example, sign-flipped for lower-is-better metrics (latency), so a positive Δ always favours
the candidate. A seeded paired bootstrap, with the same resample indices for every metric,
gives Δ's percentile interval at ``confidence`` and a one-sided p-value for H0: Δ ≤ −margin;
the p-values are Holm-adjusted across the gate's metrics. A metric:

- **fails** if its whole interval lies below −margin (upper bound < −margin);
- **passes** if its lower bound is above −margin *and* its Holm-adjusted p < α = 1 − confidence;
- is **inconclusive** otherwise.

The interval is two-sided, so a lower bound above −margin already means a one-sided p under
about (1 − confidence) / 2; Holm's condition is the one that binds once several metrics are
tested together (the smallest p must then be under α / k).

An example is a harness error when either side is flagged or lacks a configured metric's
score; errors are left out, and counted. Examples are judged in ``example_id`` order, so the
harness's order changes nothing.

Then GitLab's absolute bars, on the candidate: fewer than 20 % poor answers (a judge score of
1–2 or a similarity below 0.8), and a p95 latency within a factor of the baseline's.

The gate **fails** if a metric or a bar fails, **passes** if every metric passes and no bar
fails, and is **inconclusive** otherwise, or whenever there are fewer usable examples than
the configured minimum. Too many harness errors give no verdict at all: ``HarnessErrors``.

The models ignore unknown fields and give new fields defaults: they cross activity boundaries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, model_validator

from model_migration.domain import stats
from model_migration.domain.commands import Verdict
from model_migration.domain.errors import DomainError, ErrorType

MODEL = ConfigDict(frozen=True, extra="ignore")
LATENCY = "latency"  # a metric by this name reads each side's ``latency_ms``, lower is better
JUDGE_METRICS = ("correctness", "readability", "comprehensiveness")
SIMILARITY = "similarity"


class SideResult(BaseModel):
    """One side (baseline or candidate) of one example: metric scores, latency, error flag."""

    model_config = MODEL
    scores: dict[str, FiniteFloat] = Field(default_factory=dict)
    latency_ms: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    error: bool = False


class PairedExample(BaseModel):
    model_config = MODEL
    example_id: str
    baseline: SideResult
    candidate: SideResult


class MetricSpec(BaseModel):
    model_config = MODEL
    name: str
    margin: float = Field(gt=0.0, allow_inf_nan=False)  # in the metric's own unit (ms for latency)
    higher_is_better: bool | None = None  # None: latency is lower-is-better, the rest higher

    @property
    def higher(self) -> bool:
        return self.name != LATENCY if self.higher_is_better is None else self.higher_is_better


def default_metrics() -> tuple[MetricSpec, ...]:
    judges = tuple(MetricSpec(name=name, margin=0.1) for name in JUDGE_METRICS)
    return (*judges, MetricSpec(name=SIMILARITY, margin=0.02), MetricSpec(name=LATENCY, margin=250.0))


class GateConfig(BaseModel):
    model_config = MODEL
    metrics: tuple[MetricSpec, ...] = Field(default_factory=default_metrics, min_length=1)
    min_examples: int = Field(default=100, ge=1)
    resamples: int = Field(default=10_000, ge=100)
    seed: int = Field(default=0, ge=0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    latency_p95_factor: float = Field(default=1.5, gt=0.0, allow_inf_nan=False)
    max_poor_rate: float = Field(default=0.20, ge=0.0, le=1.0)
    poor_judge_max: float = 2.0  # judge scores 1–2 of 1–4 are poor
    poor_similarity_below: float = 0.8
    judge_metrics: tuple[str, ...] = JUDGE_METRICS
    similarity_metric: str = SIMILARITY
    max_error_rate: float = Field(default=0.05, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _unique_metrics(self) -> GateConfig:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"metric names must be unique: {names}")
        return self


class MetricVerdict(BaseModel):
    """One metric's line in the gate table. Δ > 0 favours the candidate whatever the direction."""

    model_config = MODEL
    name: str
    higher_is_better: bool = True
    margin: float
    decision: Verdict
    reason: str
    baseline_mean: float | None = None
    candidate_mean: float | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    adjusted_p: float | None = None


class BarCheck(BaseModel):
    """An absolute bar. ``holds`` is None when the harness gave nothing to measure it on."""

    model_config = MODEL
    name: str
    value: float | None
    limit: float
    holds: bool | None
    reason: str


class GateResult(BaseModel):
    model_config = MODEL
    verdict: Verdict
    reason: str
    metrics: tuple[MetricVerdict, ...] = ()
    bars: tuple[BarCheck, ...] = ()
    examples: int = 0
    usable: int = 0
    harness_errors: int = 0
    digest: str = ""  # sha256 of the examples' canonical JSON, sorted by id
    baseline_p95_ms: float | None = None
    candidate_p95_ms: float | None = None
    confidence: float = 0.95
    resamples: int = 0
    seed: int = 0
    dataset: str = ""
    baseline: str = ""
    candidate: str = ""

    @property
    def failing_metrics(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics if m.decision is Verdict.FAIL)


class HarnessErrors(DomainError):
    """Too many examples errored for the gate to judge: retry the harness, then escalate."""

    type = ErrorType.HARNESS_ERRORS

    def __init__(self, errors: int, total: int, max_rate: float) -> None:
        super().__init__(f"{errors} of {total} examples errored ({errors / total:.1%}), above the {max_rate:.1%} the gate accepts")
        self.errors = errors
        self.total = total


def examples_digest(examples: Sequence[PairedExample]) -> str:
    canonical = json.dumps([e.model_dump(mode="json") for e in examples], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _usable(example: PairedExample, names: set[str]) -> bool:
    # A score the harness did not return is an error it did not flag.
    sides = (example.baseline, example.candidate)
    return not any(s.error for s in sides) and all(names <= s.scores.keys() for s in sides)


def _values(examples: Sequence[PairedExample], metric: str, candidate: bool) -> stats.FloatArray:
    sides = [e.candidate if candidate else e.baseline for e in examples]
    if metric == LATENCY:
        return np.fromiter((s.latency_ms for s in sides), dtype=np.float64, count=len(sides))
    return np.fromiter((s.scores[metric] for s in sides), dtype=np.float64, count=len(sides))


def _f(x: float) -> str:
    return f"{x:+.4g}"


def _decide(spec: MetricSpec, low: float, high: float, adjusted: float, alpha: float) -> tuple[Verdict, str]:
    interval = f"Δ CI [{_f(low)}, {_f(high)}]"
    if high < -spec.margin:
        return Verdict.FAIL, f"{interval} lies wholly below −{spec.margin:g}"
    if low > -spec.margin and adjusted < alpha:
        return Verdict.PASS, f"{interval} stays above −{spec.margin:g}; Holm p {adjusted:.3g} < {alpha:.3g}"
    if low > -spec.margin:
        return Verdict.INCONCLUSIVE, f"{interval} stays above −{spec.margin:g}, but Holm p {adjusted:.3g} ≥ {alpha:.3g}"
    return Verdict.INCONCLUSIVE, f"{interval} straddles −{spec.margin:g}"


def _metric_table(examples: Sequence[PairedExample], config: GateConfig, enough: bool) -> tuple[MetricVerdict, ...]:
    specs = config.metrics
    if not examples:
        unknown = Verdict.INCONCLUSIVE
        return tuple(
            MetricVerdict(name=s.name, higher_is_better=s.higher, margin=s.margin, decision=unknown, reason="no usable examples")
            for s in specs
        )
    base = np.stack([_values(examples, s.name, candidate=False) for s in specs])
    cand = np.stack([_values(examples, s.name, candidate=True) for s in specs])
    sign = np.array([1.0 if s.higher else -1.0 for s in specs])
    means = stats.bootstrap_means(sign[:, None] * (cand - base), config.resamples, config.seed)
    low, high = stats.percentile_interval(means, config.confidence)
    p = stats.p_non_inferior(means, np.array([s.margin for s in specs]))
    adjusted = stats.holm(p)
    alpha = 1.0 - config.confidence
    rows = []
    for i, spec in enumerate(specs):
        decision, reason = _decide(spec, float(low[i]), float(high[i]), float(adjusted[i]), alpha)
        if not enough:
            decision, reason = Verdict.INCONCLUSIVE, f"too few examples to judge; {reason}"
        b, c = float(base[i].mean()), float(cand[i].mean())
        rows.append(
            MetricVerdict(
                name=spec.name, higher_is_better=spec.higher, margin=spec.margin, decision=decision, reason=reason,
                baseline_mean=b, candidate_mean=c, delta=(c - b) * float(sign[i]),
                ci_low=float(low[i]), ci_high=float(high[i]), p_value=float(p[i]), adjusted_p=float(adjusted[i]),
            )
        )
    return tuple(rows)


def _poor_bar(examples: Sequence[PairedExample], config: GateConfig) -> BarCheck:
    limit = config.max_poor_rate
    measured = [
        e.candidate.scores for e in examples if any(k in e.candidate.scores for k in (*config.judge_metrics, config.similarity_metric))
    ]
    if not measured:
        reason = "no judge or similarity scores to count poor answers"
        return BarCheck(name="poor_answers", value=None, limit=limit, holds=None, reason=reason)
    poor = sum(
        any(s.get(j, config.poor_judge_max + 1) <= config.poor_judge_max for j in config.judge_metrics)
        or s.get(config.similarity_metric, config.poor_similarity_below) < config.poor_similarity_below
        for s in measured
    )
    rate = poor / len(measured)
    holds = rate < limit
    reason = f"{poor} of {len(measured)} answers poor ({rate:.1%}), {'under' if holds else 'not under'} {limit:.0%}"
    return BarCheck(name="poor_answers", value=rate, limit=limit, holds=holds, reason=reason)


def _latency_bar(base: float | None, cand: float | None, factor: float) -> BarCheck:
    if base is None or cand is None:
        return BarCheck(name="latency_p95", value=None, limit=factor, holds=None, reason="no latencies to compare")
    ratio = cand / base if base > 0 else (1.0 if cand == 0 else float("inf"))
    holds = ratio <= factor
    relation = "within" if holds else "beyond"
    reason = f"candidate p95 {cand:.0f} ms is {ratio:.2f}× the baseline's {base:.0f} ms, {relation} {factor:g}×"
    return BarCheck(name="latency_p95", value=ratio if np.isfinite(ratio) else None, limit=factor, holds=holds, reason=reason)


def _overall(metrics: Sequence[MetricVerdict], bars: Sequence[BarCheck], usable: int, minimum: int) -> tuple[Verdict, str]:
    if usable < minimum:
        return Verdict.INCONCLUSIVE, f"only {usable} usable examples; the gate needs at least {minimum}"
    failed = [m.name for m in metrics if m.decision is Verdict.FAIL] + [b.name for b in bars if b.holds is False]
    if failed:
        return Verdict.FAIL, f"failed: {', '.join(failed)}"
    open_ = [m.name for m in metrics if m.decision is not Verdict.PASS]
    if open_:
        return Verdict.INCONCLUSIVE, f"not shown non-inferior: {', '.join(open_)}"
    return Verdict.PASS, f"every metric non-inferior on {usable} examples, and the absolute bars hold"


def evaluate_gate(
    examples: Sequence[PairedExample], config: GateConfig, *, dataset: str = "", baseline: str = "", candidate: str = ""
) -> GateResult:
    """Judge ``candidate`` against ``baseline`` on paired ``examples``; see the module docstring."""
    ordered = sorted(examples, key=lambda e: e.example_id)
    ids = [e.example_id for e in ordered]
    if len(set(ids)) != len(ids):
        raise DomainError("example ids must be unique", type=ErrorType.INVALID_INPUT)
    names = {s.name for s in config.metrics} - {LATENCY}
    usable = [e for e in ordered if _usable(e, names)]
    errors = len(ordered) - len(usable)
    if ordered and errors / len(ordered) > config.max_error_rate:
        raise HarnessErrors(errors, len(ordered), config.max_error_rate)
    metrics = _metric_table(usable, config, enough=len(usable) >= config.min_examples)
    base_p95 = stats.p95(_values(usable, LATENCY, candidate=False)) if usable else None
    cand_p95 = stats.p95(_values(usable, LATENCY, candidate=True)) if usable else None
    bars = (_poor_bar(usable, config), _latency_bar(base_p95, cand_p95, config.latency_p95_factor))
    verdict, reason = _overall(metrics, bars, len(usable), config.min_examples)
    return GateResult(
        verdict=verdict, reason=reason, metrics=metrics, bars=bars,
        examples=len(ordered), usable=len(usable), harness_errors=errors, digest=examples_digest(ordered),
        baseline_p95_ms=base_p95, candidate_p95_ms=cand_p95,
        confidence=config.confidence, resamples=config.resamples, seed=config.seed,
        dataset=dataset, baseline=baseline, candidate=candidate,
    )
