"""The feature stage machine: every move, every refusal, every effect, without Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from model_migration.catalog import load_catalog
from model_migration.domain import feature as fm
from model_migration.domain.commands import (
    Abort,
    CompleteStage,
    ExtendDeadline,
    MetricResult,
    ParentCommand,
    ParentCommandKind,
    Pause,
    ReportEvaluation,
    ReportRollout,
    Resume,
    Verdict,
)
from model_migration.domain.deadlines import StagePlan, plan_due_dates
from model_migration.domain.errors import CommandRejected, ErrorType
from model_migration.domain.escalation import DEFAULT_LADDER, EscalationKind, next_escalation
from model_migration.domain.stages import FEATURE_MOVES, FEATURE_STAGES, FeatureStage, semver_greater

S = FeatureStage
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FEATURE = load_catalog().feature("duo_chat")
METRIC = MetricResult(name="correctness", baseline=3.0, candidate=3.2)

#: Written out by hand, so that a move silently added to or dropped from the table fails here.
EXPECTED_MOVES = {
    (S.IMPLEMENT, S.EVALUATE), (S.EVALUATE, S.ROLLOUT), (S.EVALUATE, S.IMPLEMENT), (S.ROLLOUT, S.CLEANUP),
    (S.CLEANUP, S.DONE), (S.IMPLEMENT, S.ABORTED), (S.EVALUATE, S.ABORTED), (S.ROLLOUT, S.ABORTED),
    (S.CLEANUP, S.ABORTED),
    (S.ROLLOUT, S.IMPLEMENT), (S.IMPLEMENT, S.ROLLOUT),  # the engine's rollback and its retry (revision 5)
}


def state(stage: S = S.IMPLEMENT, revision: int = 3, **update: object) -> fm.FeatureState:
    s = fm.initial(FEATURE, DEFAULT_LADDER, plan_due_dates(NOW, StagePlan()), revision)
    return s.model_copy(update={"stage": stage, **update})


def refused(s: fm.FeatureState, command: fm.Command) -> str:
    with pytest.raises(CommandRejected) as info:
        fm.decide(s, command, NOW)
    assert info.value.type == ErrorType.COMMAND_REJECTED
    assert "\n" not in info.value.message
    return info.value.message


def kinds(d: fm.Decision) -> list[str]:
    return [e.kind for e in d.effects]


# --- the moves table ---------------------------------------------------------------------------


def test_moves_table_is_exactly_the_expected_set() -> None:
    """FEATURE_MOVES holds exactly the hand-written moves."""
    assert set(FEATURE_MOVES) == EXPECTED_MOVES


@pytest.mark.parametrize(("command", "before", "after"), [
    (CompleteStage(stage=S.IMPLEMENT, actor="a", prompt_version="1.0.0-dev"), S.IMPLEMENT, S.EVALUATE),
    (ReportEvaluation(actor="a", verdict=Verdict.PASS, metrics=(METRIC,)), S.EVALUATE, S.ROLLOUT),
    (ReportEvaluation(actor="a", verdict=Verdict.FAIL), S.EVALUATE, S.IMPLEMENT),
    (ReportRollout(actor="a", percentage=100), S.ROLLOUT, S.CLEANUP),
    (CompleteStage(stage=S.CLEANUP, actor="a"), S.CLEANUP, S.DONE),
] + [(Abort(actor="a", reason="gone"), s, S.ABORTED) for s in FEATURE_STAGES], ids=lambda v: str(v)[:30])
def test_each_move_records_one_transition_note_and_publishes(command: fm.Command, before: S, after: S) -> None:
    """Each allowed move changes the stage, records the transition, and asks for one note and an upsert."""
    d = fm.decide(state(before), command, NOW)
    assert (before, after) in EXPECTED_MOVES
    assert d.state.stage == after
    assert d.state.history[-1].from_stage == before and d.state.history[-1].to_stage == after
    assert kinds(d) == ["note", "publish", "tell_parent"]
    note = d.effects[0]
    assert isinstance(note, fm.Note) and f"**{before} → {after}**" in note.body
    assert (note.due_date is None) == after.terminal
    assert note.close == after.terminal  # the last note closes the issue


def test_older_revisions_close_the_issue_separately() -> None:
    """Before revision 3 the last note does not close the issue; the run loop sends an update."""
    d = fm.decide(state(S.CLEANUP, revision=2), CompleteStage(stage=S.CLEANUP, actor="a"), NOW)
    assert isinstance(d.effects[0], fm.Note) and not d.effects[0].close


def test_a_move_removes_the_escalation_labels_it_added() -> None:
    """Moving on takes off the priority labels the stage's escalations put on."""
    d = fm.decide(state(S.CLEANUP, labels_added=("priority::2",)), CompleteStage(stage=S.CLEANUP, actor="a"), NOW)
    note = d.effects[0]
    assert isinstance(note, fm.Note) and note.remove_labels == ("priority::2",)
    assert d.state.labels_added == ()


