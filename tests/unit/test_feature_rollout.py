"""The rollout stage when the engine drives the flag (feature revision 5), without Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from model_migration.catalog import load_catalog
from model_migration.domain import feature as fm
from model_migration.domain.catalog import build_catalog
from model_migration.domain.commands import Abort, CompleteStage, ReportRollout, RetryRollout
from model_migration.domain.deadlines import StagePlan, plan_due_dates
from model_migration.domain.errors import CommandRejected
from model_migration.domain.escalation import DEFAULT_LADDER
from model_migration.domain.feature_rules import move
from model_migration.domain.feature_state import CleanupOpened, OpenCleanup, RolloutEnded, StartRollout
from model_migration.domain.rollout import LadderStep
from model_migration.domain.rollout_spec import FlagKind, RolloutOverrides, RolloutSpec
from model_migration.domain.stages import FeatureStage as S

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CATALOG = load_catalog()
DRIVEN = CATALOG.feature("duo_chat").model_copy(update={"rollout": RolloutSpec(target=FlagKind.GITLAB_INSTANCE)})


def state(stage: S = S.EVALUATE, revision: int = 5, driven: bool = True) -> fm.FeatureState:
    feature = DRIVEN if driven else CATALOG.feature("duo_chat")
    s = fm.initial(feature, DEFAULT_LADDER, plan_due_dates(NOW, StagePlan()), revision)
    return s.model_copy(update={"stage": stage, "prompt_version": "1.0.0-dev"})


def to_rollout(s: fm.FeatureState) -> fm.Decision:
    """Into rollout as the evaluation gate's pass moves a feature (every way in goes through ``move``)."""
    return move(s, S.ROLLOUT, "model-migration", NOW, "gate passed")


def rolled(s: fm.FeatureState, phase: str, failed_step: int | None = None) -> fm.Decision:
    return fm.decide(s, RolloutEnded(attempt=len(s.rollouts), phase=phase, outcome=f"{phase} at step", failed_step=failed_step,
                                     failed_label="production: 25 % of actors" if failed_step else ""), NOW + timedelta(hours=2))


def test_entering_rollout_starts_the_engines_rollout_only_for_a_driven_feature_from_revision_5() -> None:
    d = to_rollout(state())
    assert [e for e in d.effects if isinstance(e, StartRollout)] == [StartRollout(attempt=1, from_step=0)]
    assert d.state.rollouts[0].running and d.state.rollouts[0].started_at == NOW
    for s in (state(driven=False), state(revision=4)):
        plain = move(s, S.ROLLOUT, "a", NOW, "")
        assert not any(isinstance(e, StartRollout) for e in plain.effects) and plain.state.rollouts == ()


def test_report_rollout_and_completing_cleanup_are_refused_while_the_engine_drives() -> None:
    s = to_rollout(state()).state
    assert "the engine drives flag 'duo_chat_claude_sonnet_4_5'" in _refused(s, ReportRollout(actor="a", percentage=10))
    cleanup = rolled(s, "done").state
    assert cleanup.stage == S.CLEANUP
    assert "the engine cleans up" in _refused(cleanup, CompleteStage(stage=S.CLEANUP, actor="a"))
    hand = state(stage=S.ROLLOUT, driven=False)
    assert fm.decide(hand, ReportRollout(actor="a", percentage=10), NOW).state.percentage == 10


def test_a_done_rollout_moves_to_cleanup_which_ends_when_the_merge_request_is_open() -> None:
    d = rolled(to_rollout(state()).state, "done")
    assert d.state.stage == S.CLEANUP and any(isinstance(e, OpenCleanup) for e in d.effects)
    assert d.state.rollouts[0].phase == "done" and d.state.rollouts[0].ended_at is not None
    done = fm.decide(d.state, CleanupOpened(url="https://gitlab.example/mr/7"), NOW + timedelta(hours=3))
    assert done.state.stage == S.DONE and done.state.cleanup_mr == "https://gitlab.example/mr/7" and done.state.outcome == "done"
    note = next(e for e in done.effects if isinstance(e, fm.Note))
    assert note.close and "https://gitlab.example/mr/7" in note.body and "| 1 |" in note.body
    again = fm.decide(done.state, CleanupOpened(url="other"), NOW)
    assert again.state == done.state and again.effects == ()


