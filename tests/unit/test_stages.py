"""The stage machine: allowed moves and the rules behind every human command."""

from __future__ import annotations

import itertools

import pytest

from model_migration.domain.errors import CommandRejected, ErrorType
from model_migration.domain.stages import (
    COMPLETABLE,
    FEATURE_MOVES,
    FEATURE_STAGES,
    MIGRATION_MOVES,
    TERMINAL,
    Stage,
    check_abort,
    check_complete_stage,
    check_move,
    check_pause,
    check_report_evaluation,
    check_report_rollout,
    check_resume,
    is_semver,
    next_feature_stage,
)

S = Stage

# Written out by hand so that a move silently added to or dropped from the source fails here.
EXPECTED_FEATURE_MOVES = {
    (S.IMPLEMENT, S.EVALUATE),
    (S.EVALUATE, S.ROLLOUT),
    (S.EVALUATE, S.IMPLEMENT),
    (S.ROLLOUT, S.CLEANUP),
    (S.CLEANUP, S.DONE),
    (S.IMPLEMENT, S.ABORTED),
    (S.EVALUATE, S.ABORTED),
    (S.ROLLOUT, S.ABORTED),
    (S.CLEANUP, S.ABORTED),
}
EXPECTED_MIGRATION_MOVES = {
    (S.INIT, S.FEATURES),
    (S.INIT, S.FAILED),
    (S.FEATURES, S.CLEANUP),
    (S.CLEANUP, S.DONE),
    (S.INIT, S.ABORTED),
    (S.FEATURES, S.ABORTED),
}

ALL_PAIRS = list(itertools.product(Stage, Stage))
ACTIVE = [s for s in Stage if s not in TERMINAL]
TERMINALS = sorted(TERMINAL)
FEATURE_ACTIVE = list(FEATURE_STAGES)


def _rejected(call, *args, **kwargs) -> str:
    with pytest.raises(CommandRejected) as info:
        call(*args, **kwargs)
    return str(info.value)


def _pair_id(pair: tuple[Stage, Stage]) -> str:
    return f"{pair[0]}->{pair[1]}"


# --- the move tables -------------------------------------------------------------------------


def test_feature_moves_table_is_exactly_the_expected_set() -> None:
    """FEATURE_MOVES holds exactly the hand-written feature moves."""
    assert set(FEATURE_MOVES) == EXPECTED_FEATURE_MOVES


def test_migration_moves_table_is_exactly_the_expected_set() -> None:
    """MIGRATION_MOVES holds exactly the hand-written parent moves."""
    assert set(MIGRATION_MOVES) == EXPECTED_MIGRATION_MOVES


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
def test_feature_check_move_over_every_pair(pair: tuple[Stage, Stage]) -> None:
    """A feature move passes exactly when it is in the allowed set; every other pair is refused by name."""
    current, target = pair
    if pair in EXPECTED_FEATURE_MOVES:
        assert check_move(current, target) is None
    else:
        assert _rejected(check_move, current, target) == f"cannot move from {current} to {target}"


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
def test_parent_check_move_over_every_pair(pair: tuple[Stage, Stage]) -> None:
    """A parent move passes exactly when it is in the allowed set; every other pair is refused by name."""
    current, target = pair
    if pair in EXPECTED_MIGRATION_MOVES:
        assert check_move(current, target, parent=True) is None
    else:
        message = _rejected(check_move, current, target, parent=True)
        assert message == f"cannot move from {current} to {target}"


def test_check_move_parent_flag_selects_the_table() -> None:
    """The same pair is judged by the feature table or the parent table depending on ``parent``."""
    check_move(S.INIT, S.FEATURES, parent=True)
    with pytest.raises(CommandRejected):
        check_move(S.INIT, S.FEATURES)
    check_move(S.IMPLEMENT, S.EVALUATE)
    with pytest.raises(CommandRejected):
        check_move(S.IMPLEMENT, S.EVALUATE, parent=True)


