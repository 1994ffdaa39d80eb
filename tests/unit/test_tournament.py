"""The candidate tournament: verdict, then quality, then latency, then cost, then name."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from model_migration.domain.commands import Verdict
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.gate import LATENCY, GateConfig, GateResult, MetricVerdict, PairedExample, SideResult, evaluate_gate
from model_migration.domain.models import ModelDefinition
from model_migration.domain.tournament import Contender, cost_rank, quality, rank


def _gate(
    verdict: Verdict = Verdict.PASS, *, deltas: dict[str, tuple[float, float]] | None = None, p95: float = 1000.0, **kw: str
) -> GateResult:
    """A gate result with the given (Δ, margin) per metric."""
    deltas = {"correctness": (0.0, 0.1)} if deltas is None else deltas
    metrics = tuple(MetricVerdict(name=n, margin=m, delta=d, decision=verdict, reason="") for n, (d, m) in deltas.items())
    fields = {"dataset": "duo_chat.main.1", "baseline": "anthropic/claude-3-5-sonnet/20240620"} | kw
    return GateResult(verdict=verdict, reason="", metrics=metrics, candidate_p95_ms=p95, **fields)


def _c(name: str, gate: GateResult, cost: str = "$$") -> Contender:
    return Contender(candidate=name, cost_indicator=cost, gate=gate)


def _order(contenders: list[Contender]) -> list[str]:
    return [row.candidate for row in rank(contenders).table]


def test_verdict_comes_first() -> None:
    """A pass beats a better-scoring inconclusive, which beats a fail."""
    result = rank([
        _c("fails", _gate(Verdict.FAIL, deltas={"correctness": (0.5, 0.1)}, p95=10)),
        _c("open", _gate(Verdict.INCONCLUSIVE, deltas={"correctness": (0.3, 0.1)}, p95=10)),
        _c("passes", _gate(Verdict.PASS, deltas={"correctness": (-0.05, 0.1)}, p95=5000)),
    ])
    assert [r.candidate for r in result.table] == ["passes", "open", "fails"]
    assert [r.ahead_by for r in result.table] == ["verdict", "verdict", ""]
    assert (result.winner, result.runner_up) == ("passes", "open")
    assert [r.rank for r in result.table] == [1, 2, 3]


def test_quality_counts_each_metric_in_its_own_margins() -> None:
    """A similarity gain of one margin outweighs a judge gain of half a margin."""
    judge = _gate(deltas={"correctness": (0.05, 0.1), "similarity": (0.0, 0.02)})
    similar = _gate(deltas={"correctness": (0.0, 0.1), "similarity": (0.02, 0.02)})
    assert quality(judge) == pytest.approx(0.25) and quality(similar) == pytest.approx(0.5)
    result = rank([_c("judge", judge, cost="$"), _c("similar", similar, cost="$$$")])
    assert [r.candidate for r in result.table] == ["similar", "judge"]
    assert result.table[0].ahead_by == "quality"


def test_latency_metric_is_not_quality() -> None:
    """Latency's Δ stays out of quality; it ranks through the p95 instead."""
    gate = _gate(deltas={"correctness": (0.1, 0.1), LATENCY: (-900.0, 250.0)})
    assert quality(gate) == pytest.approx(1.0)


def test_latency_breaks_a_quality_tie() -> None:
    """Equal verdict and quality: the lower candidate p95 wins."""
    result = rank([_c("slow", _gate(p95=2000), cost="$"), _c("fast", _gate(p95=1200), cost="$$$")])
    assert [r.candidate for r in result.table] == ["fast", "slow"]
    assert result.table[0].ahead_by == "latency"


def test_cost_breaks_a_latency_tie() -> None:
    """Equal on everything measured: the cheaper model wins; an unknown cost ranks last."""
    order = _order([_c("dear", _gate(), "$$$"), _c("odd", _gate(), "n/a"), _c("cheap", _gate(), "$"), _c("mid", _gate(), "$$")])
    assert order == ["cheap", "mid", "dear", "odd"]
    assert [cost_rank(c) for c in ("$", "$$", "$$$")] == [1, 2, 3] and cost_rank("") == float("inf")


