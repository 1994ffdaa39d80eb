"""The running deprecation's pure rules: its clock, lateness, escalation targets, the replacement choice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from model_migration.catalog import load_catalog
from model_migration.domain.commands import Verdict
from model_migration.domain.deprecation import PlanRules, backward_plan, escalation_calendar
from model_migration.domain.deprecation_run import FeatureResult, PlanClock, closing_summary, is_late, late_features, planned_stage, targets
from model_migration.domain.replacement import CLEAR_QUALITY, choose, tournament_table
from model_migration.domain.stages import FeatureStage
from model_migration.domain.tournament import Standing, TournamentResult

CATALOG = load_catalog()
TODAY = date(2026, 1, 5)
FEATURES = tuple(CATALOG.feature(f) for f in ("duo_chat", "code_explanation"))
PLAN = backward_plan("claude_3_7_sonnet_20250219", TODAY + timedelta(days=56), FEATURES, TODAY)


def test_a_real_day_starts_at_midnight_and_a_rehearsal_day_at_the_start() -> None:
    now = datetime(2026, 1, 5, 15, 30, tzinfo=UTC)
    real = PlanClock.starting(now)
    assert real.at(date(2026, 1, 7)) == datetime(2026, 1, 7, tzinfo=UTC)
    assert real.date_of(datetime(2026, 1, 6, 23, 59, tzinfo=UTC)) == date(2026, 1, 6)
    rehearsal = PlanClock.starting(now, timedelta(seconds=2))
    assert rehearsal.at(date(2026, 1, 15)) == now + timedelta(seconds=20)
    assert rehearsal.date_of(now + timedelta(seconds=5)) == date(2026, 1, 7)


def test_the_planned_stage_follows_the_latest_starts() -> None:
    f = PLAN.features[0]  # due day 28: cleanup from 27, rollout from 21, evaluate from 19
    assert [planned_stage(f, TODAY + timedelta(days=d)) for d in (0, 18, 19, 21, 27, 28)] == [
        FeatureStage.IMPLEMENT, FeatureStage.IMPLEMENT, FeatureStage.EVALUATE, FeatureStage.ROLLOUT,
        FeatureStage.CLEANUP, FeatureStage.DONE,
    ]


def test_late_means_behind_the_plan_and_a_finished_feature_is_never_late() -> None:
    f = PLAN.features[0]
    day21 = TODAY + timedelta(days=21)
    assert is_late(f, FeatureStage.IMPLEMENT, day21) and is_late(f, FeatureStage.EVALUATE, day21)
    assert not is_late(f, FeatureStage.ROLLOUT, day21)
    assert not is_late(f, FeatureStage.DONE, day21 + timedelta(days=30))
    assert not is_late(f, FeatureStage.ABORTED, day21 + timedelta(days=30))
    stages = {"duo_chat": FeatureStage.ROLLOUT, "code_explanation": FeatureStage.IMPLEMENT}
    assert [p.feature for p in late_features(PLAN, stages, day21)] == ["code_explanation"]


def test_late_mode_speaks_to_every_unfinished_feature_and_the_ladder_to_the_late_ones() -> None:
    rules = PlanRules(bake=timedelta(days=2))
    tight = backward_plan("claude_3_7_sonnet_20250219", TODAY + timedelta(days=33), FEATURES, TODAY, rules=rules)
    calendar = escalation_calendar(tight)
    assert calendar[0].name.startswith("late mode") and calendar[0].on == TODAY
    stages = {"duo_chat": FeatureStage.DONE, "code_explanation": FeatureStage.IMPLEMENT}
    assert [f.feature for f in targets(calendar[0], tight, stages, TODAY)] == ["code_explanation"]
    reminder = next(e for e in escalation_calendar(PLAN) if e.name == "reminder T−14d")
    assert targets(reminder, PLAN, {}, reminder.on) == ()  # day 14: everyone may still implement


def test_the_closing_summary_says_whether_each_feature_beat_the_due_date() -> None:
    text = closing_summary(PLAN, "claude_sonnet_4_5_20250929", (
        FeatureResult(feature="duo_chat", title="Duo Chat", stage=FeatureStage.DONE, outcome="done", finished_on=PLAN.due),
        FeatureResult(feature="code_explanation", title="Code Explanation", stage=FeatureStage.ABORTED, outcome="aborted: x",
                      finished_on=PLAN.due + timedelta(days=1)),
    ))
    assert "| Duo Chat | done | 2026-02-02 | yes |" in text
    assert "| Code Explanation | aborted: x | 2026-02-03 | no |" in text


def _result(*rows: tuple[str, Verdict, float | None]) -> TournamentResult:
    table = tuple(
        Standing(rank=i + 1, candidate=c, verdict=v, quality=q, latency_p95_ms=900.0, cost_indicator="$$")
        for i, (c, v, q) in enumerate(rows)
    )
    return TournamentResult(winner=table[0].candidate, runner_up=table[1].candidate if len(table) > 1 else None, table=table)


def test_a_clear_winner_leads_everywhere_by_verdict_or_by_enough_quality() -> None:
    by_verdict = _result(("a", Verdict.PASS, 0.1), ("b", Verdict.FAIL, 0.9))
    by_quality = _result(("a", Verdict.PASS, 0.2 + CLEAR_QUALITY), ("b", Verdict.PASS, 0.2))
    choice = choose({"duo_chat": by_verdict, "code_explanation": by_quality})
    assert choice.clear and choice.leader == "a" and choice.runner_up == "b"


@pytest.mark.parametrize(("results", "why"), [
    ({"x": _result(("a", Verdict.PASS, 0.3), ("b", Verdict.PASS, 0.2))}, "within 0.25 margins"),
    ({"x": _result(("a", Verdict.INCONCLUSIVE, 0.3))}, "gate is inconclusive"),
    ({"x": _result(("a", Verdict.PASS, 1.0), ("b", Verdict.FAIL, 0)), "y": _result(("b", Verdict.PASS, 1.0), ("a", Verdict.PASS, 0))},
     "leads here"),
    ({"x": _result(("a", Verdict.PASS, 1.0)), "y": None}, "y: no candidate got a verdict"),
])
def test_anything_else_is_a_close_call_with_the_reason(results: dict[str, TournamentResult | None], why: str) -> None:
    choice = choose(results)
    assert not choice.clear and why in choice.reason


def test_no_verdict_at_all_leaves_no_leader() -> None:
    choice = choose({"x": None})
    assert choice.leader is None and not choice.clear


def test_the_table_shows_every_row_and_every_error() -> None:
    text = tournament_table({"duo_chat": _result(("a", Verdict.PASS, 0.5), ("b", Verdict.FAIL, None))}, {"duo_chat": {"c": "harness down"}})
    assert "| duo_chat | 1 | `a` | pass | +0.50 | 900 ms | $$ | — |" in text
    assert "| duo_chat | 2 | `b` | fail | — |" in text and "| duo_chat | — | `c` | no verdict |" in text and "harness down" in text