def test_rejections_carry_the_command_rejected_type() -> None:
    """A refused move is a CommandRejected with the non-retryable COMMAND_REJECTED type."""
    with pytest.raises(CommandRejected) as info:
        check_move(S.DONE, S.IMPLEMENT)
    assert info.value.type == ErrorType.COMMAND_REJECTED
    assert info.value.message == "cannot move from done to implement"


@pytest.mark.parametrize("target", list(Stage), ids=str)
@pytest.mark.parametrize("terminal", TERMINALS, ids=str)
@pytest.mark.parametrize("parent", [False, True], ids=["feature", "parent"])
def test_terminal_stages_never_move(terminal: Stage, target: Stage, parent: bool) -> None:
    """No move leaves a terminal stage, in either machine."""
    with pytest.raises(CommandRejected):
        check_move(terminal, target, parent=parent)


# --- stage order -----------------------------------------------------------------------------


def test_feature_stage_order() -> None:
    """Feature stages run implement, evaluate, rollout, cleanup."""
    assert FEATURE_STAGES == (S.IMPLEMENT, S.EVALUATE, S.ROLLOUT, S.CLEANUP)


@pytest.mark.parametrize(
    ("current", "expected"),
    [(S.IMPLEMENT, S.EVALUATE), (S.EVALUATE, S.ROLLOUT), (S.ROLLOUT, S.CLEANUP), (S.CLEANUP, S.DONE)],
    ids=str,
)
def test_next_feature_stage(current: Stage, expected: Stage) -> None:
    """Each feature stage is followed by the next one, and cleanup by done; the move is allowed."""
    assert next_feature_stage(current) == expected
    check_move(current, expected)


@pytest.mark.parametrize("stage", list(Stage), ids=str)
def test_terminal_property(stage: Stage) -> None:
    """Only done, aborted and failed are terminal."""
    assert stage.terminal is (stage in {S.DONE, S.ABORTED, S.FAILED})


def test_completable_stages() -> None:
    """Only implement and cleanup are completed with complete_stage."""
    assert COMPLETABLE == {S.IMPLEMENT, S.CLEANUP}


# --- complete_stage --------------------------------------------------------------------------

VALID_SEMVER = [
    "0.0.0",
    "1.0.0",
    "1.0.0-dev",
    "2.10.3",
    "10.20.30",
    "1.0.0-dev.1+build.5",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-0.3.7",
    "1.0.0-x.7.z.92",
    "1.0.0+20130313144700",
    "1.0.0-beta+exp.sha.5114f85",
    "1.0.0-rc-1",
]
INVALID_SEMVER = [
    "v1.0.0",
    "1.0",
    "1",
    "01.0.0",
    "1.01.0",
    "1.0.01",
    "1.0.0-",
    "1.0.0-01",
    "1.0.0+",
    "1.0.0-dev..1",
    "1.0.0 ",
    " 1.0.0",
    "1.0.0.0",
    "a.b.c",
    "latest",
]


@pytest.mark.parametrize("version", VALID_SEMVER)
def test_is_semver_accepts(version: str) -> None:
    """Valid semantic versions, with pre-release and build parts, are recognised."""
    assert is_semver(version)


@pytest.mark.parametrize("version", INVALID_SEMVER)
def test_is_semver_refuses(version: str) -> None:
    """Prefixed, short, zero-padded and malformed versions are not semver."""
    assert not is_semver(version)


def test_is_semver_refuses_trailing_newline() -> None:
    """A version with a trailing newline is not semver."""
    assert not is_semver("1.0.0\n")


def test_complete_implement_refuses_flag_with_trailing_newline() -> None:
    """A flag name with a trailing newline is refused."""
    with pytest.raises(CommandRejected):
        check_complete_stage(S.IMPLEMENT, S.IMPLEMENT, paused=False, prompt_version="1.0.0", flag_name="flag\n")


@pytest.mark.parametrize("version", VALID_SEMVER)
def test_complete_implement_with_valid_version(version: str) -> None:
    """Implement completes with any valid semver prompt version."""
    assert check_complete_stage(S.IMPLEMENT, S.IMPLEMENT, paused=False, prompt_version=version) is None