# --- complete_stage ------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "stage", "reason"), [
    (S.IMPLEMENT, S.EVALUATE, "cannot complete evaluate: the feature is in implement"),
    (S.EVALUATE, S.EVALUATE, "evaluate ends through report_evaluation, not complete_stage"),
    (S.ROLLOUT, S.ROLLOUT, "rollout ends through report_rollout with 100, not complete_stage"),
    (S.DONE, S.CLEANUP, "the workflow is already done; nothing more can change"),
    (S.ABORTED, S.IMPLEMENT, "the workflow is already aborted; nothing more can change"),
])
def test_complete_stage_refusals(current: S, stage: S, reason: str) -> None:
    """complete_stage names the stage the feature is in and how that stage ends."""
    assert refused(state(current), CompleteStage(stage=stage, actor="a", prompt_version="1.0.0")) == reason


@pytest.mark.parametrize(("version", "flag", "reason"), [
    (None, None, "completing implement needs the new prompt version (semver)"),
    ("v2", None, "prompt version 'v2' is not semver (e.g. 1.0.0-dev)"),
    ("1.0.0", "Bad Flag", "flag name 'Bad Flag' is not a valid feature flag name"),
])
def test_implement_needs_a_semver_prompt_and_a_valid_flag(version: str | None, flag: str | None, reason: str) -> None:
    """Implement ends with a semver prompt version and, if given, a valid flag name."""
    assert refused(state(), CompleteStage(stage=S.IMPLEMENT, actor="a", prompt_version=version, flag_name=flag)) == reason


@pytest.mark.parametrize(("failed", "next_version", "ok"), [
    ("1.0.0-dev", "1.0.0-dev", False), ("1.0.0-dev", "1.0.0-alpha", False), ("1.0.1", "1.0.0", False),
    ("1.0.0-dev", "1.0.0-dev.1", True), ("1.0.0-dev", "1.0.0", True), ("1.0.0", "1.0.1-dev", True),
    ("1.0.0+build.1", "1.0.0+build.2", False),
])
def test_after_a_failed_evaluation_the_prompt_version_must_be_higher(failed: str, next_version: str, ok: bool) -> None:
    """The prompt version after a failed gate is strictly higher by semver precedence."""
    s = state(failed_prompt_version=failed)
    cmd = CompleteStage(stage=S.IMPLEMENT, actor="a", prompt_version=next_version)
    assert ok == semver_greater(next_version, failed)
    if ok:
        assert fm.decide(s, cmd, NOW).state.prompt_version == next_version
    else:
        assert f"is not higher than {failed}" in refused(s, cmd)


def test_a_failed_evaluation_remembers_the_failed_prompt_version() -> None:
    """A fail verdict keeps the prompt version that failed, for the next implement to beat."""
    s = state(S.EVALUATE, prompt_version="1.0.0-dev")
    d = fm.decide(s, ReportEvaluation(actor="a", verdict=Verdict.FAIL), NOW)
    assert d.state.failed_prompt_version == "1.0.0-dev"
    assert "A new prompt version is needed." in d.effects[0].body  # type: ignore[union-attr]


def test_older_revisions_keep_the_looser_rules() -> None:
    """A run started before revision 3 accepts what its validator accepted then."""
    s = state(S.EVALUATE, revision=2, failed_prompt_version="1.0.0")
    assert fm.decide(s, ReportEvaluation(actor="", verdict=Verdict.PASS), NOW).state.stage == S.ROLLOUT
    s = state(S.IMPLEMENT, revision=2, failed_prompt_version="1.0.0")
    assert fm.decide(s, CompleteStage(stage=S.IMPLEMENT, actor="a", prompt_version="0.1.0"), NOW).state.stage == S.EVALUATE


