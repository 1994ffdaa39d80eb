"""The evaluate stage's rules from revision 4 (``domain/feature_gate.py``), without Temporal."""

from __future__ import annotations

from model_migration.domain import feature as fm
from model_migration.domain.commands import Approve, CompleteStage, Pause, Reject, ReportEvaluation, RerunEvaluation, Verdict
from model_migration.domain.escalation import EscalationKind
from model_migration.domain.evaluation import HarnessKind
from model_migration.domain.gate import GateResult, MetricVerdict
from tests.unit.test_feature_machine import FEATURE, NOW, S, refused, state


def gated(stage: S = S.IMPLEMENT, max_loops: int = 3) -> fm.FeatureState:
    feature = FEATURE.model_copy(update={"evaluation": FEATURE.evaluation.model_copy(update={"max_loops": max_loops})})
    return state(stage, revision=4, feature=feature)


def result(verdict: Verdict) -> GateResult:
    decision = Verdict.FAIL if verdict is Verdict.FAIL else verdict
    row = MetricVerdict(name="correctness", margin=0.2, decision=decision, reason="r", baseline_mean=3.0, candidate_mean=2.5,
                        delta=-0.5, ci_low=-0.6, ci_high=-0.4, adjusted_p=0.9)
    return GateResult(verdict=verdict, reason=f"it is {verdict}", metrics=(row,), examples=240, usable=240)


def evaluating(version: str = "1.0.0-dev", **kw: int) -> fm.FeatureState:
    d = fm.decide(gated(**kw), CompleteStage(stage=S.IMPLEMENT, actor="dri", prompt_version=version), NOW)
    return d.state


def decided(s: fm.FeatureState, verdict: Verdict | None, error: str = "") -> fm.Decision:
    attempt = len(s.gates)
    return fm.decide(s, fm.GateDecided(attempt=attempt, result=result(verdict) if verdict else None, error=error), NOW)


def test_completing_implement_starts_an_evaluation() -> None:
    d = fm.decide(gated(), CompleteStage(stage=S.IMPLEMENT, actor="dri", prompt_version="1.0.0-dev"), NOW)
    assert d.state.stage == S.EVALUATE
    assert [e for e in d.effects if isinstance(e, fm.RunGate)] == [fm.RunGate(attempt=1)]
    gate = d.state.gates[0]
    assert gate.running and gate.prompt_version == "1.0.0-dev" and gate.harness is HarnessKind.EXPERIMENT_SERVICE


def test_revision_3_still_takes_reported_verdicts() -> None:
    d = fm.decide(state(S.IMPLEMENT, revision=3), CompleteStage(stage=S.IMPLEMENT, actor="dri", prompt_version="1.0.0-dev"), NOW)
    assert not d.state.gates and not any(isinstance(e, fm.RunGate) for e in d.effects)
    assert "predates" in refused(d.state, Approve(actor="dri", reason="x"))


def test_pass_rolls_out_and_fail_goes_back_naming_metrics() -> None:
    assert decided(evaluating(), Verdict.PASS).state.stage == S.ROLLOUT
    d = decided(evaluating(), Verdict.FAIL)
    assert d.state.stage == S.IMPLEMENT and d.state.loops == 1 and d.state.failed_prompt_version == "1.0.0-dev"
    body = next(e for e in d.effects if isinstance(e, fm.Note)).body
    assert "Failing: **correctness**" in body and "| correctness |" in body


def test_a_stale_or_repeated_verdict_changes_nothing() -> None:
    s = evaluating()
    assert fm.decide(s, fm.GateDecided(attempt=2, result=result(Verdict.PASS)), NOW).state == s
    moved = decided(s, Verdict.PASS).state
    assert fm.decide(moved, fm.GateDecided(attempt=1, result=result(Verdict.FAIL)), NOW).state == moved


def test_commands_wait_for_a_running_evaluation() -> None:
    s = evaluating()
    assert "still running" in refused(s, RerunEvaluation(actor="dri"))
    assert "still running" in refused(s, ReportEvaluation(actor="dri", verdict=Verdict.PASS, url="https://x/r.json"))
    failed_in_evaluate = decided(s, Verdict.FAIL).state.model_copy(update={"stage": S.EVALUATE})
    assert "no inconclusive" in refused(failed_in_evaluate, Approve(actor="d", reason="r"))


def test_inconclusive_waits_for_a_reasoned_decision() -> None:
    s = decided(evaluating(), Verdict.INCONCLUSIVE).state
    assert s.stage == S.EVALUATE and s.gates[-1].awaiting_decision
    assert "needs a reason" in refused(s, Approve(actor="dri", reason=""))
    paused = fm.decide(s, Pause(actor="dri"), NOW).state
    assert "paused" in refused(paused, Approve(actor="dri", reason="ok"))
    approved = fm.decide(s, Approve(actor="dri", reason="latency wins"), NOW).state
    assert approved.stage == S.ROLLOUT and approved.gates[-1].decision == "approve"
    rejected = fm.decide(s, Reject(actor="dri", reason="too risky"), NOW).state
    assert rejected.stage == S.IMPLEMENT and rejected.loops == 1 and rejected.failed_prompt_version == "1.0.0-dev"


def test_the_loop_cap_escalates_once_reached() -> None:
    s = decided(evaluating(max_loops=2), Verdict.FAIL).state
    assert not [e for e in s.fired if e.kind is EscalationKind.LOOP_CAP]
    s = fm.decide(s, CompleteStage(stage=S.IMPLEMENT, actor="dri", prompt_version="1.0.1-dev"), NOW).state
    d = decided(s, Verdict.FAIL)
    assert [e.kind for e in d.state.fired] == [EscalationKind.LOOP_CAP]
    note = next(e for e in d.effects if isinstance(e, fm.Note))
    assert "@ai-framework" in note.body and f"@{FEATURE.manager}" in note.body and note.add_labels == ("priority::1",)
    assert d.state.labels_added == ("priority::1",)


def test_no_verdict_escalates_and_a_rerun_starts_the_next_attempt() -> None:
    d = decided(evaluating(), None, error="the run failed: quota")
    assert d.state.stage == S.EVALUATE and [e.kind for e in d.state.fired] == [EscalationKind.HARNESS]
    rerun = fm.decide(d.state, RerunEvaluation(actor="dri", reason="quota raised"), NOW)
    assert [e for e in rerun.effects if isinstance(e, fm.RunGate)] == [fm.RunGate(attempt=2)]


def test_a_teams_report_needs_its_results_and_is_judged_by_the_gate() -> None:
    s = decided(evaluating(), Verdict.INCONCLUSIVE).state
    assert "needs --url" in refused(s, ReportEvaluation(actor="dri", verdict=Verdict.PASS))
    assert "not an http(s) URL" in refused(s, ReportEvaluation(actor="dri", verdict=Verdict.PASS, url="file:///etc/passwd"))
    d = fm.decide(s, ReportEvaluation(actor="dri", verdict=Verdict.PASS, url="https://ci.example/results.json"), NOW)
    gate = d.state.gates[-1]
    assert gate.harness is HarnessKind.IMPORTED and gate.team_verdict is Verdict.PASS
    failed = decided(d.state, Verdict.FAIL)
    assert failed.state.stage == S.IMPLEMENT
    assert "The team reported **pass**; the gate's verdict stands." in next(e for e in failed.effects if isinstance(e, fm.Note)).body
