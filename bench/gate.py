"""Evaluation gate benchmark: the vectorised bootstrap against a Python loop over resamples.

Run from the repository root: ``python bench/gate.py``. One JSON object goes to stdout. See
bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `model_migration` importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from model_migration.domain import stats  # noqa: E402
from model_migration.domain.gate import JUDGE_METRICS, LATENCY, GateConfig, PairedExample, SideResult, evaluate_gate  # noqa: E402

BAR_S = 2.0
GOAL_S = 1.0
T = TypeVar("T")


def examples(n: int, seed: int) -> list[PairedExample]:
    """Judges on 1–4, similarity on 0–1, latency in ms; the candidate close to the baseline."""
    rng = np.random.default_rng(seed)
    judges = rng.integers(3, 5, size=(2, n, len(JUDGE_METRICS))).astype(float)
    similarity = rng.uniform(0.8, 1.0, size=(2, n))
    latency = rng.lognormal(7.0, 0.3, size=(2, n))
    sides = [
        [SideResult(scores={**dict(zip(JUDGE_METRICS, judges[s, i].tolist(), strict=True)), "similarity": float(similarity[s, i])},
                    latency_ms=float(latency[s, i])) for i in range(n)]
        for s in (0, 1)
    ]
    return [PairedExample(example_id=f"ex-{i:05d}", baseline=sides[0][i], candidate=sides[1][i]) for i in range(n)]


def diffs_of(examples: Sequence[PairedExample], config: GateConfig) -> stats.FloatArray:
    """The gate's metrics × examples matrix of direction-adjusted differences."""
    rows = []
    for spec in config.metrics:
        if spec.name == LATENCY:
            row = [e.candidate.latency_ms - e.baseline.latency_ms for e in examples]
        else:
            row = [e.candidate.scores[spec.name] - e.baseline.scores[spec.name] for e in examples]
        rows.append(np.array(row) * (1.0 if spec.higher else -1.0))
    return np.stack(rows)


def naive_means(diffs: stats.FloatArray, resamples: int, seed: int) -> stats.FloatArray:
    """The same bootstrap, one resample at a time and one metric at a time."""
    k, n = diffs.shape
    rng = np.random.default_rng(seed)
    out = np.empty((k, resamples))
    for b in range(resamples):
        idx = rng.integers(0, n, size=n)
        for m in range(k):
            out[m, b] = diffs[m][idx].mean()
    return out


def pure_python_means(diffs: stats.FloatArray, resamples: int, seed: int) -> list[list[float]]:
    """The same bootstrap with no numpy past drawing the indices: sums in a Python loop."""
    k, n = diffs.shape
    rng = np.random.default_rng(seed)
    rows = diffs.tolist()
    out: list[list[float]] = [[] for _ in range(k)]
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n).tolist()
        for m in range(k):
            row = rows[m]
            out[m].append(sum(row[i] for i in idx) / n)
    return out


def best_of(repeats: int, fn: Callable[[], T]) -> tuple[float, T]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return best, result


def bench(args: argparse.Namespace) -> dict[str, object]:
    config = GateConfig(resamples=args.resamples, seed=args.seed, min_examples=min(100, args.examples))
    data = examples(args.examples, args.seed)
    diffs = diffs_of(data, config)

    def core() -> stats.FloatArray:
        means = stats.bootstrap_means(diffs, config.resamples, config.seed)
        stats.percentile_interval(means, config.confidence)
        stats.holm(stats.p_non_inferior(means, np.array([s.margin for s in config.metrics])))
        return means

    def draws() -> int:
        # The index stream alone, drawn as the gate draws it: the floor under both loops.
        rng = np.random.default_rng(config.seed)
        for start in range(0, config.resamples, stats.RESAMPLE_CHUNK):
            rng.integers(0, args.examples, size=(min(stats.RESAMPLE_CHUNK, config.resamples - start), args.examples))
        return config.resamples

    gate_s, result = best_of(args.repeats, lambda: evaluate_gate(data, config))
    draw_s, _ = best_of(args.repeats, draws)
    bootstrap_s, means = best_of(args.repeats, core)
    naive_measured_s, naive = best_of(1, lambda: naive_means(diffs, args.naive_resamples, config.seed))
    naive_s = naive_measured_s * config.resamples / args.naive_resamples
    python_measured_s, python = best_of(1, lambda: pure_python_means(diffs, args.python_resamples, config.seed))
    python_s = python_measured_s * config.resamples / args.python_resamples
    agree = np.allclose(naive, means[:, : args.naive_resamples], rtol=0, atol=1e-12) and np.allclose(
        np.array(python), means[:, : args.python_resamples], rtol=0, atol=1e-12
    )
    return {
        "metrics": len(config.metrics),
        "examples": args.examples,
        "resamples": config.resamples,
        "repeats": args.repeats,
        "gate_s": round(gate_s, 3),
        "bootstrap_s": round(bootstrap_s, 3),
        "draw_s": round(draw_s, 3),
        "ratio": round(naive_s / bootstrap_s, 1),
        "ratio_pure_python": round(python_s / bootstrap_s, 1),
        "ratio_beyond_draws": round((naive_s - draw_s) / (bootstrap_s - draw_s), 1),
        "naive_s": round(naive_s, 2),
        "naive_measured": {"resamples": args.naive_resamples, "s": round(naive_measured_s, 3)},
        "pure_python_s": round(python_s, 1),
        "pure_python_measured": {"resamples": args.python_resamples, "s": round(python_measured_s, 3)},
        "naive_scaled": f"linearly to {config.resamples} resamples from the measured ones",
        "naive_matches": bool(agree),
        "verdict": result.verdict.value,
        "bar": {"gate_s": BAR_S, "goal_s": GOAL_S},
        "meets_bar": gate_s <= BAR_S,
        "meets_goal": gate_s <= GOAL_S,
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
    }


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--naive-resamples", type=int, default=1000, help="resamples the numpy-per-resample loop measures")
    parser.add_argument("--python-resamples", type=int, default=50, help="resamples the plain-Python loop measures")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    print(json.dumps(bench(parse(argv))), flush=True)


if __name__ == "__main__":
    main()