def test_a_rollback_goes_back_to_implement_and_retry_starts_from_the_failed_step() -> None:
    s = to_rollout(state()).state
    back = rolled(s, "rolled_back", failed_step=5)
    assert back.state.stage == S.IMPLEMENT and back.state.rollouts[0].failed_step == 5
    note = next(e for e in back.effects if isinstance(e, fm.Note))
    assert "model-migration rollout retry" in note.body and "the flag is off everywhere" in note.body
    assert "" != _refused(back.state, RetryRollout(actor=""))
    retried = fm.decide(back.state, RetryRollout(actor="achen", reason="fixed the timeout"), NOW + timedelta(hours=4))
    assert retried.state.stage == S.ROLLOUT and retried.state.prompt_version == "1.0.0-dev"
    assert [e for e in retried.effects if isinstance(e, StartRollout)] == [StartRollout(attempt=2, from_step=5)]
    assert retried.message == "rollout 2 started from step 6"
    assert "still running" in _refused(retried.state, RetryRollout(actor="achen"))


def test_retry_is_refused_where_there_is_nothing_to_retry() -> None:
    assert "nothing to retry" in _refused(state(stage=S.IMPLEMENT), RetryRollout(actor="a"))
    assert "by hand" in _refused(state(stage=S.IMPLEMENT, driven=False), RetryRollout(actor="a"))
    done = rolled(to_rollout(state()).state, "done").state
    assert "nothing to retry" in _refused(done, RetryRollout(actor="a"))


def test_a_late_or_foreign_rollout_end_changes_nothing() -> None:
    s = to_rollout(state()).state
    stale = fm.decide(s, RolloutEnded(attempt=7, phase="done"), NOW)
    assert stale.state == s and stale.effects == ()
    aborted = fm.decide(s, Abort(actor="a", reason="stop"), NOW).state
    late = fm.decide(aborted, RolloutEnded(attempt=1, phase="aborted"), NOW)
    assert late.state == aborted


def test_a_failed_rollout_workflow_goes_back_to_implement_telling_to_check_the_flag() -> None:
    d = rolled(to_rollout(state()).state, "failed")
    assert d.state.stage == S.IMPLEMENT
    assert "check the flag before retrying" in next(e for e in d.effects if isinstance(e, fm.Note)).body


def test_the_catalog_refuses_a_driven_rollout_with_a_short_bake_or_an_unknown_environment() -> None:
    with pytest.raises(ValidationError, match="bake time under 15 minutes"):
        RolloutSpec(target=FlagKind.UNLEASH, bake=timedelta(minutes=5))
    with pytest.raises(ValidationError, match="not in environments: staging"):
        RolloutSpec(target=FlagKind.UNLEASH, environments=("production",))
    assert RolloutSpec(target=FlagKind.UNLEASH, environments=("production",), ladder=(LadderStep(percentage=100),)).driven
    assert not RolloutSpec(bake=timedelta(minutes=5)).driven  # by hand: the engine never bakes it


def test_run_overrides_need_the_test_flag_for_short_bakes_and_holds() -> None:
    with pytest.raises(ValidationError, match="mark the run as a test or demo run"):
        RolloutOverrides(bake=timedelta(seconds=5))
    with pytest.raises(ValidationError, match="test or demo run"):
        RolloutOverrides(hold=timedelta(minutes=1))
    quick = RolloutOverrides(bake=timedelta(seconds=5), hold=timedelta(seconds=2), test_run=True)
    spec = RolloutSpec(target=FlagKind.GITLAB_INSTANCE)
    assert {s.bake for s in spec.steps(quick)} == {timedelta(seconds=5)} and len(spec.steps(quick)) == 9


def test_a_catalog_entry_names_its_rollout() -> None:
    models = [m.model_dump(mode="json") for m in CATALOG.models]
    entry = CATALOG.feature("duo_chat").model_dump(mode="json", exclude={"evaluation", "rollout"})
    built = build_catalog(models, [{**entry, "rollout": {"target": "unleash", "bake": "PT20M"}}])
    assert built.features[0].rollout.target == FlagKind.UNLEASH
    with pytest.raises(Exception, match="rollout.targte"):
        build_catalog(models, [{**entry, "rollout": {"targte": "unleash"}}])


def _refused(s: fm.FeatureState, command: fm.Command) -> str:
    with pytest.raises(CommandRejected) as info:
        fm.decide(s, command, NOW)
    return info.value.message


def test_a_catalog_hold_under_a_day_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 1 day"):
        RolloutSpec(target=FlagKind.GITLAB_INSTANCE, hold=timedelta(hours=2))
