"""The migration stage machine: its moves, its four human commands and what it forwards."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from model_migration.domain import migration as mm
from model_migration.domain.commands import Abort, CompleteStage, ParentCommandKind, Pause, Resume
from model_migration.domain.errors import CommandRejected
from model_migration.domain.stages import MIGRATION_MOVES, FeatureStage, MigrationStage

M = MigrationStage
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EXPECTED_MOVES = {
    (M.INIT, M.FEATURES), (M.INIT, M.FAILED), (M.FEATURES, M.CLEANUP), (M.CLEANUP, M.DONE),
    (M.INIT, M.ABORTED), (M.FEATURES, M.ABORTED),
}


def state(stage: M = M.INIT, **update: object) -> mm.MigrationState:
    return mm.MigrationState(revision=3, stage=stage, **update)  # type: ignore[arg-type]


def refused(s: mm.MigrationState, command: mm.Command) -> str:
    with pytest.raises(CommandRejected) as info:
        mm.decide(s, command, NOW)
    return info.value.message


def test_moves_table_is_exactly_the_expected_set() -> None:
    """MIGRATION_MOVES holds exactly the hand-written moves."""
    assert set(MIGRATION_MOVES) == EXPECTED_MOVES


@pytest.mark.parametrize("pair", list(itertools.product(M, M)), ids=lambda p: f"{p[0]}->{p[1]}")
def test_advance_over_every_pair(pair: tuple[M, M]) -> None:
    """The run loop's moves pass exactly when the table has them."""
    before, after = pair
    advance = mm.Advance(to=after, actor="model-migration")
    if pair in EXPECTED_MOVES:
        d = mm.decide(state(before), advance, NOW)
        assert d.state.stage == after and d.state.history[-1].to_stage == after
        assert [e.kind for e in d.effects] == ["publish"]
    else:
        assert refused(state(before), advance) == f"cannot move the migration from {before} to {after}"


def test_complete_init_once() -> None:
    """AI Framework completes init once; a feature's stage is sent to the feature."""
    d = mm.decide(state(), CompleteStage(stage=M.INIT, actor="lead"), NOW)
    assert d.state.init_completed_by == "lead" and d.state.stage == M.INIT
    assert "already completed by @lead" in refused(d.state, CompleteStage(stage=M.INIT, actor="other"))
    assert "send it to the feature workflow" in refused(state(), CompleteStage(stage=FeatureStage.IMPLEMENT, actor="a"))
    assert refused(state(M.FEATURES), CompleteStage(stage=M.INIT, actor="a")) == "init is already complete; the migration is in features"


def test_pause_resume_and_abort_are_forwarded_to_the_features() -> None:
    """Pause, resume and abort change the migration and go on to every open feature."""
    s = state(M.FEATURES)
    paused = mm.decide(s, Pause(actor="lead", reason="quota"), NOW)
    assert paused.state.paused
    assert [e.command.kind for e in paused.effects if isinstance(e, mm.Forward)] == [ParentCommandKind.PAUSE]
    assert refused(paused.state, Pause(actor="lead")) == "the workflow is already paused"
    resumed = mm.decide(paused.state, Resume(actor="lead"), NOW)
    assert not resumed.state.paused
    aborted = mm.decide(resumed.state, Abort(actor="lead", reason="retired"), NOW)
    assert aborted.state.stage == M.ABORTED
    assert [e.kind for e in aborted.effects] == ["forward", "publish"]


@pytest.mark.parametrize(("s", "cmd", "reason"), [
    (state(M.CLEANUP), Abort(actor="a", reason="late"), "every feature has finished; the migration is closing"),
    (state(M.FEATURES), Abort(actor="a", reason=""), "an abort needs a reason"),
    (state(M.DONE), Pause(actor="a"), "the workflow is already done; nothing more can change"),
    (state(M.FEATURES), Resume(actor="a"), "the workflow is not paused"),
    (state(M.FEATURES), Pause(actor=""), "actor is empty"),
])
def test_refusals(s: mm.MigrationState, cmd: mm.Command, reason: str) -> None:
    """Commands that do not fit are refused with one line."""
    assert reason in refused(s, cmd)


def test_block_and_unblock() -> None:
    """GitLab's refusal blocks the migration; resume or a successful step unblocks it."""
    s = mm.decide(state(), mm.Block(reason="GitLab: 403"), NOW).state
    assert s.blocked
    assert mm.decide(s, mm.Unblock(), NOW).state.blocked == ""
    assert mm.decide(s, Resume(actor="lead"), NOW).state.blocked == ""