@pytest.mark.parametrize("version", INVALID_SEMVER)
def test_complete_implement_refuses_non_semver(version: str) -> None:
    """A non-semver prompt version is refused, quoting it and showing an example."""
    message = _rejected(check_complete_stage, S.IMPLEMENT, S.IMPLEMENT, paused=False, prompt_version=version)
    assert message == f"prompt version {version!r} is not semver (e.g. 1.0.0-dev)"


@pytest.mark.parametrize("version", [None, ""])
def test_complete_implement_needs_a_version(version: str | None) -> None:
    """Completing implement without a prompt version is refused."""
    message = _rejected(check_complete_stage, S.IMPLEMENT, S.IMPLEMENT, paused=False, prompt_version=version)
    assert message == "completing implement needs the new prompt version (semver)"


@pytest.mark.parametrize(
    "flag", ["ab", "duo_chat_claude_sonnet_4_5", "a1", "a_", "a" + "b" * 254], ids=lambda f: f[:30]
)
def test_complete_implement_with_valid_flag(flag: str) -> None:
    """Lower-case flag names of 2 to 255 characters are accepted."""
    check_complete_stage(S.IMPLEMENT, S.IMPLEMENT, paused=False, prompt_version="1.0.0", flag_name=flag)


@pytest.mark.parametrize(
    "flag",
    ["", "a", "Flag", "1flag", "_flag", "flag-name", "flag name", "flag.name", "flägg", "a" + "b" * 255],
    ids=lambda f: f[:30] or "empty",
)
def test_complete_implement_refuses_bad_flag(flag: str) -> None:
    """A malformed flag name is refused, quoting it."""
    message = _rejected(
        check_complete_stage, S.IMPLEMENT, S.IMPLEMENT, paused=False, prompt_version="1.0.0", flag_name=flag
    )
    assert message == f"flag name {flag!r} is not a valid feature flag name"


def test_complete_implement_version_checked_before_flag() -> None:
    """With both a bad version and a bad flag, the version is reported."""
    message = _rejected(
        check_complete_stage, S.IMPLEMENT, S.IMPLEMENT, paused=False, prompt_version="v1", flag_name="Bad"
    )
    assert message == "prompt version 'v1' is not semver (e.g. 1.0.0-dev)"


def test_complete_cleanup_needs_no_version() -> None:
    """Cleanup completes without a prompt version."""
    assert check_complete_stage(S.CLEANUP, S.CLEANUP, paused=False) is None


@pytest.mark.parametrize(
    ("current", "stage"),
    [(S.IMPLEMENT, S.CLEANUP), (S.CLEANUP, S.IMPLEMENT), (S.EVALUATE, S.IMPLEMENT), (S.ROLLOUT, S.CLEANUP)],
    ids=_pair_id,
)
def test_complete_wrong_stage(current: Stage, stage: Stage) -> None:
    """Completing a stage the feature is not in is refused, naming both stages."""
    message = _rejected(check_complete_stage, current, stage, paused=False, prompt_version="1.0.0")
    assert message == f"cannot complete {stage}: the feature is in {current}"


def test_complete_evaluate_points_to_report_evaluation() -> None:
    """Evaluate cannot be completed by hand; the message names report_evaluation."""
    message = _rejected(check_complete_stage, S.EVALUATE, S.EVALUATE, paused=False)
    assert message == "evaluate ends through report_evaluation, not complete_stage"


def test_complete_rollout_points_to_report_rollout() -> None:
    """Rollout cannot be completed by hand; the message names report_rollout with 100."""
    message = _rejected(check_complete_stage, S.ROLLOUT, S.ROLLOUT, paused=False)
    assert message == "rollout ends through report_rollout with 100, not complete_stage"


@pytest.mark.parametrize("stage", FEATURE_ACTIVE, ids=str)
def test_complete_while_paused(stage: Stage) -> None:
    """Nothing completes while the workflow is paused."""
    message = _rejected(check_complete_stage, stage, stage, paused=True, prompt_version="1.0.0")
    assert message == "the workflow is paused; resume it first"


