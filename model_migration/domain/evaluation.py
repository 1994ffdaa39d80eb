"""How a feature is evaluated: which harness runs it, and what the gate asks of the candidate.

A feature's catalog entry may carry an ``evaluation`` mapping; every key has a default::

    evaluation:
      harness: ci_pipeline          # experiment_service | ci_pipeline | promptfoo
      margins: {correctness: 0.2, similarity: 0.03, latency: 300}
      min_examples: 150
      max_loops: 3

``margins`` names the gate's metrics, each with its non-inferiority margin in the metric's own
unit (judge points, similarity, ms for latency); the harness is asked for exactly those
evaluators. The default margins are the ones the sandbox's simulated models are calibrated for.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from model_migration.domain.gate import JUDGE_METRICS, LATENCY, SIMILARITY, GateConfig, MetricSpec

FROZEN = ConfigDict(frozen=True)
EXACT_MATCH = "exact_match"
#: Every metric a harness can report, in table order.
KNOWN_METRICS = (*JUDGE_METRICS, SIMILARITY, EXACT_MATCH, LATENCY)
DEFAULT_MARGINS: dict[str, float] = {**dict.fromkeys(JUDGE_METRICS, 0.2), SIMILARITY: 0.03, LATENCY: 250.0}


class HarnessKind(StrEnum):
    """Where the per-example results come from."""

    #: GitLab's Centralized Evaluation Framework shape: register, poll, fetch.
    EXPERIMENT_SERVICE = "experiment_service"
    #: A pipeline in the evaluation project; its job leaves the results as an artifact.
    CI_PIPELINE = "ci_pipeline"
    #: The promptfoo CLI, run by the worker.
    PROMPTFOO = "promptfoo"
    #: Results a team ran with its own harness and published at a URL (``report_evaluation``).
    IMPORTED = "imported"


class EvaluationSpec(BaseModel):
    model_config = FROZEN
    harness: HarnessKind = HarnessKind.EXPERIMENT_SERVICE
    margins: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MARGINS), min_length=1)
    min_examples: int = Field(default=100, ge=1)
    #: Failed evaluations before the loop escalates to the manager and AI Framework.
    max_loops: int = Field(default=3, ge=1, le=20)
    #: The prompt version the current model serves: the baseline's.
    baseline_prompt_version: str = "1.0.0"
    latency_p95_factor: float = Field(default=1.5, gt=1.0, allow_inf_nan=False)
    resamples: int = Field(default=10_000, ge=1_000, le=200_000)

    @field_validator("margins")
    @classmethod
    def _known_positive(cls, margins: dict[str, float]) -> dict[str, float]:
        for name, margin in margins.items():
            if name not in KNOWN_METRICS:
                raise ValueError(f"unknown metric {name!r}; known: {', '.join(KNOWN_METRICS)}")
            if not margin > 0 or margin != margin or margin == float("inf"):
                raise ValueError(f"the margin of {name} must be a positive number, not {margin}")
        return margins

    @property
    def evaluators(self) -> tuple[str, ...]:
        """What the harness is asked to score (latency always comes)."""
        return tuple(m for m in KNOWN_METRICS if m in self.margins and m != LATENCY)

    def gate_config(self, seed: int = 0) -> GateConfig:
        metrics = tuple(MetricSpec(name=m, margin=self.margins[m]) for m in KNOWN_METRICS if m in self.margins)
        return GateConfig(
            metrics=metrics, min_examples=self.min_examples, resamples=self.resamples, seed=seed,
            latency_p95_factor=self.latency_p95_factor,
        )
