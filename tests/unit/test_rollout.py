"""The rollout ladder and the step analysis, pure."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from pydantic import ValidationError

from model_migration.domain.rollout import (
    DEFAULT_ANALYSIS,
    DEFAULT_LADDER,
    HOLD,
    MIN_BAKE,
    PRODUCTION,
    Audience,
    Condition,
    LadderStep,
    Measurement,
    MetricTemplate,
    Outcome,
    RolloutError,
    check_ladder,
    judge,
    ladder_time,
    measurement_table,
    step_outcome,
)

ERRORS = DEFAULT_ANALYSIS[0]  # error_ratio: success <= 0.01, failure > 0.02, 50 requests, 2 failures in a row


def test_the_default_ladder_is_gitlabs_process() -> None:
    assert [s.label for s in DEFAULT_LADDER] == [
        "staging: 50 % of actors", "staging: 100 % of actors", "production: GitLab team members",
        *(f"production: {p} % of actors" for p in (1, 10, 25, 50, 75, 100)),
    ]
    check_ladder(DEFAULT_LADDER)
    assert ladder_time(DEFAULT_LADDER) == 9 * MIN_BAKE + HOLD


def _prod(*percentages: int, bake: timedelta = MIN_BAKE) -> tuple[LadderStep, ...]:
    return tuple(LadderStep(percentage=p, bake=bake) for p in percentages)


@pytest.mark.parametrize(("ladder", "why"), [
    ((), "at least one step"),
    (_prod(1, 50), "must end at production: 100 % of actors, not at production: 50 % of actors"),
    (_prod(10, 5, 100), "production: 5 % of actors does not go up from 10 %"),
    ((*_prod(1), LadderStep(environment="staging", percentage=100), *_prod(100)), "comes after production"),
])
def test_a_wrong_ladder_is_one_line(ladder: tuple[LadderStep, ...], why: str) -> None:
    with pytest.raises(RolloutError, match=why):
        check_ladder(ladder)


def test_a_bake_under_15_minutes_needs_a_test_run() -> None:
    quick = _prod(1, 100, bake=timedelta(seconds=2))
    with pytest.raises(RolloutError, match="bake time under 15 minutes at production: 1 % of actors, production: 100 % of actors"):
        check_ladder(quick)
    check_ladder(quick, test_run=True)


def test_team_members_then_actors_may_start_low_again() -> None:
    check_ladder((LadderStep(environment=PRODUCTION, audience=Audience.TEAM_MEMBERS, percentage=100), *_prod(1, 100)))


def test_queries_are_filled_in_and_a_stray_placeholder_is_refused() -> None:
    query, requests = ERRORS.render("duo_chat", "new_model", "old_model", timedelta(minutes=15))
    assert 'ai_gateway_request_errors_total{feature="duo_chat",model="new_model"}[900s]' in query
    assert 'model="old_model"' in query and "$" not in query
    assert requests == 'sum(increase(ai_gateway_requests_total{feature="duo_chat",model="new_model"}[900s]))'
    with pytest.raises(ValidationError, match="unknown placeholder"):
        MetricTemplate(name="x", query="rate(x{model=\"$model\"}[$window])", requests="1",
                       success=Condition(op="<", threshold=1), failure=Condition(op=">", threshold=2))
    with pytest.raises(ValidationError, match="operator '=='"):
        Condition(op="==", threshold=1)


@pytest.mark.parametrize(("value", "requests", "outcome"), [
    (0.005, 500, Outcome.SUCCESSFUL),
    (0.03, 500, Outcome.FAILED),
    (0.015, 500, Outcome.INCONCLUSIVE),  # the grey zone between success and failure
    (None, 500, Outcome.INCONCLUSIVE),  # no data
    (math.nan, 500, Outcome.INCONCLUSIVE),
    (0.0, 10, Outcome.INCONCLUSIVE),  # too few requests to say
])
def test_one_measurement(value: float | None, requests: float, outcome: Outcome) -> None:
    assert judge(ERRORS, Measurement(metric="error_ratio", value=value, requests=requests)) == outcome


def _measure(*values: float, metric: str = "error_ratio") -> list[Measurement]:
    return [Measurement(metric=metric, value=v, requests=500) for v in values]


def test_a_step_fails_only_after_the_failure_limit_in_a_row() -> None:
    only = (ERRORS,)
    assert step_outcome(only, _measure(0.03)) == Outcome.INCONCLUSIVE  # one failure is not yet a rollback
    assert step_outcome(only, _measure(0.03, 0.0, 0.03)) == Outcome.INCONCLUSIVE
    assert step_outcome(only, _measure(0.0, 0.03, 0.04)) == Outcome.FAILED
    assert step_outcome(only, _measure(0.03, 0.0)) == Outcome.SUCCESSFUL


def test_a_step_succeeds_when_every_metric_does() -> None:
    good = [
        *_measure(0.0), *_measure(1.05, metric="latency_p95"), *_measure(0.01, metric="acceptance_rate"),
    ]
    assert step_outcome(DEFAULT_ANALYSIS, good) == Outcome.SUCCESSFUL
    assert step_outcome(DEFAULT_ANALYSIS, good[:2]) == Outcome.INCONCLUSIVE  # acceptance not measured yet
    slow = [*good, *_measure(1.6, 1.7, metric="latency_p95")]
    assert step_outcome(DEFAULT_ANALYSIS, slow) == Outcome.FAILED


def test_the_step_note_table_shows_values_thresholds_and_results() -> None:
    table = measurement_table(DEFAULT_ANALYSIS, [
        Measurement(metric="error_ratio", value=0.031, requests=812),
        Measurement(metric="latency_p95", value=None, requests=0),
    ])
    assert "| error_ratio | 0.031 | 812 | <= 0.01 | > 0.02 | failed |" in table
    assert "| latency_p95 | no data | 0 | <= 1.2 | > 1.5 | inconclusive |" in table
