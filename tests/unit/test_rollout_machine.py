"""The rollout machine, pure: each move, each refusal, and the effects it asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from model_migration.domain.errors import CommandRejected
from model_migration.domain.rollout import DEFAULT_ANALYSIS, LadderStep, Measurement, Outcome, RolloutError
from model_migration.domain.rollout_machine import (
    DRAIN_REMINDER,
    Abort,
    AllOff,
    Applied,
    ApplyStep,
    BakeEnded,
    CheckTraffic,
    EscalateDri,
    HoldEnded,
    Measured,
    Pause,
    Phase,
    Promote,
    PromoteFull,
    RemoveFlag,
    Resume,
    Retry,
    RolloutState,
    StepNote,
    TrafficChecked,
    decide,
    start,
)

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
FAST = tuple(LadderStep(percentage=p, bake=timedelta(seconds=5)) for p in (10, 50, 100))
GOOD = (
    Measurement(metric="error_ratio", value=0.0, requests=500),
    Measurement(metric="latency_p95", value=1.0, requests=500),
    Measurement(metric="acceptance_rate", value=0.0, requests=500),
)
BAD = (Measurement(metric="error_ratio", value=0.08, requests=500),)


def begin() -> RolloutState:
    return decide(start(FAST, test_run=True).state, Applied(step=0), NOW).state


def kinds(effects: tuple[object, ...]) -> list[type]:
    return [type(e) for e in effects]


def test_a_short_bake_needs_a_test_run_and_a_retry_may_start_at_the_failed_step() -> None:
    with pytest.raises(RolloutError, match="under 15 minutes"):
        start(FAST)
    d = start(FAST, test_run=True, from_step=2)
    assert d.state.step == 2 and d.effects == (ApplyStep(step=2),)
    with pytest.raises(CommandRejected, match="not on the ladder"):
        start(FAST, test_run=True, from_step=3)


def test_a_healthy_candidate_climbs_holds_drains_and_removes_the_flag() -> None:
    s = begin()
    for step in range(3):
        assert s.phase == Phase.BAKING and s.step == step
        s = decide(s, Measured(step=step, measurements=GOOD), NOW).state
        d = decide(s, BakeEnded(step=step), NOW)
        s = d.state
        if step < 2:
            assert kinds(d.effects) == [StepNote, ApplyStep] and "successful" in d.effects[0].body  # type: ignore[union-attr]
            s = decide(s, Applied(step=step + 1), NOW).state
    assert s.phase == Phase.HOLDING and [r.outcome for r in s.records] == [Outcome.SUCCESSFUL] * 3
    d = decide(s, HoldEnded(), NOW)
    assert d.state.phase == Phase.DRAINING and d.effects == (CheckTraffic(),)
    still = decide(d.state, TrafficChecked(old_model_rate=0.4), NOW)
    assert still.state.phase == Phase.DRAINING and kinds(still.effects) == [EscalateDri] and "0.4 requests/s" in still.message
    again = still.state
    reminded = []
    for check in range(2, DRAIN_REMINDER + 2):  # the DRI is reminded once a day of hourly checks, not at each
        d = decide(again, TrafficChecked(old_model_rate=None if check % 2 else 0.4), NOW)
        again = d.state
        reminded += [check] if d.effects else []
    assert reminded == [DRAIN_REMINDER + 1] and {e.detail for e in again.log[-2:]} == {"no data", "0.4 requests/s"}
    done = decide(again, TrafficChecked(old_model_rate=0.0), NOW)
    assert done.state.phase == Phase.DONE and kinds(done.effects) == [RemoveFlag, StepNote]


def test_failing_measurements_roll_back_at_once_with_the_values() -> None:
    s = begin()
    one = decide(s, Measured(step=0, measurements=BAD), NOW)
    assert one.state.phase == Phase.BAKING  # one failure is under the failure limit
    d = decide(one.state, Measured(step=0, measurements=BAD), NOW)
    assert d.state.phase == Phase.ROLLED_BACK and d.state.outcome == "rolled back at production: 10 % of actors"
    assert kinds(d.effects) == [AllOff, StepNote, EscalateDri]
    assert "| error_ratio | 0.08 | 500 | <= 0.01 | > 0.02 | failed |" in d.effects[1].body  # type: ignore[union-attr]
    with pytest.raises(CommandRejected, match="rolled_back: nothing more"):
        decide(d.state, Retry(actor="achen"), NOW)


def test_no_data_pauses_and_retry_bakes_the_step_again() -> None:
    s = begin()
    d = decide(s, BakeEnded(step=0), NOW)
    assert d.state.phase == Phase.PAUSED and d.state.paused_by == "analysis" and kinds(d.effects) == [StepNote, EscalateDri]
    with pytest.raises(CommandRejected, match="waits for retry, promote or abort"):
        decide(d.state, Resume(actor="achen"), NOW)
    later = NOW + timedelta(minutes=5)
    again = decide(d.state, Retry(actor="achen", reason="traffic is back"), later)
    assert again.state.phase == Phase.BAKING and again.state.step == 0
    assert again.state.record(0) is not None and again.state.record(0).applied_at == later  # type: ignore[union-attr]


def test_pause_and_resume_rebake_the_step() -> None:
    s = begin()
    paused = decide(s, Pause(actor="lead", reason="incident"), NOW).state
    assert paused.phase == Phase.PAUSED
    with pytest.raises(CommandRejected, match="paused already"):
        decide(paused, Pause(actor="lead"), NOW)
    with pytest.raises(CommandRejected, match="retry follows an inconclusive step"):
        decide(paused, Retry(actor="lead"), NOW)
    resumed = decide(paused, Resume(actor="lead"), NOW).state
    assert resumed.phase == Phase.BAKING and [e.event for e in resumed.log][-2:] == ["paused", "resumed"]


def test_promote_and_promote_full_need_a_reason_and_move_on() -> None:
    s = begin()
    with pytest.raises(CommandRejected, match="needs a reason"):
        decide(s, Promote(actor="lead"), NOW)
    d = decide(s, Promote(actor="lead", reason="metrics look fine"), NOW)
    assert d.state.step == 1 and d.state.phase == Phase.APPLYING and ApplyStep(step=1) in d.effects
    full = decide(d.state, PromoteFull(actor="lead", reason="incident fix"), NOW)
    assert full.state.step == 2 and ApplyStep(step=2) in full.effects
    with pytest.raises(CommandRejected, match="promote moves a baking or paused step"):
        decide(full.state, Promote(actor="lead", reason="x"), NOW)


def test_abort_turns_the_flag_off_and_ends_the_rollout() -> None:
    d = decide(begin(), Abort(actor="lead", reason="wrong model"), NOW)
    assert d.state.phase == Phase.ABORTED and kinds(d.effects) == [AllOff, StepNote]
    with pytest.raises(CommandRejected, match="aborted: nothing more"):
        decide(d.state, Pause(actor="lead"), NOW)
    for late in (Applied(step=0), Measured(step=0, measurements=BAD), BakeEnded(step=0), TrafficChecked(old_model_rate=0)):
        assert decide(d.state, late, NOW).state == d.state  # an activity answering after the end changes nothing


def test_late_answers_for_a_step_already_left_change_nothing() -> None:
    s = decide(begin(), Promote(actor="lead", reason="x"), NOW).state
    for event in (Applied(step=0), Measured(step=0, measurements=BAD), BakeEnded(step=0), HoldEnded(), TrafficChecked(old_model_rate=0)):
        assert decide(s, event, NOW).state == s


def test_the_default_analysis_is_used_unless_given() -> None:
    assert start(FAST, test_run=True).state.analysis == DEFAULT_ANALYSIS


def test_a_non_production_step_bakes_unjudged_and_a_production_step_without_data_pauses() -> None:
    """Prometheus holds production's metrics: a staging step is not analysed, it only bakes."""
    staging = (LadderStep(environment="staging", percentage=100, bake=timedelta(seconds=5)), *FAST)
    s = decide(start(staging, test_run=True).state, Applied(step=0), NOW).state
    assert not s.current.analysed and s.ladder[1].analysed
    d = decide(s, BakeEnded(step=0), NOW + timedelta(seconds=5))
    assert d.state.step == 1 and d.state.records[0].outcome == Outcome.SUCCESSFUL and d.state.records[0].ended_by == "bake"
    assert kinds(d.effects) == [StepNote, ApplyStep] and "not analysed" in d.effects[0].body  # type: ignore[attr-defined]
    s = decide(d.state, Applied(step=1), NOW + timedelta(seconds=6)).state
    paused = decide(s, BakeEnded(step=1), NOW + timedelta(seconds=11)).state
    assert paused.phase == Phase.PAUSED and paused.paused_by == "analysis"
    judged = LadderStep(environment="staging", percentage=50, analyse=True)
    assert judged.analysed and not LadderStep(environment="staging", analyse=None).analysed
