"""The evaluation gate: paired bootstrap non-inferiority, Holm, GitLab's absolute bars."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats as scipy_stats

from model_migration.domain import stats
from model_migration.domain.commands import Verdict
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.gate import (
    JUDGE_METRICS,
    LATENCY,
    GateConfig,
    GateResult,
    HarnessErrors,
    MetricSpec,
    MetricVerdict,
    PairedExample,
    SideResult,
    evaluate_gate,
)

QUALITY = (*JUDGE_METRICS, "similarity")


def _side(scores: dict[str, float], latency: float, error: bool = False) -> SideResult:
    return SideResult(scores=scores, latency_ms=latency, error=error)


def _examples(n: int, *, seed: int = 1, shift: float = 0.0, latency_shift: float = 0.0, noise: float = 0.3) -> list[PairedExample]:
    """Realistic paired results: judges on 1–4, similarity on 0–1, latency in ms."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        base = {m: float(rng.integers(3, 5)) for m in JUDGE_METRICS} | {"similarity": float(rng.uniform(0.85, 1.0))}
        cand = {m: v + shift + float(rng.normal(0, noise)) for m, v in base.items()}
        latency = float(rng.lognormal(7.0, 0.2))
        out.append(PairedExample(example_id=f"ex-{i:04d}", baseline=_side(base, latency), candidate=_side(cand, latency + latency_shift)))
    return out


def _config(**kw: object) -> GateConfig:
    return GateConfig.model_validate({"min_examples": 50, "resamples": 2000, "seed": 7} | kw)


def _metric(result: GateResult, name: str) -> MetricVerdict:
    return next(m for m in result.metrics if m.name == name)


def _standardised(n: int, mean: float, sd: float, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=n)
    return mean + sd * (x - x.mean()) / x.std()


def _from_diffs(diffs: dict[str, np.ndarray]) -> list[PairedExample]:
    n = len(next(iter(diffs.values())))
    return [
        PairedExample(
            example_id=f"ex-{i:04d}",
            baseline=_side({m: 2.5 for m in diffs}, 1000.0),
            candidate=_side({m: 2.5 + float(d[i]) for m, d in diffs.items()}, 1000.0),
        )
        for i in range(n)
    ]


def test_identical_samples_pass() -> None:
    """A candidate that answers exactly as the baseline passes every metric and the gate."""
    examples = [PairedExample(example_id=e.example_id, baseline=e.baseline, candidate=e.baseline) for e in _examples(200)]
    result = evaluate_gate(examples, _config())
    assert result.verdict is Verdict.PASS, result.reason
    assert [m.decision for m in result.metrics] == [Verdict.PASS] * 5
    assert all(m.delta == 0.0 and m.ci_low == 0.0 == m.ci_high for m in result.metrics)
    assert (result.examples, result.usable, result.harness_errors) == (200, 200, 0)


def test_clear_regression_fails() -> None:
    """Judge scores half a point lower fail those metrics, and the gate names them."""
    result = evaluate_gate(_examples(300, shift=-0.5), _config())
    assert result.verdict is Verdict.FAIL
    for name in JUDGE_METRICS:
        m = _metric(result, name)
        assert m.decision is Verdict.FAIL and m.ci_high is not None and m.ci_high < -m.margin, m.reason
    assert set(JUDGE_METRICS) <= set(result.failing_metrics)
    assert "correctness" in result.reason


def test_small_noisy_regression_is_inconclusive() -> None:
    """An interval that straddles −margin is neither pass nor fail."""
    diffs = _standardised(200, mean=-0.1, sd=0.6, seed=8)
    result = evaluate_gate(_from_diffs({"m0": diffs}), _config(metrics=[{"name": "m0", "margin": 0.1}]))
    m = _metric(result, "m0")
    assert m.ci_low is not None and m.ci_high is not None and m.ci_low < -0.1 < m.ci_high
    assert m.decision is Verdict.INCONCLUSIVE and "straddles" in m.reason
    assert result.verdict is Verdict.INCONCLUSIVE


def test_tiny_sample_is_inconclusive_and_says_so() -> None:
    """Fewer usable examples than the minimum is inconclusive, even on identical answers."""
    examples = [PairedExample(example_id=e.example_id, baseline=e.baseline, candidate=e.baseline) for e in _examples(10)]
    result = evaluate_gate(examples, _config(min_examples=100))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reason == "only 10 usable examples; the gate needs at least 100"
    assert all(m.decision is Verdict.INCONCLUSIVE and "too few" in m.reason for m in result.metrics)


def test_no_examples_is_inconclusive() -> None:
    """An empty run is inconclusive, with no statistics to show."""
    result = evaluate_gate([], _config())
    assert result.verdict is Verdict.INCONCLUSIVE and result.usable == 0
    assert all(m.delta is None and m.reason == "no usable examples" for m in result.metrics)