def test_a_full_tie_falls_back_to_the_name_in_any_input_order() -> None:
    """Identical results rank by name, whatever order they arrive in, and the table says so."""
    contenders = [_c(n, _gate()) for n in ("b", "a", "c")]
    for permutation in itertools.permutations(contenders):
        result = rank(list(permutation))
        assert [r.candidate for r in result.table] == ["a", "b", "c"]
        assert [r.ahead_by for r in result.table] == ["name", "name", ""]


def test_float_noise_is_a_tie() -> None:
    """Qualities equal to nine decimals tie, so noise does not pick the winner."""
    result = rank([_c("b", _gate(deltas={"correctness": (0.1 + 1e-13, 0.1)})), _c("a", _gate(deltas={"correctness": (0.1, 0.1)}))])
    assert [r.candidate for r in result.table] == ["a", "b"] and result.table[0].ahead_by == "name"


def test_single_candidate() -> None:
    """K=1: it wins, there is no runner-up, and the table has one row."""
    result = rank([_c("only", _gate(Verdict.INCONCLUSIVE))])
    assert (result.winner, result.runner_up) == ("only", None)
    assert len(result.table) == 1 and result.table[0].ahead_by == "" and result.table[0].verdict is Verdict.INCONCLUSIVE


def test_missing_figures_rank_last() -> None:
    """A gate with no quality or latency figures never outranks one that has them."""
    bare = GateResult(verdict=Verdict.PASS, reason="", dataset="duo_chat.main.1", baseline="anthropic/claude-3-5-sonnet/20240620")
    assert _order([_c("bare", bare), _c("measured", _gate(deltas={"correctness": (-0.05, 0.1)}))]) == ["measured", "bare"]


@pytest.mark.parametrize(
    ("contenders", "message"),
    [
        ([], "at least one"),
        ([_c("a", _gate()), _c("a", _gate())], "distinct"),
        ([_c("a", _gate()), _c("b", _gate(dataset="duo_chat.other.1"))], "different datasets"),
        ([_c("a", _gate()), _c("b", _gate(baseline="openai/gpt-4o/1"))], "different baselines"),
    ],
)
def test_incomparable_contenders_are_refused(contenders: list[Contender], message: str) -> None:
    """No candidates, repeated ones, or different datasets or baselines are invalid input."""
    with pytest.raises(DomainError, match=message) as info:
        rank(contenders)
    assert info.value.type is ErrorType.INVALID_INPUT


def test_contender_from_the_catalog_model() -> None:
    """A contender takes the model's key and cost indicator from its catalog entry."""
    model = ModelDefinition(
        name="Codestral", gitlab_identifier="codestral", provider="mistral", model="codestral", version="2501",
        max_context_tokens=256_000, cost_indicator="$", params={"model": "codestral-2501"},
    )
    contender = Contender.of(model, _gate())
    assert (contender.candidate, contender.cost_indicator) == ("mistral/codestral/2501", "$")


def test_ranks_real_gate_results() -> None:
    """Gates computed from paired examples rank the better candidate first."""
    rng = np.random.default_rng(0)
    base = [(float(rng.integers(3, 5)), float(rng.lognormal(7, 0.2))) for _ in range(150)]

    def run(shift: float, slowdown: float) -> GateResult:
        examples = [
            PairedExample(
                example_id=f"ex-{i:03d}",
                baseline=SideResult(scores={"correctness": s}, latency_ms=lat),
                candidate=SideResult(scores={"correctness": s + shift + float(rng.normal(0, 0.2))}, latency_ms=lat * slowdown),
            )
            for i, (s, lat) in enumerate(base)
        ]
        config = GateConfig(metrics=({"name": "correctness", "margin": 0.1}, {"name": LATENCY, "margin": 300.0}), min_examples=100)
        return evaluate_gate(examples, config, dataset="duo_chat.main.1", baseline="old")

    result = rank([_c("worse", run(-0.6, 1.0)), _c("better", run(0.05, 1.1))])
    assert [(r.candidate, r.verdict) for r in result.table] == [("better", Verdict.PASS), ("worse", Verdict.FAIL)]
    assert result.baseline == "old" and result.dataset == "duo_chat.main.1"