# --- report_evaluation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("cmd", "reason"), [
    (ReportEvaluation(actor="a", verdict=Verdict.PASS), "a passing evaluation needs its metrics"),
    (ReportEvaluation(actor="a", verdict=Verdict.FAIL, url="ftp://x/y"), "evaluation link 'ftp://x/y' is not an http(s) URL"),
    (ReportEvaluation(actor="a", verdict=Verdict.FAIL, url="javascript:alert(1)"), "is not an http(s) URL"),
    (ReportEvaluation(actor=" ", verdict=Verdict.FAIL), "actor is empty"),
])
def test_report_evaluation_refusals(cmd: ReportEvaluation, reason: str) -> None:
    """A pass needs metrics, a link must be http(s), and somebody must send it."""
    assert reason in refused(state(S.EVALUATE), cmd)


def test_inconclusive_stays_in_evaluate_with_one_note() -> None:
    """An inconclusive evaluation is recorded and noted; the feature stays in evaluate."""
    d = fm.decide(state(S.EVALUATE), ReportEvaluation(actor="a", verdict=Verdict.INCONCLUSIVE, metrics=(METRIC,)), NOW)
    assert d.state.stage == S.EVALUATE and len(d.state.evaluations) == 1
    assert kinds(d) == ["note", "tell_parent"]
    assert "| correctness | 3 | 3.2 |" in d.effects[0].body  # type: ignore[union-attr]


@pytest.mark.parametrize("current", [S.IMPLEMENT, S.ROLLOUT, S.CLEANUP])
def test_report_evaluation_only_in_evaluate(current: S) -> None:
    """An evaluation is refused outside evaluate, naming the stage."""
    cmd = ReportEvaluation(actor="a", verdict=Verdict.PASS, metrics=(METRIC,))
    assert refused(state(current), cmd) == f"cannot report an evaluation: the feature is in {current}"


# --- report_rollout -----------------------------------------------------------------------------------


def _at(percentage: int) -> fm.FeatureState:
    s = state(S.ROLLOUT)
    return fm.decide(s, ReportRollout(actor="a", percentage=percentage), NOW).state if percentage else s


@pytest.mark.parametrize(("current", "cmd", "reason"), [
    (50, ReportRollout(actor="a", percentage=50), "the flag is already at 50 %; nothing to record"),
    (50, ReportRollout(actor="a", percentage=25), "percentage 25 is below the current 50"),
    (50, ReportRollout(actor="a", percentage=75, rollback=True), "a rollback must lower the percentage below the current 50"),
    (0, ReportRollout(actor="a", percentage=101), "percentage 101 is outside 0..100"),
    (0, ReportRollout(actor="a", percentage=-1), "percentage -1 is outside 0..100"),
])
def test_report_rollout_refusals(current: int, cmd: ReportRollout, reason: str) -> None:
    """The same percentage twice, a silent lowering, a rollback upwards and out-of-range values are refused."""
    assert reason in refused(_at(current), cmd)


def test_rollout_steps_and_rollback_are_noted_without_moving() -> None:
    """Steps below 100 and rollbacks are recorded with a note; the stage stays rollout."""
    s = _at(50)
    d = fm.decide(s, ReportRollout(actor="a", percentage=0, rollback=True), NOW)
    assert d.state.stage == S.ROLLOUT and d.state.percentage == 0 and d.state.rollout[-1].rollback
    assert kinds(d) == ["note", "tell_parent"] and "Rolled back" in d.effects[0].body  # type: ignore[union-attr]


# --- pause, resume, abort, extend ---------------------------------------------------------------------


def test_pause_then_resume_shifts_the_deadlines_by_the_pause() -> None:
    """The clock stops while paused: resume moves the open deadlines by the time spent paused."""
    s = fm.decide(state(), Pause(actor="a", reason="quota"), NOW).state
    assert s.paused
    assert refused(s, Pause(actor="a")) == "the workflow is already paused"
    assert refused(s, CompleteStage(stage=S.IMPLEMENT, actor="a", prompt_version="1.0.0")) == "the workflow is paused; resume it first"
    later = NOW + timedelta(days=2)
    d = fm.decide(s, Resume(actor="a"), later)
    assert not d.state.paused
    assert d.state.deadlines[S.IMPLEMENT] == s.deadlines[S.IMPLEMENT] + timedelta(days=2)
    assert kinds(d) == ["publish", "note", "tell_parent"]
    assert refused(d.state, Resume(actor="a")) == "the workflow is not paused"


