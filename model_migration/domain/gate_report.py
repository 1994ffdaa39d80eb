"""The gate's verdict as people read it: one Markdown table per metric and per absolute bar."""

from __future__ import annotations

from model_migration.domain.gate import LATENCY, GateResult, MetricVerdict


def _num(value: float | None, metric: str, signed: bool = False) -> str:
    if value is None:
        return "–"
    if metric == LATENCY:
        return f"{value:+.0f} ms" if signed else f"{value:.0f} ms"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _row(m: MetricVerdict) -> str:
    ci = f"[{_num(m.ci_low, m.name, True)}, {_num(m.ci_high, m.name, True)}]" if m.ci_low is not None else "–"
    p = f"{m.adjusted_p:.3g}" if m.adjusted_p is not None else "–"
    return (
        f"| {m.name} | {_num(m.baseline_mean, m.name)} | {_num(m.candidate_mean, m.name)} | {_num(m.delta, m.name, True)} "
        f"| {ci} | −{m.margin:g} | {p} | **{m.decision}** |"
    )


def gate_table(result: GateResult) -> str:
    """Per metric: means, Δ (positive favours the candidate), its CI, the margin, Holm's p and
    the decision; then the absolute bars."""
    lines = [
        f"| Metric | Baseline | Candidate | Δ | {result.confidence:.0%} CI of Δ | Margin | Holm p | Result |",
        "|---|---|---|---|---|---|---|---|",
        *(_row(m) for m in result.metrics),
    ]
    if result.bars:
        lines += ["", "| Bar | Measured | Limit | Holds |", "|---|---|---|---|"]
        for bar in result.bars:
            value = "–" if bar.value is None else f"{bar.value:.3g}"
            holds = {True: "yes", False: "**no**", None: "–"}[bar.holds]
            lines.append(f"| {bar.name} | {value} | {bar.limit:g} | {holds} |")
    return "\n".join(lines)


def gate_summary(result: GateResult) -> str:
    """One line: verdict, reason, sample."""
    errors = f", {result.harness_errors} harness errors left out" if result.harness_errors else ""
    return (
        f"Gate verdict **{result.verdict}**: {result.reason} ({result.usable} of {result.examples} examples{errors}; "
        f"paired bootstrap, {result.resamples:,} resamples, seed {result.seed})."
    )