@pytest.mark.parametrize("terminal", TERMINALS, ids=str)
def test_complete_when_terminal(terminal: Stage) -> None:
    """Nothing completes once the workflow has ended, even if also paused."""
    for paused in (False, True):
        message = _rejected(check_complete_stage, terminal, S.IMPLEMENT, paused=paused, prompt_version="1.0.0")
        assert message == f"the workflow is already {terminal}; nothing more can change"


def test_complete_paused_reported_before_wrong_stage() -> None:
    """A paused workflow says so before complaining about the stage."""
    message = _rejected(check_complete_stage, S.IMPLEMENT, S.CLEANUP, paused=True)
    assert message == "the workflow is paused; resume it first"


# --- report_evaluation -----------------------------------------------------------------------


def test_report_evaluation_in_evaluate() -> None:
    """An evaluation can be reported in the evaluate stage."""
    assert check_report_evaluation(S.EVALUATE, paused=False) is None


@pytest.mark.parametrize("stage", [s for s in ACTIVE if s != S.EVALUATE], ids=str)
def test_report_evaluation_outside_evaluate(stage: Stage) -> None:
    """An evaluation outside the evaluate stage is refused, naming the stage."""
    message = _rejected(check_report_evaluation, stage, paused=False)
    assert message == f"cannot report an evaluation: the feature is in {stage}"


def test_report_evaluation_paused() -> None:
    """An evaluation is refused while paused."""
    assert _rejected(check_report_evaluation, S.EVALUATE, paused=True) == "the workflow is paused; resume it first"


@pytest.mark.parametrize("terminal", TERMINALS, ids=str)
def test_report_evaluation_terminal(terminal: Stage) -> None:
    """An evaluation is refused once the workflow has ended."""
    message = _rejected(check_report_evaluation, terminal, paused=False)
    assert message == f"the workflow is already {terminal}; nothing more can change"


# --- report_rollout --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percentage", "current"),
    [(0, 0), (1, 0), (50, 0), (100, 0), (50, 50), (75, 50), (100, 99), (100, 100)],
)
def test_report_rollout_forward(percentage: int, current: int) -> None:
    """Holding or raising the percentage within 0..100 is accepted."""
    assert check_report_rollout(S.ROLLOUT, percentage, current, paused=False) is None


@pytest.mark.parametrize("percentage", [-1, -100, 101, 1000])
@pytest.mark.parametrize("rollback", [False, True])
def test_report_rollout_out_of_range(percentage: int, rollback: bool) -> None:
    """A percentage outside 0..100 is refused, rollback or not."""
    message = _rejected(check_report_rollout, S.ROLLOUT, percentage, 50, paused=False, rollback=rollback)
    assert message == f"percentage {percentage} is outside 0..100"


@pytest.mark.parametrize(("percentage", "current"), [(25, 50), (0, 1), (99, 100), (0, 100)])
def test_report_rollout_down_without_rollback(percentage: int, current: int) -> None:
    """Going down without saying rollback is refused with a hint to report a rollback."""
    message = _rejected(check_report_rollout, S.ROLLOUT, percentage, current, paused=False)
    assert message == (
        f"percentage {percentage} is below the current {current}; "
        "report it as a rollback if that is intended"
    )


@pytest.mark.parametrize(("percentage", "current"), [(25, 50), (0, 50), (0, 1), (99, 100), (0, 100)])
def test_report_rollout_rollback_down(percentage: int, current: int) -> None:
    """A rollback that lowers the percentage is accepted."""
    assert check_report_rollout(S.ROLLOUT, percentage, current, paused=False, rollback=True) is None


@pytest.mark.parametrize(("percentage", "current"), [(50, 50), (75, 50), (100, 50), (1, 1), (100, 100)])
def test_report_rollout_rollback_must_go_down(percentage: int, current: int) -> None:
    """A rollback that does not lower the percentage is refused."""
    message = _rejected(check_report_rollout, S.ROLLOUT, percentage, current, paused=False, rollback=True)
    assert message == f"a rollback must lower the percentage below the current {current}"