def test_blocked_feature_takes_no_stage_commands_until_resumed() -> None:
    """While GitLab blocks the feature, stage commands are refused; resume clears the block."""
    s = fm.decide(state(S.EVALUATE), fm.Block(reason="GitLab: 403"), NOW).state
    assert "blocked" in refused(s, ReportEvaluation(actor="a", verdict=Verdict.FAIL))
    assert fm.decide(s, Resume(actor="a"), NOW).state.blocked == ""


def test_abort_needs_a_reason_and_ends_everything() -> None:
    """An abort needs a reason; afterwards nothing more is taken."""
    assert refused(state(), Abort(actor="a", reason="  ")) == "an abort needs a reason"
    s = fm.decide(state(), Abort(actor="a", reason="retired"), NOW).state
    assert s.stage == S.ABORTED and s.outcome == "aborted: retired"
    assert refused(s, Pause(actor="a")) == "the workflow is already aborted; nothing more can change"


def test_extend_deadline_moves_later_stages_and_resets_escalations() -> None:
    """Extending the current stage shifts it and the later ones, resets escalation, and notes the reason."""
    s = state(escalation=fm.EscalationState(level=1, occurrence=0))
    new = s.deadlines[S.IMPLEMENT] + timedelta(days=3)
    d = fm.decide(s, ExtendDeadline(actor="a", stage=S.IMPLEMENT, new_date=new, reason="freeze"), NOW)
    assert d.state.deadlines[S.CLEANUP] == s.deadlines[S.CLEANUP] + timedelta(days=3)
    assert d.state.escalation == fm.EscalationState() and d.state.extended == {S.IMPLEMENT: "freeze"}
    assert kinds(d) == ["note", "publish", "tell_parent"]
    assert refused(s, ExtendDeadline(actor="a", stage=S.IMPLEMENT, new_date=new, reason=" ")) == "extending a deadline needs a reason"


# --- machine events ------------------------------------------------------------------------------------


def test_escalation_adds_its_label_and_records_the_firing() -> None:
    """A due escalation posts one note with its label and counts as fired."""
    s = state()
    planned = next_escalation(s.due(), s.ladder, s.escalation, s.due())
    assert planned is not None and planned.kind == EscalationKind.DUE
    d = fm.decide(s, fm.Escalate(planned=planned), s.due())
    assert d.state.fired[-1].kind == EscalationKind.DUE and d.state.labels_added == ("priority::2",)
    note = d.effects[0]
    assert isinstance(note, fm.Note) and note.add_labels == ("priority::2",)


@pytest.mark.parametrize(("kind", "paused", "stage"), [
    (ParentCommandKind.PAUSE, True, S.IMPLEMENT), (ParentCommandKind.ABORT, False, S.ABORTED),
])
def test_parent_commands_apply_when_they_fit(kind: ParentCommandKind, paused: bool, stage: S) -> None:
    """The parent's pause and abort reach the feature."""
    d = fm.decide(state(), ParentCommand(kind=kind, actor="lead", reason="x"), NOW)
    assert d.state.paused == paused and d.state.stage == stage


def test_parent_commands_that_do_not_fit_change_nothing() -> None:
    """A resume to a running feature, or anything to a finished one, is no change at all."""
    s = state()
    assert fm.decide(s, ParentCommand(kind=ParentCommandKind.RESUME, actor="lead"), NOW) == fm.Decision(state=s)
    done = state(S.DONE)
    assert fm.decide(done, ParentCommand(kind=ParentCommandKind.ABORT, actor="lead"), NOW) == fm.Decision(state=done)


def test_decide_is_pure() -> None:
    """The same state, command and time give the same decision, and the input state is untouched."""
    s = state(S.ROLLOUT)
    cmd = ReportRollout(actor="a", percentage=10)
    assert fm.decide(s, cmd, NOW) == fm.decide(s, cmd, NOW)
    assert s.rollout == ()