def test_holm_turns_a_borderline_pass_into_inconclusive() -> None:
    """A metric that passes alone is inconclusive among five equally borderline ones."""
    diffs = _standardised(400, mean=0.0085, sd=1.0, seed=3)  # one-sided p near 0.015 against margin 0.1
    alone = evaluate_gate(_from_diffs({"m0": diffs}), _config(metrics=[{"name": "m0", "margin": 0.1}], resamples=10_000))
    names = [f"m{i}" for i in range(5)]
    five = evaluate_gate(
        _from_diffs(dict.fromkeys(names, diffs)),
        _config(metrics=[{"name": n, "margin": 0.1} for n in names], resamples=10_000),
    )
    single = _metric(alone, "m0")
    assert single.decision is Verdict.PASS and alone.verdict is Verdict.PASS
    for m in five.metrics:
        assert m.p_value == single.p_value and m.p_value is not None and m.p_value < 0.05
        assert m.ci_low == single.ci_low and m.ci_low is not None and m.ci_low > -0.1
        assert m.adjusted_p == pytest.approx(5 * m.p_value) and m.adjusted_p >= 0.05
        assert m.decision is Verdict.INCONCLUSIVE and "Holm p" in m.reason
    assert five.verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(("shift", "decision"), [(500.0, Verdict.FAIL), (-500.0, Verdict.PASS)])
def test_latency_is_lower_is_better(shift: float, decision: Verdict) -> None:
    """Slower candidates lose on latency, faster ones win: Δ is baseline − candidate."""
    result = evaluate_gate(_examples(200, latency_shift=shift), _config(latency_p95_factor=10.0))
    latency = _metric(result, LATENCY)
    assert latency.higher_is_better is False
    assert latency.delta == pytest.approx(-shift)
    assert latency.decision is decision


def test_same_seed_same_result_other_seed_close() -> None:
    """One seed reproduces the gate exactly; another moves the interval only slightly."""
    examples = _examples(300, shift=-0.02)
    first, again = evaluate_gate(examples, _config(seed=11)), evaluate_gate(examples, _config(seed=11))
    other = evaluate_gate(examples, _config(seed=12))
    assert first == again
    a, b = _metric(first, "correctness"), _metric(other, "correctness")
    assert a.ci_low is not None and a.ci_high is not None and b.ci_low is not None
    assert (a.ci_low, a.ci_high) != (b.ci_low, b.ci_high)
    assert abs(a.ci_low - b.ci_low) < 0.1 * (a.ci_high - a.ci_low)


def test_every_metric_sees_the_same_resamples() -> None:
    """Doubling a metric's differences doubles its interval exactly: only shared indices do that."""
    diffs = _standardised(300, mean=0.05, sd=0.5, seed=5)
    result = evaluate_gate(
        _from_diffs({"a": diffs, "b": 2 * diffs}),
        _config(metrics=[{"name": "a", "margin": 0.1}, {"name": "b", "margin": 0.2}]),
    )
    a, b = _metric(result, "a"), _metric(result, "b")
    assert b.ci_low == pytest.approx(2 * a.ci_low) and b.ci_high == pytest.approx(2 * a.ci_high)
    assert a.p_value == b.p_value


def test_chunking_does_not_change_the_resamples() -> None:
    """Drawing resamples in chunks of any size gives the same bootstrap as one draw."""
    diffs = np.random.default_rng(2).normal(size=(3, 501))
    whole = stats.bootstrap_means(diffs, 1000, seed=4, chunk=1000)
    assert np.allclose(whole, stats.bootstrap_means(diffs, 1000, seed=4, chunk=7), rtol=0, atol=1e-12)
    assert np.allclose(whole, stats.bootstrap_means(diffs, 1000, seed=4, chunk=333), rtol=0, atol=1e-12)


def test_holm_adjustment_matches_the_textbook() -> None:
    """Holm multiplies the i-th smallest p by k − i + 1, keeps them monotone, caps at 1."""
    adjusted = stats.holm(np.array([0.04, 0.01, 0.03, 0.5]))
    assert adjusted.tolist() == pytest.approx([0.09, 0.04, 0.09, 0.5])
    assert stats.holm(np.array([0.6, 0.4])).tolist() == pytest.approx([0.8, 0.8])


def test_poor_answer_bar_fails_a_gate_the_metrics_pass() -> None:
    """30 % answers with a judge score of 2 fail GitLab's 20 % bar, even when no worse than the baseline."""
    examples = []
    for i, e in enumerate(_examples(200)):
        side = e.baseline.model_copy(update={"scores": e.baseline.scores | ({"readability": 2.0} if i % 10 < 3 else {})})
        examples.append(PairedExample(example_id=e.example_id, baseline=side, candidate=side))
    result = evaluate_gate(examples, _config())
    bar = next(b for b in result.bars if b.name == "poor_answers")
    assert bar.value == pytest.approx(0.3) and bar.holds is False
    assert all(m.decision is Verdict.PASS for m in result.metrics)
    assert result.verdict is Verdict.FAIL and "poor_answers" in result.reason


