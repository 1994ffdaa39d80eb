"""Choosing the replacement of a retiring model from its tournaments, one per affected feature.

Each affected feature ran the candidates against the current model on its own dataset. The
choice is **clear** when one candidate tops every feature's table with a passing gate, and on
every feature it is ahead of the runner-up by its verdict, or by at least ``CLEAR_QUALITY`` in
quality (Δ / margin, so one margin is 1.0). Anything else is a **close call** for AI Framework
to settle with ``select_replacement``. The fallback is the runner-up: the other candidate with
the best mean rank over the features. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from model_migration.domain.commands import Verdict
from model_migration.domain.notes import cell
from model_migration.domain.tournament import TournamentResult

FROZEN = ConfigDict(frozen=True)
#: How far ahead in quality a winner must be, in margins, to be chosen without a person.
CLEAR_QUALITY = 0.25


class Choice(BaseModel):
    model_config = FROZEN
    #: The top candidate (catalog key), or None when no candidate got a verdict.
    leader: str | None = None
    runner_up: str | None = None
    clear: bool = False
    reason: str


def choose(results: Mapping[str, TournamentResult | None]) -> Choice:
    """The leader, the runner-up and whether the leader wins clearly; ``results`` by feature."""
    ranked = {feature: r for feature, r in results.items() if r is not None}
    if not ranked:
        return Choice(reason="no candidate got a verdict on any feature")
    ranks: dict[str, list[int]] = {}
    for result in ranked.values():
        for row in result.table:
            ranks.setdefault(row.candidate, []).append(row.rank)
    order = sorted(ranks, key=lambda c: (sum(ranks[c]) / len(ranks[c]), -len(ranks[c]), c))
    leader = order[0]
    runner_up = order[1] if len(order) > 1 else None
    problems = [f"{feature}: {why}" for feature, result in ranked.items() if (why := _not_clear(result, leader))]
    missing = sorted(set(results) - set(ranked))
    problems += [f"{feature}: no candidate got a verdict" for feature in missing]
    if problems:
        return Choice(leader=leader, runner_up=runner_up, reason="close call: " + "; ".join(problems))
    return Choice(
        leader=leader, runner_up=runner_up, clear=True,
        reason=f"{leader} passes its gate and leads on every feature ({len(ranked)})",
    )


def _not_clear(result: TournamentResult, leader: str) -> str:
    top = result.table[0]
    if top.candidate != leader:
        return f"{top.candidate} leads here, not {leader}"
    if top.verdict != Verdict.PASS:
        return f"the leader's gate is {top.verdict}"
    if len(result.table) == 1 or result.table[1].verdict != Verdict.PASS:
        return ""
    second = result.table[1]
    if top.quality is None or second.quality is None or top.quality - second.quality < CLEAR_QUALITY:
        return f"{second.candidate} is within {CLEAR_QUALITY} margins of quality"
    return ""


def tournament_table(results: Mapping[str, TournamentResult | None], errors: Mapping[str, Mapping[str, str]]) -> str:
    """The tournaments as one Markdown table: per feature, per candidate, its rank and numbers."""
    lines = [
        "| Feature | Rank | Candidate | Gate | Quality (margins) | p95 latency | Cost | Ahead by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for feature, result in results.items():
        for row in result.table if result else ():
            quality = f"{row.quality:+.2f}" if row.quality is not None else "—"
            latency = f"{row.latency_p95_ms:.0f} ms" if row.latency_p95_ms is not None else "—"
            lines.append(
                f"| {cell(feature)} | {row.rank} | `{row.candidate}` | {row.verdict} | {quality} | {latency} | "
                f"{row.cost_indicator} | {row.ahead_by or '—'} |"
            )
        for candidate, error in errors.get(feature, {}).items():
            lines.append(f"| {cell(feature)} | — | `{candidate}` | no verdict | — | — | — | {cell(error)} |")
    return "\n".join(lines)
