"""The candidate tournament: K gate results on the same baseline and dataset, ranked.

Order, each criterion deciding only when the ones before it tie:

1. the gate's verdict: pass, then inconclusive, then fail;
2. quality: the mean over quality metrics (every metric but latency) of Δ / margin, so that a
   judge score on 1–4 and a similarity on 0–1 weigh alike: each counts in its own margins;
3. latency: the candidate's p95, lower first;
4. cost: the catalog's ``cost_indicator``, ``$`` before ``$$`` before ``$$$``;
5. then the candidate's name, so that the order is total and the same on every run.

The table says, for each row, which criterion put it above the next one. The winner is the top
row whatever its verdict: whether a failing winner is acceptable is the caller's decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from model_migration.domain.commands import Verdict
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.gate import LATENCY, GateResult
from model_migration.domain.models import ModelDefinition

MODEL = ConfigDict(frozen=True, extra="ignore")
VERDICT_RANK = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAIL: 2}
#: Quality and latency are compared at this many decimals: float noise must not pick a model.
DECIMALS = 9


class Contender(BaseModel):
    model_config = MODEL
    candidate: str  # the model's catalog key, e.g. "anthropic/claude-sonnet-4-5/20250929"
    cost_indicator: str = "$$"
    gate: GateResult

    @classmethod
    def of(cls, model: ModelDefinition, gate: GateResult) -> Contender:
        return cls(candidate=model.key, cost_indicator=model.cost_indicator, gate=gate)


class Standing(BaseModel):
    model_config = MODEL
    rank: int
    candidate: str
    verdict: Verdict
    quality: float | None  # mean Δ / margin over quality metrics; None when none were measured
    latency_p95_ms: float | None
    cost_indicator: str
    ahead_by: str = ""  # the criterion that puts this row above the next: verdict, quality, latency, cost, name


class TournamentResult(BaseModel):
    model_config = MODEL
    winner: str
    runner_up: str | None = None
    table: tuple[Standing, ...]
    dataset: str = ""
    baseline: str = ""


def quality(gate: GateResult) -> float | None:
    scores = [m.delta / m.margin for m in gate.metrics if m.name != LATENCY and m.delta is not None]
    return sum(scores) / len(scores) if scores else None


def cost_rank(indicator: str) -> float:
    """``$`` is 1, ``$$`` is 2 and so on; anything else ranks after every known cost."""
    return float(len(indicator)) if indicator and set(indicator) == {"$"} else math.inf


def _criteria(row: Standing) -> tuple[tuple[str, float], ...]:
    # Missing quality or latency ranks last, never first.
    return (
        ("verdict", VERDICT_RANK[row.verdict]),
        ("quality", round(-row.quality, DECIMALS) if row.quality is not None else math.inf),
        ("latency", round(row.latency_p95_ms, DECIMALS) if row.latency_p95_ms is not None else math.inf),
        ("cost", cost_rank(row.cost_indicator)),
    )


def _ahead_by(row: Standing, following: Standing) -> str:
    for (name, mine), (_, theirs) in zip(_criteria(row), _criteria(following), strict=True):
        if mine != theirs:
            return name
    return "name"


def _key(row: Standing) -> tuple[float | str, ...]:
    return (*(value for _, value in _criteria(row)), row.candidate)


def rank(contenders: Sequence[Contender]) -> TournamentResult:
    """Rank the contenders; see the module docstring for the order."""
    if not contenders:
        raise DomainError("a tournament needs at least one candidate", type=ErrorType.INVALID_INPUT)
    names = [c.candidate for c in contenders]
    if len(set(names)) != len(names):
        raise DomainError(f"candidates must be distinct: {sorted(names)}", type=ErrorType.INVALID_INPUT)
    for label in ("dataset", "baseline"):
        seen = sorted({getattr(c.gate, label) for c in contenders})
        if len(seen) > 1:
            raise DomainError(f"candidates were evaluated on different {label}s: {seen}", type=ErrorType.INVALID_INPUT)
    rows = sorted(
        (
            Standing(
                rank=0,
                candidate=c.candidate,
                verdict=c.gate.verdict,
                quality=quality(c.gate),
                latency_p95_ms=c.gate.candidate_p95_ms,
                cost_indicator=c.cost_indicator,
            )
            for c in contenders
        ),
        key=_key,
    )
    table = tuple(
        row.model_copy(update={"rank": i + 1, "ahead_by": _ahead_by(row, rows[i + 1]) if i + 1 < len(rows) else ""})
        for i, row in enumerate(rows)
    )
    return TournamentResult(
        winner=table[0].candidate,
        runner_up=table[1].candidate if len(table) > 1 else None,
        table=table,
        dataset=contenders[0].gate.dataset,
        baseline=contenders[0].gate.baseline,
    )
