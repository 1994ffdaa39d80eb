"""The evaluate stage from feature revision 4: the engine runs the harness and the gate itself.

Entering evaluate starts an evaluation (``RunGate``). Its ``GateDecided`` then moves the feature:

- **pass** → roll out;
- **fail** → back to implement, naming the failing metrics; the next prompt version must be
  higher. The ``max_loops``-th failed (or rejected) evaluation also escalates to the manager and
  AI Framework;
- **inconclusive** → waits for the DRI's ``approve`` or ``reject``, with a reason;
- **no verdict** (the harness refused, or errored on every retry) → escalates, and waits for
  ``evaluate --rerun``.

A team with its own harness reports the URL of its per-example results (``report_evaluation``):
they go through the same gate, and the team's verdict is recorded beside the gate's, not taken.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from model_migration.domain import templates
from model_migration.domain.commands import Approve, FiredEscalation, Reject, ReportEvaluation, RerunEvaluation, Verdict
from model_migration.domain.errors import CommandRejected
from model_migration.domain.escalation import EscalationKind
from model_migration.domain.evaluation import HarnessKind
from model_migration.domain.feature_rules import active, actor_given, move
from model_migration.domain.feature_state import Decision, FeatureState, GateDecided, GateRecord, Note, RunGate, TellParent
from model_migration.domain.gate_report import gate_summary, gate_table
from model_migration.domain.notes import mention
from model_migration.domain.stages import FeatureStage

#: The label an exhausted loop cap or a silent harness adds: someone above the DRI must look.
ESCALATED_LABEL = "priority::1"
AI_FRAMEWORK = "ai-framework"


def start(
    s: FeatureState, now: datetime, *, requested_by: str = "", results_url: str = "", team_verdict: Verdict | None = None,
) -> tuple[FeatureState, RunGate]:
    """A new evaluation attempt of the current prompt version."""
    harness = HarnessKind.IMPORTED if results_url else s.feature.evaluation.harness
    record = GateRecord(
        attempt=len(s.gates) + 1, prompt_version=s.prompt_version, harness=harness, started_at=now,
        requested_by=requested_by, results_url=results_url, team_verdict=team_verdict,
    )
    return s.model_copy(update={"gates": (*s.gates, record)}), RunGate(attempt=record.attempt)


def started_detail(s: FeatureState) -> str:
    gate = s.gate
    assert gate is not None
    source = f"the team's results at {gate.results_url}" if gate.results_url else f"the `{gate.harness}` harness"
    return (
        f"Evaluation #{gate.attempt} started: prompt version `{gate.prompt_version}` on `{s.feature.dataset}`, "
        f"through {source}, against `{s.feature.current_model}` at `{s.feature.evaluation.baseline_prompt_version}`."
    )


def _check_waiting(s: FeatureState, what: str) -> GateRecord | None:
    """The feature waits in evaluate with no evaluation running; its last evaluation, if any."""
    if s.stage != FeatureStage.EVALUATE:
        raise CommandRejected(f"cannot {what}: the feature is in {s.stage}, not evaluate")
    if not s.gated:
        raise CommandRejected(f"cannot {what}: this workflow predates the engine's evaluation gate; use report_evaluation")
    gate = s.gate
    if gate is not None and gate.running:
        raise CommandRejected(f"cannot {what}: evaluation #{gate.attempt} is still running")
    return gate


def report_evaluation(s: FeatureState, cmd: ReportEvaluation, now: datetime) -> Decision:
    _check_waiting(s, "report an evaluation")
    if not cmd.url:
        raise CommandRejected(
            "report_evaluation needs --url: the address of your per-example results (the experiment service's results "
            "format); the engine puts them through the gate instead of taking the verdict on trust"
        )
    if urlsplit(cmd.url).scheme not in ("http", "https"):
        raise CommandRejected(f"evaluation link {cmd.url!r} is not an http(s) URL")
    s = s.model_copy(update={"evaluations": (*s.evaluations, cmd)})
    s, run = start(s, now, requested_by=cmd.actor, results_url=cmd.url, team_verdict=cmd.verdict)
    detail = f"The team reports **{cmd.verdict}**. {cmd.summary}".strip() + " " + started_detail(s)
    body = templates.command_note(command="report_evaluation", actor=cmd.actor, at=now, detail=detail)
    return Decision(state=s, effects=(Note(body=body), run, TellParent()), message=f"evaluation #{run.attempt} started")


def rerun(s: FeatureState, cmd: RerunEvaluation, now: datetime) -> Decision:
    actor_given(s, cmd.actor)
    active(s, blocked_counts=True)
    _check_waiting(s, "re-run the evaluation")
    s, run = start(s, now, requested_by=cmd.actor)
    detail = f"{cmd.reason.strip()} {started_detail(s)}".strip()
    body = templates.command_note(command="rerun_evaluation", actor=cmd.actor, at=now, detail=detail)
    return Decision(state=s, effects=(Note(body=body), run, TellParent()), message=f"evaluation #{run.attempt} started")


def _decide_open(s: FeatureState, what: str, actor: str, reason: str) -> GateRecord:
    actor_given(s, actor)
    active(s, blocked_counts=True)
    gate = _check_waiting(s, what)
    if gate is None or not gate.awaiting_decision:
        raise CommandRejected(f"cannot {what}: no inconclusive evaluation is waiting for a decision")
    if not reason.strip():
        raise CommandRejected(f"to {what} needs a reason")
    return gate


def _settle(s: FeatureState, gate: GateRecord, **changes: object) -> FeatureState:
    settled = gate.model_copy(update=changes)
    return s.model_copy(update={"gates": (*s.gates[:-1], settled)})


def approve(s: FeatureState, cmd: Approve, now: datetime) -> Decision:
    gate = _decide_open(s, "approve", cmd.actor, cmd.reason)
    s = _settle(s, gate, decided_by=cmd.actor, decision="approve", reason=cmd.reason)
    detail = f"Inconclusive evaluation #{gate.attempt} **approved**: {cmd.reason.strip()}"
    d = move(s, FeatureStage.ROLLOUT, cmd.actor, now, detail)
    return d.model_copy(update={"message": f"evaluation #{gate.attempt} approved; now in {d.state.stage}"})


def reject(s: FeatureState, cmd: Reject, now: datetime) -> Decision:
    gate = _decide_open(s, "reject", cmd.actor, cmd.reason)
    s = _settle(s, gate, decided_by=cmd.actor, decision="reject", reason=cmd.reason)
    d = _back_to_implement(s, cmd.actor, now, f"Inconclusive evaluation #{gate.attempt} **rejected**: {cmd.reason.strip()}")
    return d.model_copy(update={"message": f"evaluation #{gate.attempt} rejected; now in {d.state.stage}"})


def decided(s: FeatureState, event: GateDecided, now: datetime) -> Decision:
    gate = s.gate
    if s.stage != FeatureStage.EVALUATE or gate is None or gate.attempt != event.attempt or not gate.running:
        return Decision(state=s)  # a late answer for an evaluation the feature has moved past
    if event.result is None:
        s = _settle(s, gate, error=event.error or "the harness gave no result", run_url=event.run_url)
        return _harness_failed(s, now)
    s = _settle(s, gate, result=event.result, run_url=event.run_url)
    result = event.result
    report = _report(s)
    if result.verdict is Verdict.PASS:
        d = move(s, FeatureStage.ROLLOUT, "", now, report)
    elif result.verdict is Verdict.FAIL:
        failing = ", ".join(result.failing_metrics + tuple(b.name for b in result.bars if b.holds is False)) or "the gate"
        d = _back_to_implement(s, "", now, f"{report}\n\nFailing: **{failing}**.")
    else:
        f = s.feature
        ask = (
            f"{mention(f.dri)} the gate cannot tell: approve (`model-migration approve <id> --reason ...`) or reject "
            "(`model-migration reject <id> --reason ...`), or re-run it (`model-migration evaluate <id> --rerun`)."
        )
        body = templates.command_note(command="gate", actor="", at=now, detail=f"{report}\n\n{ask}")
        d = Decision(state=s, effects=(Note(body=body), TellParent()))
    return d.model_copy(update={"message": f"evaluation #{gate.attempt}: {result.verdict}"})


def _report(s: FeatureState) -> str:
    gate = s.gate
    assert gate is not None and gate.result is not None
    result = gate.result
    lines = [f"Evaluation #{gate.attempt} of prompt version `{gate.prompt_version}` on `{result.dataset or s.feature.dataset}`."]
    lines.append(gate_summary(result))
    if gate.team_verdict is not None and gate.team_verdict is not result.verdict:
        lines.append(f"The team reported **{gate.team_verdict}**; the gate's verdict stands.")
    if gate.run_url:
        lines.append(f"Harness run: {gate.run_url}")
    return " ".join(lines[:2]) + ("\n\n" + "\n".join(lines[2:]) if lines[2:] else "") + "\n\n" + gate_table(result)


def _back_to_implement(s: FeatureState, actor: str, now: datetime, detail: str) -> Decision:
    loops = s.loops + 1
    s = s.model_copy(update={"failed_prompt_version": s.prompt_version, "loops": loops})
    cap = s.feature.evaluation.max_loops
    detail += f"\n\nA prompt version higher than `{s.prompt_version}` is needed (evaluation loop {loops} of {cap})."
    if loops < cap:
        return move(s, FeatureStage.IMPLEMENT, actor, now, detail)
    f = s.feature
    detail += (
        f"\n\n{mention(f.manager)} {mention(AI_FRAMEWORK)} the evaluation has failed {loops} times, the most this "
        f"feature's loop allows ({cap}). Please decide with {mention(f.dri)} whether to go on, change the approach, or abort."
    )
    fired = FiredEscalation(stage=FeatureStage.EVALUATE, kind=EscalationKind.LOOP_CAP, at=now, occurrence=loops - cap)
    s = s.model_copy(update={"fired": (*s.fired, fired)})
    return move(s, FeatureStage.IMPLEMENT, actor, now, detail, add_labels=(ESCALATED_LABEL,))


def _harness_failed(s: FeatureState, now: datetime) -> Decision:
    gate = s.gate
    assert gate is not None
    f = s.feature
    detail = (
        f"Evaluation #{gate.attempt} gave no verdict: {gate.error}. {mention(f.dri)} {mention(f.manager)} "
        f"{mention(AI_FRAMEWORK)} fix the harness, then re-run it: `model-migration evaluate <id> --rerun`."
    )
    body = templates.command_note(command="gate", actor="", at=now, detail=detail)
    fired = FiredEscalation(stage=FeatureStage.EVALUATE, kind=EscalationKind.HARNESS, at=now, occurrence=gate.attempt)
    s = s.model_copy(update={"fired": (*s.fired, fired), "labels_added": tuple(sorted({*s.labels_added, ESCALATED_LABEL}))})
    return Decision(state=s, effects=(Note(body=body, add_labels=(ESCALATED_LABEL,)), TellParent()), message=detail)