def test_low_similarity_counts_as_poor() -> None:
    """A similarity under 0.8 makes an answer poor; 10 % of them stays under the bar."""
    examples = []
    for i, e in enumerate(_examples(200)):
        side = e.baseline.model_copy(update={"scores": e.baseline.scores | ({"similarity": 0.79} if i % 10 == 0 else {})})
        examples.append(PairedExample(example_id=e.example_id, baseline=side, candidate=side))
    bar = next(b for b in evaluate_gate(examples, _config()).bars if b.name == "poor_answers")
    assert bar.value == pytest.approx(0.1) and bar.holds is True


def test_p95_latency_bar() -> None:
    """A slow tail fails the p95 bar while the mean latency stays within its margin."""
    examples = []
    for i, e in enumerate(_examples(200)):
        slow = e.candidate.latency_ms * (4 if i % 10 == 0 else 1)
        examples.append(e.model_copy(update={"candidate": e.candidate.model_copy(update={"latency_ms": slow})}))
    result = evaluate_gate(examples, _config(metrics=[{"name": LATENCY, "margin": 100_000.0}], latency_p95_factor=1.5))
    bar = next(b for b in result.bars if b.name == "latency_p95")
    assert result.candidate_p95_ms is not None and result.baseline_p95_ms is not None
    assert bar.value == pytest.approx(result.candidate_p95_ms / result.baseline_p95_ms) and bar.value > 1.5
    assert bar.holds is False and _metric(result, LATENCY).decision is Verdict.PASS
    assert result.verdict is Verdict.FAIL and "latency_p95" in result.reason


def test_harness_error_rate_above_the_limit_raises() -> None:
    """More errored examples than allowed is no verdict: a retryable HarnessErrors."""
    examples = _examples(100)
    failed = [e.model_copy(update={"candidate": e.candidate.model_copy(update={"error": True})}) for e in examples[:10]]
    broken = failed + examples[10:]
    with pytest.raises(HarnessErrors) as info:
        evaluate_gate(broken, _config(max_error_rate=0.05))
    assert info.value.type is ErrorType.HARNESS_ERRORS and ErrorType.HARNESS_ERRORS not in ErrorType.non_retryable()
    assert (info.value.errors, info.value.total) == (10, 100)


def test_errors_under_the_limit_are_left_out() -> None:
    """Errored examples and examples missing a score are dropped, and counted."""
    examples = _examples(100)
    examples[0] = examples[0].model_copy(update={"baseline": examples[0].baseline.model_copy(update={"error": True})})
    examples[1] = examples[1].model_copy(update={"candidate": _side({"correctness": 3.0}, 900.0)})
    result = evaluate_gate(examples, _config(max_error_rate=0.05))
    assert (result.examples, result.usable, result.harness_errors) == (100, 98, 2)


def test_order_does_not_matter_and_the_digest_covers_the_input() -> None:
    """Examples are judged in id order, so a shuffled run gives the same result and digest."""
    examples = _examples(150, shift=-0.05)
    shuffled = examples[:]
    random.Random(0).shuffle(shuffled)
    result = evaluate_gate(examples, _config())
    assert evaluate_gate(shuffled, _config()) == result
    assert len(result.digest) == 64
    changed = examples[:-1] + [examples[-1].model_copy(update={"example_id": "ex-zzzz"})]
    assert evaluate_gate(changed, _config()).digest != result.digest


def test_duplicate_example_ids_are_refused() -> None:
    """Two results for one example cannot be paired: invalid input."""
    examples = _examples(5)
    with pytest.raises(DomainError) as info:
        evaluate_gate([*examples, examples[0]], _config())
    assert info.value.type is ErrorType.INVALID_INPUT


def test_config_ignores_unknown_fields_and_refuses_duplicate_metrics() -> None:
    """A newer payload still decodes; two specs for one metric do not."""
    assert GateConfig.model_validate({"future_knob": 1}).metrics[-1] == MetricSpec(name=LATENCY, margin=250.0)
    with pytest.raises(ValidationError):
        GateConfig(metrics=(MetricSpec(name="a", margin=1), MetricSpec(name="a", margin=2)))


def test_interval_agrees_with_scipy_bootstrap() -> None:
    """The paired percentile interval matches scipy.stats.bootstrap on the same data and confidence."""
    examples = _examples(400, shift=-0.03, noise=0.5)
    result = evaluate_gate(examples, _config(metrics=[{"name": "correctness", "margin": 0.5}], resamples=20_000))
    ours = _metric(result, "correctness")
    base = np.array([e.baseline.scores["correctness"] for e in sorted(examples, key=lambda e: e.example_id)])
    cand = np.array([e.candidate.scores["correctness"] for e in sorted(examples, key=lambda e: e.example_id)])
    theirs = scipy_stats.bootstrap(
        (base, cand),
        lambda b, c, axis: np.mean(c - b, axis=axis),
        paired=True,
        vectorized=True,
        method="percentile",
        confidence_level=0.95,
        n_resamples=20_000,
        rng=np.random.default_rng(99),
    ).confidence_interval
    width = theirs.high - theirs.low
    assert ours.ci_low == pytest.approx(theirs.low, abs=0.03 * width)
    assert ours.ci_high == pytest.approx(theirs.high, abs=0.03 * width)
    assert ours.delta == pytest.approx(float(np.mean(cand - base)))
