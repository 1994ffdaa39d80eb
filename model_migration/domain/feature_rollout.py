"""The rollout stage when the engine drives the flag (feature revision 5), pure.

Entering rollout starts a ``RolloutWorkflow`` (``feature_rules.move``). Its end moves the feature:

- **done** (every step passed, the hold kept, no traffic left on the old model, the flag deleted)
  → cleanup, whose clean-up merge request the engine opens; once it is open the feature is done,
  with the rollout's whole timeline in the last note, which closes the issue;
- **rolled back** or **aborted** (the flag is off everywhere) → back to implement. ``retry_rollout``
  there rolls the same prompt version out again from the step that failed; a new prompt version
  (``complete_stage implement``) goes through evaluation again and starts from the first step;
- **failed** (the rollout workflow itself failed: the flag may be anywhere) → back to implement,
  saying so, so that a person looks at the flag before retrying.

While the engine drives the flag, ``report_rollout`` and ``complete_stage cleanup`` are refused.
"""

from __future__ import annotations

from datetime import datetime

from model_migration.domain.commands import ReportRollout, RetryRollout
from model_migration.domain.errors import CommandRejected
from model_migration.domain.feature_rules import active, actor_given, move
from model_migration.domain.feature_state import CleanupOpened, Decision, FeatureState, OpenCleanup, RolloutEnded
from model_migration.domain.stages import FeatureStage

ENDED_BACK = frozenset({"rolled_back", "aborted", "failed"})


def refuse_report(s: FeatureState, cmd: ReportRollout) -> None:
    """``report_rollout`` is for teams that drive their flag by hand (ChatOps)."""
    if s.driven:
        raise CommandRejected(
            f"the engine drives flag {s.flag!r} ({s.feature.rollout.target}); use model-migration rollout "
            "pause|resume|promote|promote-full|abort|retry instead of reporting percentages"
        )


def refuse_cleanup(s: FeatureState) -> None:
    if s.driven and s.stage == FeatureStage.CLEANUP:
        raise CommandRejected("the engine cleans up after its own rollout: it deletes the flag and opens the clean-up merge request")


def retry(s: FeatureState, cmd: RetryRollout, now: datetime) -> Decision:
    actor_given(s, cmd.actor)
    active(s, blocked_counts=True)
    last = s.rollout_run
    if not s.driven:
        raise CommandRejected("the team drives this feature's flag by hand: there is no engine rollout to retry")
    if s.stage == FeatureStage.ROLLOUT and last is not None and last.running:
        raise CommandRejected(f"rollout {last.attempt} is still running; use model-migration rollout retry on it")
    if s.stage != FeatureStage.IMPLEMENT or last is None or last.phase not in ENDED_BACK:
        raise CommandRejected(f"nothing to retry: the feature is in {s.stage} and its last rollout did not roll back")
    step = last.failed_step or 0
    detail = f"Rollout retried from step {step + 1}{f' ({last.failed_label})' if last.failed_label else ''}, prompt version " \
             f"`{s.prompt_version}`. {cmd.reason}".strip()
    d = move(s, FeatureStage.ROLLOUT, cmd.actor, now, detail, from_step=step)
    return d.model_copy(update={"message": f"rollout {len(d.state.rollouts)} started from step {step + 1}"})


def ended(s: FeatureState, event: RolloutEnded, now: datetime) -> Decision:
    last = s.rollout_run
    if last is None or last.attempt != event.attempt or not last.running or s.stage.terminal:
        return Decision(state=s)  # an old attempt's answer, or the feature ended first: nothing changes
    run = last.model_copy(update={
        "phase": event.phase, "outcome": event.outcome, "failed_step": event.failed_step,
        "failed_label": event.failed_label, "ended_at": now, "timeline": event.timeline,
    })
    s = s.model_copy(update={"rollouts": (*s.rollouts[:-1], run)})
    if s.stage != FeatureStage.ROLLOUT:
        return Decision(state=s)
    if event.phase == "done":
        detail = f"Rollout {event.attempt} done: {event.outcome}. Flag `{s.flag}` deleted; opening the clean-up merge request."
        d = move(s, FeatureStage.CLEANUP, "model-migration", now, detail)
        return d.model_copy(update={"effects": (*d.effects, OpenCleanup())})
    how = "the rollout workflow failed; check the flag before retrying" if event.phase == "failed" else "the flag is off everywhere"
    detail = (
        f"Rollout {event.attempt} {event.outcome or event.phase}: {how}. Fix the cause, then "
        "`model-migration rollout retry` rolls the same prompt version out again from that step, "
        "or complete implement with a new prompt version."
    )
    return move(s, FeatureStage.IMPLEMENT, "model-migration", now, detail)


def cleanup_opened(s: FeatureState, event: CleanupOpened, now: datetime) -> Decision:
    if s.stage != FeatureStage.CLEANUP or s.cleanup_mr:
        return Decision(state=s)
    s = s.model_copy(update={"cleanup_mr": event.url or "-", "outcome": "done"})
    mr = f"Clean-up merge request: {event.url}." if event.url else event.detail
    timeline = "\n\n".join(part for part in (mr, _timeline(s)) if part)
    return move(s, FeatureStage.DONE, "model-migration", now, f"Flag `{s.flag}` deleted. {timeline}")


def _timeline(s: FeatureState) -> str:
    rows = [
        f"| {r.attempt} | {r.started_at:%Y-%m-%d %H:%M} | {f'{r.ended_at:%Y-%m-%d %H:%M}' if r.ended_at else ''} | "
        f"{r.from_step + 1} | {r.phase} | {r.outcome.replace('|', '/')} |"
        for r in s.rollouts
    ]
    steps = s.rollouts[-1].timeline if s.rollouts else ""
    table = "Rollouts:\n\n| Attempt | Started | Ended | From step | Result | Outcome |\n|---|---|---|---|---|---|\n" + "\n".join(rows)
    return f"{table}\n\nThe last rollout, step by step:\n\n{steps}" if steps else table