def test_report_rollout_rollback_from_zero_cannot_raise() -> None:
    """A rollback from 0 % must not raise the percentage."""
    with pytest.raises(CommandRejected):
        check_report_rollout(S.ROLLOUT, 50, 0, paused=False, rollback=True)


@pytest.mark.parametrize("stage", [s for s in ACTIVE if s != S.ROLLOUT], ids=str)
def test_report_rollout_outside_rollout(stage: Stage) -> None:
    """A rollout report outside the rollout stage is refused, naming the stage."""
    message = _rejected(check_report_rollout, stage, 50, 0, paused=False)
    assert message == f"cannot report a rollout: the feature is in {stage}"


def test_report_rollout_stage_checked_before_range() -> None:
    """The stage is checked before the percentage."""
    message = _rejected(check_report_rollout, S.EVALUATE, 500, 0, paused=False)
    assert message == "cannot report a rollout: the feature is in evaluate"


def test_report_rollout_paused() -> None:
    """A rollout report is refused while paused."""
    message = _rejected(check_report_rollout, S.ROLLOUT, 50, 0, paused=True)
    assert message == "the workflow is paused; resume it first"


@pytest.mark.parametrize("terminal", TERMINALS, ids=str)
def test_report_rollout_terminal(terminal: Stage) -> None:
    """A rollout report is refused once the workflow has ended."""
    message = _rejected(check_report_rollout, terminal, 50, 0, paused=False)
    assert message == f"the workflow is already {terminal}; nothing more can change"


# --- pause, resume, abort --------------------------------------------------------------------


@pytest.mark.parametrize("stage", ACTIVE, ids=str)
def test_pause_active(stage: Stage) -> None:
    """Any running stage, parent or feature, can be paused."""
    assert check_pause(stage, paused=False) is None


@pytest.mark.parametrize("stage", ACTIVE, ids=str)
def test_pause_twice(stage: Stage) -> None:
    """Pausing a paused workflow is refused."""
    assert _rejected(check_pause, stage, True) == "the workflow is already paused"


@pytest.mark.parametrize("terminal", TERMINALS, ids=str)
@pytest.mark.parametrize("paused", [False, True])
def test_pause_terminal(terminal: Stage, paused: bool) -> None:
    """An ended workflow cannot be paused."""
    assert _rejected(check_pause, terminal, paused) == f"the workflow is already {terminal}"


@pytest.mark.parametrize("stage", ACTIVE, ids=str)
def test_resume_paused(stage: Stage) -> None:
    """A paused running workflow can be resumed."""
    assert check_resume(stage, paused=True) is None


@pytest.mark.parametrize("stage", ACTIVE, ids=str)
def test_resume_not_paused(stage: Stage) -> None:
    """Resuming a workflow that is not paused is refused."""
    assert _rejected(check_resume, stage, False) == "the workflow is not paused"


@pytest.mark.parametrize("terminal", TERMINALS, ids=str)
@pytest.mark.parametrize("paused", [False, True])
def test_resume_terminal(terminal: Stage, paused: bool) -> None:
    """An ended workflow cannot be resumed."""
    assert _rejected(check_resume, terminal, paused) == f"the workflow is already {terminal}"


@pytest.mark.parametrize("stage", ACTIVE, ids=str)
def test_abort_with_reason(stage: Stage) -> None:
    """Any running stage can be aborted with a reason."""
    assert check_abort(stage, "model withdrawn by provider") is None


@pytest.mark.parametrize("reason", ["", " ", "\t\n  "], ids=["empty", "space", "whitespace"])
def test_abort_needs_reason(reason: str) -> None:
    """An abort without a reason (or only whitespace) is refused."""
    assert _rejected(check_abort, S.ROLLOUT, reason) == "an abort needs a reason"


@pytest.mark.parametrize("terminal", TERMINALS, ids=str)
def test_abort_terminal(terminal: Stage) -> None:
    """An ended workflow cannot be aborted, and that is said before the missing reason."""
    assert _rejected(check_abort, terminal, "") == f"the workflow is already {terminal}"
    assert _rejected(check_abort, terminal, "because") == f"the workflow is already {terminal}"
