"""The feature stage machine: implement → evaluate → roll out → cleanup, as one pure function.

``decide(state, command, now)`` returns the next state and the effects to carry out, or raises
``CommandRejected``. An update's validator and its handler both call it, so they cannot
disagree. No clock, no I/O: ``now`` is an argument and effects are data (``feature_state.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from model_migration.domain import deadlines, feature_gate, feature_rollout, templates
from model_migration.domain.commands import (
    Abort,
    Approve,
    CompleteStage,
    ExtendDeadline,
    FiredEscalation,
    ParentCommand,
    ParentCommandKind,
    Pause,
    Reject,
    ReportEvaluation,
    ReportRollout,
    RerunEvaluation,
    Resume,
    RetryRollout,
    RolloutStep,
    Verdict,
)
from model_migration.domain.errors import CommandRejected
from model_migration.domain.escalation import EscalationKind, EscalationState, after_firing
from model_migration.domain.feature_rules import active, actor_given, move, next_stage, still_open
from model_migration.domain.feature_state import (
    CLOSE_WITH_NOTE_REVISION,
    GATE_REVISION,
    STRICT_REVISION,
    Block,
    BlockedNoticeSent,
    CleanupOpened,
    Command,
    Decision,
    Effect,
    Escalate,
    FeatureState,
    GateDecided,
    GateRecord,
    Note,
    Publish,
    RolloutEnded,
    RunGate,
    TellParent,
    initial,
)
from model_migration.domain.machine import dispatch
from model_migration.domain.stages import FEATURE_COMPLETABLE, FLAG_NAME, FeatureStage, is_semver, semver_greater

__all__ = [
    "CLOSE_WITH_NOTE_REVISION", "GATE_REVISION", "STRICT_REVISION", "Block", "BlockedNoticeSent", "Command", "Decision", "Effect",
    "Escalate", "FeatureState", "GateDecided", "GateRecord", "Note", "Publish", "RunGate", "TellParent", "decide", "initial",
]


# -- the machine --------------------------------------------------------------------------------


def decide(state: FeatureState, command: Command, now: datetime) -> Decision:
    """The next state and its effects, or ``CommandRejected`` with one line saying why."""
    return dispatch(_HANDLERS, "a feature", state, command, now)


def _complete_stage(s: FeatureState, cmd: CompleteStage, now: datetime) -> Decision:
    actor_given(s, cmd.actor)
    active(s, blocked_counts=True)
    if cmd.stage != s.stage:
        raise CommandRejected(f"cannot complete {cmd.stage}: the feature is in {s.stage}")
    feature_rollout.refuse_cleanup(s)
    if s.stage not in FEATURE_COMPLETABLE:
        gate = "the evaluation gate (or approve, for an inconclusive one)"
        how = (gate if s.gated else "report_evaluation") if s.stage == FeatureStage.EVALUATE else "report_rollout with 100"
        raise CommandRejected(f"{s.stage} ends through {how}, not complete_stage")
    if s.stage == FeatureStage.IMPLEMENT:
        version = cmd.prompt_version
        if not version:
            raise CommandRejected("completing implement needs the new prompt version (semver)")
        if not is_semver(version):
            raise CommandRejected(f"prompt version {version!r} is not semver (e.g. 1.0.0-dev)")
        if s.strict and s.failed_prompt_version and not semver_greater(version, s.failed_prompt_version):
            raise CommandRejected(
                f"prompt version {version} is not higher than {s.failed_prompt_version}, whose evaluation "
                "failed: bring a new version (e.g. a higher -dev pre-release)"
            )
        if cmd.flag_name is not None and not FLAG_NAME.fullmatch(cmd.flag_name):
            raise CommandRejected(f"flag name {cmd.flag_name!r} is not a valid feature flag name")
        flag = cmd.flag_name or s.flag
        s = s.model_copy(update={"prompt_version": version, "flag": flag})
        detail = f"Prompt version `{version}`, feature flag `{flag}`. {cmd.note}".strip()
    else:
        s = s.model_copy(update={"outcome": "done"})
        detail = f"Feature flag `{s.flag}` removed. {cmd.note}".strip()
    done = s.stage
    if done == FeatureStage.IMPLEMENT and s.gated:
        s, run = feature_gate.start(s, now, requested_by=cmd.actor)
        d = move(s, FeatureStage.EVALUATE, cmd.actor, now, f"{detail} {feature_gate.started_detail(s)}")
        d = d.model_copy(update={"effects": (*d.effects, run)})
    else:
        d = move(s, next_stage(done), cmd.actor, now, detail)
    return d.model_copy(update={"message": f"{done} complete; now in {d.state.stage}"})


def _report_evaluation(s: FeatureState, cmd: ReportEvaluation, now: datetime) -> Decision:
    actor_given(s, cmd.actor)
    active(s, blocked_counts=s.strict)
    if s.stage != FeatureStage.EVALUATE:
        raise CommandRejected(f"cannot report an evaluation: the feature is in {s.stage}")
    if s.gated:
        return feature_gate.report_evaluation(s, cmd, now)
    if s.strict:
        if cmd.verdict == Verdict.PASS and not cmd.metrics:
            raise CommandRejected("a passing evaluation needs its metrics (--metric name=baseline:candidate)")
        if cmd.url and urlsplit(cmd.url).scheme not in ("http", "https"):
            raise CommandRejected(f"evaluation link {cmd.url!r} is not an http(s) URL")
    s = s.model_copy(update={"evaluations": (*s.evaluations, cmd)})
    rows = "\n".join(f"| {m.name} | {m.baseline:g} | {m.candidate:g} |" for m in cmd.metrics)
    table = f"\n\n| Metric | Baseline | Candidate |\n|---|---|---|\n{rows}" if rows else ""
    dataset = cmd.dataset or s.feature.dataset
    detail = f"Evaluation verdict **{cmd.verdict}** on `{dataset}`. {cmd.summary}".strip() + table
    if cmd.verdict == Verdict.PASS:
        d = move(s, FeatureStage.ROLLOUT, cmd.actor, now, detail)
    elif cmd.verdict == Verdict.FAIL:
        s = s.model_copy(update={"failed_prompt_version": s.prompt_version})
        d = move(s, FeatureStage.IMPLEMENT, cmd.actor, now, detail + "\n\nA new prompt version is needed.")
    else:
        body = templates.command_note(
            command="report_evaluation", actor=cmd.actor, at=now, detail=detail + "\n\nInconclusive: report another evaluation.",
        )
        d = Decision(state=s, effects=(Note(body=body), TellParent()))
    return d.model_copy(update={"message": f"evaluation {cmd.verdict}; now in {d.state.stage}"})


def _report_rollout(s: FeatureState, cmd: ReportRollout, now: datetime) -> Decision:
    actor_given(s, cmd.actor)
    active(s, blocked_counts=s.strict)
    if s.stage != FeatureStage.ROLLOUT and not s.driven:
        raise CommandRejected(f"cannot report a rollout: the feature is in {s.stage}")
    feature_rollout.refuse_report(s, cmd)
    current = s.percentage
    if not 0 <= cmd.percentage <= 100:
        raise CommandRejected(f"percentage {cmd.percentage} is outside 0..100")
    if s.strict and cmd.percentage == current and s.rollout:
        raise CommandRejected(f"the flag is already at {current} %; nothing to record")
    if cmd.percentage < current and not cmd.rollback:
        raise CommandRejected(
            f"percentage {cmd.percentage} is below the current {current}; report it as a rollback if that is intended"
        )
    if cmd.rollback and cmd.percentage >= current:
        raise CommandRejected(f"a rollback must lower the percentage below the current {current}")
    step = RolloutStep(percentage=cmd.percentage, at=now, actor=cmd.actor, rollback=cmd.rollback)
    s = s.model_copy(update={"rollout": (*s.rollout, step)})
    what = "Rolled back" if cmd.rollback else "Rolled out"
    detail = f"{what} `{s.flag}` to {cmd.percentage} %. {cmd.note}".strip()
    if cmd.percentage == 100 and not cmd.rollback:
        d = move(s, FeatureStage.CLEANUP, cmd.actor, now, detail)
    else:
        body = templates.command_note(command="report_rollout", actor=cmd.actor, at=now, detail=detail)
        d = Decision(state=s, effects=(Note(body=body), TellParent()))
    return d.model_copy(update={"message": f"{cmd.percentage} % recorded; now in {d.state.stage}"})


def _pause(s: FeatureState, cmd: Pause, now: datetime) -> Decision:
    actor_given(s, cmd.actor)
    still_open(s)
    if s.paused:
        raise CommandRejected("the workflow is already paused")
    s = s.model_copy(update={"paused": True, "paused_at": now})
    body = templates.command_note(command="pause", actor=cmd.actor, at=now, detail=cmd.reason)
    return Decision(state=s, effects=(Note(body=body), TellParent()), message="paused; escalations are on hold")


def _resume(s: FeatureState, cmd: Resume, now: datetime) -> Decision:
    actor_given(s, cmd.actor)
    still_open(s)
    if not (s.paused or s.blocked):
        raise CommandRejected("the workflow is not paused")
    effects: list[Effect] = []
    if s.paused and s.paused_at is not None:
        # The clock stops while paused: deadlines move by the time spent paused.
        s = s.model_copy(update={"deadlines": deadlines.shift_from(s.deadlines, s.stage, now - s.paused_at)})
        effects.append(Publish())
    s = s.model_copy(update={"paused": False, "paused_at": None, "blocked": ""})
    effects += [Note(body=templates.command_note(command="resume", actor=cmd.actor, at=now, detail=cmd.note)), TellParent()]
    return Decision(state=s, effects=tuple(effects), message=f"resumed in {s.stage}")


def _abort(s: FeatureState, cmd: Abort, now: datetime) -> Decision:
    actor_given(s, cmd.actor)
    still_open(s)
    if not cmd.reason.strip():
        raise CommandRejected("an abort needs a reason")
    s = s.model_copy(update={"outcome": f"aborted: {cmd.reason}", "paused": False, "blocked": ""})
    d = move(s, FeatureStage.ABORTED, cmd.actor, now, f"Aborted: {cmd.reason}")
    return d.model_copy(update={"message": "aborted"})


def _extend_deadline(s: FeatureState, cmd: ExtendDeadline, now: datetime) -> Decision:
    actor_given(s, cmd.actor)
    still_open(s)
    moved = deadlines.extend(s.deadlines, cmd.stage, cmd.new_date, s.stage, now)
    if not cmd.reason.strip():
        raise CommandRejected("extending a deadline needs a reason")
    update: dict[str, object] = {"deadlines": moved, "extended": {**s.extended, cmd.stage: cmd.reason}}
    if cmd.stage == s.stage:
        update["escalation"] = EscalationState()
    s = s.model_copy(update=update)
    detail = f"{cmd.stage} now due {cmd.new_date:%Y-%m-%d %H:%M} UTC: {cmd.reason}"
    body = templates.command_note(command="extend_deadline", actor=cmd.actor, at=now, detail=detail)
    return Decision(state=s, effects=(Note(body=body, due_date=s.due().date()), Publish(), TellParent()), message=detail)


def _parent_command(s: FeatureState, cmd: ParentCommand, now: datetime) -> Decision:
    """The parent's pause, resume and abort: applied when they fit, ignored when they don't."""
    if s.stage.terminal:
        return Decision(state=s)
    if cmd.kind == ParentCommandKind.PAUSE and not s.paused:
        return _pause(s, Pause(actor=cmd.actor, reason=cmd.reason), now)
    if cmd.kind == ParentCommandKind.RESUME and (s.paused or s.blocked):
        return _resume(s, Resume(actor=cmd.actor, note=cmd.reason), now)
    if cmd.kind == ParentCommandKind.ABORT:
        return _abort(s, Abort(actor=cmd.actor, reason=cmd.reason or "the migration was aborted"), now)
    if cmd.kind == ParentCommandKind.SHIFT and cmd.shift:
        return _shift(s, cmd.shift, cmd.actor, cmd.reason, now)
    return Decision(state=s)


def _shift(s: FeatureState, shift: timedelta, actor: str, reason: str, now: datetime) -> Decision:
    """The current and later stages' due dates move by ``shift``; the current stage's ladder starts over."""
    s = s.model_copy(update={"deadlines": deadlines.shift_from(s.deadlines, s.stage, shift), "escalation": EscalationState()})
    detail = f"{s.stage} now due {s.due():%Y-%m-%d %H:%M} UTC: {reason}"
    body = templates.command_note(command="extend_deadline", actor=actor, at=now, detail=detail)
    return Decision(state=s, effects=(Note(body=body, due_date=s.due().date()), Publish(), TellParent()), message=detail)


def _escalate(s: FeatureState, event: Escalate, now: datetime) -> Decision:
    planned = event.planned
    step = s.ladder[planned.step]
    labels = (step.label,) if step.label else ()
    body = templates.escalation_note(
        kind=planned.kind.value, stage=s.stage, due=s.due(), dri=s.feature.dri, manager=s.feature.manager,
        at=now, occurrence=planned.occurrence, feature_title=s.feature.title,
    )
    fired = FiredEscalation(stage=s.stage, kind=planned.kind, at=now, occurrence=planned.occurrence)
    s = s.model_copy(update={
        "escalation": after_firing(planned), "fired": (*s.fired, fired),
        "labels_added": tuple(sorted({*s.labels_added, *labels})),
    })
    return Decision(state=s, effects=(Note(body=body, add_labels=labels), TellParent()))


def _block(s: FeatureState, event: Block, now: datetime) -> Decision:
    return Decision(state=s.model_copy(update={"blocked": event.reason}), effects=(TellParent(),))


def _blocked_notice(s: FeatureState, event: BlockedNoticeSent, now: datetime) -> Decision:
    fired = FiredEscalation(stage=s.stage, kind=EscalationKind.BLOCKED, at=now, occurrence=0)
    return Decision(state=s.model_copy(update={"fired": (*s.fired, fired)}), effects=(TellParent(),))


#: The rule for each command type; ``decide`` looks it up by the command's exact type.
_HANDLERS: dict[type[BaseModel], Callable[[FeatureState, Any, datetime], Decision]] = {
    CompleteStage: _complete_stage, ReportEvaluation: _report_evaluation, ReportRollout: _report_rollout,
    Pause: _pause, Resume: _resume, Abort: _abort, ExtendDeadline: _extend_deadline, ParentCommand: _parent_command,
    Escalate: _escalate, Block: _block, BlockedNoticeSent: _blocked_notice,
    Approve: feature_gate.approve, Reject: feature_gate.reject, RerunEvaluation: feature_gate.rerun, GateDecided: feature_gate.decided,
    RetryRollout: feature_rollout.retry, RolloutEnded: feature_rollout.ended, CleanupOpened: feature_rollout.cleanup_opened,
}
