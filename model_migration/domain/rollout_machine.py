"""The rollout machine: a feature flag climbs the ladder, each step baked and analysed, pure.

Phases:

- **applying**: the step's flag state is being written (``ApplyStep``); ``Applied`` starts its bake;
- **baking**: measurements come in (``Measured``); a metric failing ``failure_limit`` times in a
  row rolls back at once; at the end of the bake (``BakeEnded``) the step is judged over all its
  measurements: successful → the next step, inconclusive → paused for a human;
- **paused**: by a person (``pause``) or by an inconclusive step; ``resume`` (a person's pause),
  ``retry`` (an inconclusive step: bake and measure it again), ``promote``, ``promote_full`` or
  ``abort`` moves on;
- **holding**: at 100 % for ``HOLD`` before cleanup (``HoldEnded``);
- **draining**: proving the old model serves nothing for this feature (``TrafficChecked``);
- **done**, **rolled back** (the flag off everywhere; the feature goes back to implement, and a
  ``retry`` there starts a new rollout at the failed step) or **aborted** (off everywhere).

``decide(state, command, now)`` is the only rule: an update's validator and its handler both
call it, and every decision names its effects as data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from model_migration.domain.errors import CommandRejected
from model_migration.domain.rollout import (
    DEFAULT_ANALYSIS,
    DEFAULT_LADDER,
    LadderStep,
    Measurement,
    MetricTemplate,
    Outcome,
    check_ladder,
    measurement_table,
    step_outcome,
)

FROZEN = ConfigDict(frozen=True)
#: While the old model still serves the feature, the DRI is reminded once per this many failed checks.
DRAIN_REMINDER = 24


class Phase(StrEnum):
    APPLYING = "applying"
    BAKING = "baking"
    PAUSED = "paused"
    HOLDING = "holding"
    DRAINING = "draining"
    DONE = "done"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"

    @property
    def terminal(self) -> bool:
        return self in (Phase.DONE, Phase.ROLLED_BACK, Phase.ABORTED)


# -- commands (people) and events (the workflow) ----------------------------------------------


class _Human(BaseModel):
    model_config = FROZEN
    actor: str
    reason: str = ""


class Pause(_Human):
    kind: Literal["pause"] = "pause"


class Resume(_Human):
    kind: Literal["resume"] = "resume"


class Promote(_Human):
    kind: Literal["promote"] = "promote"


class PromoteFull(_Human):
    kind: Literal["promote_full"] = "promote_full"


class Abort(_Human):
    kind: Literal["abort"] = "abort"


class Retry(_Human):
    kind: Literal["retry"] = "retry"


class Applied(BaseModel):
    model_config = FROZEN
    step: int


class Measured(BaseModel):
    model_config = FROZEN
    step: int
    measurements: tuple[Measurement, ...]


class BakeEnded(BaseModel):
    model_config = FROZEN
    step: int


class HoldEnded(BaseModel):
    model_config = FROZEN


class TrafficChecked(BaseModel):
    """The old model's request rate for this feature over the drain window (requests/s)."""

    model_config = FROZEN
    old_model_rate: float | None


Command = Pause | Resume | Promote | PromoteFull | Abort | Retry | Applied | Measured | BakeEnded | HoldEnded | TrafficChecked


# -- effects ----------------------------------------------------------------------------------


class ApplyStep(BaseModel):
    model_config = FROZEN
    kind: Literal["apply"] = "apply"
    step: int


class AllOff(BaseModel):
    model_config = FROZEN
    kind: Literal["all_off"] = "all_off"


class CheckTraffic(BaseModel):
    model_config = FROZEN
    kind: Literal["check_traffic"] = "check_traffic"


class RemoveFlag(BaseModel):
    model_config = FROZEN
    kind: Literal["remove_flag"] = "remove_flag"


class StepNote(BaseModel):
    model_config = FROZEN
    kind: Literal["note"] = "note"
    body: str


class EscalateDri(BaseModel):
    model_config = FROZEN
    kind: Literal["escalate"] = "escalate"
    reason: str


Effect = ApplyStep | AllOff | CheckTraffic | RemoveFlag | StepNote | EscalateDri


# -- state ----------------------------------------------------------------------------------


class StepRecord(BaseModel):
    """One step as it happened: when it was applied, every measurement, and its outcome."""

    model_config = FROZEN
    step: int
    label: str
    applied_at: datetime | None = None
    measurements: tuple[Measurement, ...] = ()
    outcome: Outcome | None = None
    ended_at: datetime | None = None
    ended_by: str = ""


class LogEntry(BaseModel):
    model_config = FROZEN
    at: datetime
    step: int
    event: str
    actor: str = "model-migration"
    detail: str = ""


class RolloutState(BaseModel):
    model_config = FROZEN
    ladder: tuple[LadderStep, ...] = DEFAULT_LADDER
    analysis: tuple[MetricTemplate, ...] = DEFAULT_ANALYSIS
    #: A test or demo run: bakes under 15 minutes are allowed, and status says so.
    test_run: bool = False
    step: int = 0
    phase: Phase = Phase.APPLYING
    paused_by: str = ""  # a person's name, or "analysis" for an inconclusive step
    records: tuple[StepRecord, ...] = ()
    log: tuple[LogEntry, ...] = ()
    outcome: str = ""

    @property
    def current(self) -> LadderStep:
        return self.ladder[self.step]

    @property
    def last(self) -> bool:
        return self.step == len(self.ladder) - 1

    def record(self, step: int) -> StepRecord | None:
        return next((r for r in reversed(self.records) if r.step == step), None)


class Decision(BaseModel):
    model_config = FROZEN
    state: RolloutState
    effects: tuple[Effect, ...] = ()
    message: str = ""


def start(ladder: tuple[LadderStep, ...] = DEFAULT_LADDER, analysis: tuple[MetricTemplate, ...] = DEFAULT_ANALYSIS,
          *, test_run: bool = False, from_step: int = 0) -> Decision:
    """A new rollout at ``from_step`` (a retry after a rollback starts at the failed step)."""
    check_ladder(ladder, test_run=test_run)
    if not 0 <= from_step < len(ladder):
        raise CommandRejected(f"step {from_step} is not on the ladder (0–{len(ladder) - 1})")
    s = RolloutState(ladder=ladder, analysis=analysis, test_run=test_run, step=from_step)
    return Decision(state=s, effects=(ApplyStep(step=from_step),), message=f"starting at {ladder[from_step].label}")


def decide(s: RolloutState, command: Command, now: datetime) -> Decision:
    """Apply ``command`` to ``s``; a command that does not fit raises ``CommandRejected``."""
    if s.phase.terminal:
        if not isinstance(command, _Human):
            return Decision(state=s)  # an activity's late answer after the end: nothing changes
        raise CommandRejected(f"the rollout is {s.phase}: nothing more to do")
    handler = _HANDLERS[type(command)]
    return handler(s, command, now)


# -- people ---------------------------------------------------------------------------------


def _actor(cmd: _Human, *, reason: bool = False) -> None:
    if not cmd.actor.strip():
        raise CommandRejected("say who you are (actor)")
    if reason and not cmd.reason.strip():
        raise CommandRejected("this command needs a reason")


def _log(s: RolloutState, now: datetime, event: str, actor: str = "model-migration", detail: str = "") -> RolloutState:
    return s.model_copy(update={"log": (*s.log, LogEntry(at=now, step=s.step, event=event, actor=actor, detail=detail))})


def _pause(s: RolloutState, cmd: Pause, now: datetime) -> Decision:
    _actor(cmd)
    if s.phase == Phase.PAUSED:
        raise CommandRejected("the rollout is paused already")
    if s.phase == Phase.DRAINING:
        raise CommandRejected("the flag is at 100 % and the old model is being drained: nothing to pause")
    s = _log(s.model_copy(update={"phase": Phase.PAUSED, "paused_by": cmd.actor}), now, "paused", cmd.actor, cmd.reason)
    return Decision(state=s, effects=(StepNote(body=f"Rollout paused at {s.current.label} by @{cmd.actor}: {cmd.reason}"),),
                    message=f"paused at {s.current.label}")


def _resume(s: RolloutState, cmd: Resume, now: datetime) -> Decision:
    _actor(cmd)
    if s.phase != Phase.PAUSED:
        raise CommandRejected(f"the rollout is {s.phase}, not paused")
    if s.paused_by == "analysis":
        raise CommandRejected("an inconclusive step waits for retry, promote or abort, not resume")
    return _rebake(s, now, "resumed", cmd.actor, cmd.reason)


def _retry(s: RolloutState, cmd: Retry, now: datetime) -> Decision:
    _actor(cmd)
    if s.phase != Phase.PAUSED or s.paused_by != "analysis":
        raise CommandRejected(f"retry follows an inconclusive step; the rollout is {s.phase}"
                              + (f" (paused by @{s.paused_by})" if s.paused_by and s.paused_by != "analysis" else ""))
    return _rebake(s, now, "retried", cmd.actor, cmd.reason)


def _rebake(s: RolloutState, now: datetime, event: str, actor: str, reason: str) -> Decision:
    """Bake and measure the current step again, from now (the bake never counts time paused)."""
    record = StepRecord(step=s.step, label=s.current.label, applied_at=now)
    s = s.model_copy(update={"phase": Phase.BAKING, "paused_by": "", "records": (*s.records, record)})
    s = _log(s, now, event, actor, reason)
    body = f"Rollout {event} at {s.current.label} by @{actor}" + (f": {reason}" if reason else "")
    return Decision(state=s, effects=(StepNote(body=body),), message=f"{event}: baking {s.current.label} again")


def _promote(s: RolloutState, cmd: Promote, now: datetime) -> Decision:
    _actor(cmd, reason=True)
    if s.phase not in (Phase.BAKING, Phase.PAUSED):
        raise CommandRejected(f"promote moves a baking or paused step on; the rollout is {s.phase}")
    s = _end_step(s, now, None, cmd.actor)
    return _next(_log(s, now, "promoted", cmd.actor, cmd.reason), now, f"promoted by @{cmd.actor}: {cmd.reason}")


def _promote_full(s: RolloutState, cmd: PromoteFull, now: datetime) -> Decision:
    _actor(cmd, reason=True)
    if s.phase not in (Phase.APPLYING, Phase.BAKING, Phase.PAUSED):
        raise CommandRejected(f"promote_full moves a rollout still climbing to 100 %; the rollout is {s.phase}")
    last = len(s.ladder) - 1
    s = _end_step(s, now, None, cmd.actor)
    s = _log(s.model_copy(update={"step": last, "phase": Phase.APPLYING, "paused_by": ""}), now, "promoted to 100 %", cmd.actor, cmd.reason)
    return Decision(state=s, effects=(ApplyStep(step=last), StepNote(body=f"Promoted to {s.current.label} by @{cmd.actor}: {cmd.reason}")),
                    message=f"promoted to {s.current.label}")


def _abort(s: RolloutState, cmd: Abort, now: datetime) -> Decision:
    _actor(cmd, reason=True)
    s = _log(s.model_copy(update={"phase": Phase.ABORTED, "outcome": f"aborted: {cmd.reason}"}), now, "aborted", cmd.actor, cmd.reason)
    body = f"Rollout aborted by @{cmd.actor}: {cmd.reason}. The flag is off everywhere."
    return Decision(state=s, effects=(AllOff(), StepNote(body=body)), message="aborted; the flag is off everywhere")


# -- the workflow's events ---------------------------------------------------------------------


def _applied(s: RolloutState, event: Applied, now: datetime) -> Decision:
    if s.phase != Phase.APPLYING or event.step != s.step:
        return Decision(state=s)  # a late answer for a step already left: nothing changes
    record = StepRecord(step=s.step, label=s.current.label, applied_at=now)
    s = _log(s.model_copy(update={"phase": Phase.BAKING, "records": (*s.records, record)}), now, "applied", detail=s.current.label)
    return Decision(state=s, message=f"baking {s.current.label}")


def _measured(s: RolloutState, event: Measured, now: datetime) -> Decision:
    record = s.record(event.step)
    if s.phase != Phase.BAKING or event.step != s.step or record is None:
        return Decision(state=s)
    record = record.model_copy(update={"measurements": (*record.measurements, *event.measurements)})
    s = _replace(s, record)
    if step_outcome(s.analysis, record.measurements) == Outcome.FAILED:
        return _roll_back(s, now, event.measurements)
    return Decision(state=s)


def _bake_ended(s: RolloutState, event: BakeEnded, now: datetime) -> Decision:
    record = s.record(event.step)
    if s.phase != Phase.BAKING or event.step != s.step or record is None:
        return Decision(state=s)
    if not s.current.analysed:
        s = _end_step(s, now, Outcome.SUCCESSFUL, "bake")
        return _next(s, now, f"{s.ladder[event.step].label} baked (not analysed: Prometheus holds production's metrics only).")
    outcome = step_outcome(s.analysis, record.measurements)
    if outcome == Outcome.FAILED:
        return _roll_back(s, now, record.measurements)
    table = measurement_table(s.analysis, _latest(record.measurements))
    if outcome == Outcome.INCONCLUSIVE:
        s = _replace(s, record.model_copy(update={"outcome": outcome}))
        s = _log(s.model_copy(update={"phase": Phase.PAUSED, "paused_by": "analysis"}), now, "inconclusive")
        body = f"Rollout paused at {s.current.label}: the analysis is inconclusive.\n\n{table}\n\nRun `retry`, `promote` or `abort`."
        return Decision(state=s, effects=(StepNote(body=body), EscalateDri(reason=f"inconclusive analysis at {s.current.label}")),
                        message="inconclusive: paused")
    s = _end_step(s, now, outcome, "analysis")
    return _next(s, now, f"{s.current.label} successful.\n\n{table}")


def _hold_ended(s: RolloutState, event: HoldEnded, now: datetime) -> Decision:
    if s.phase != Phase.HOLDING:
        return Decision(state=s)
    s = _log(s.model_copy(update={"phase": Phase.DRAINING}), now, "held")
    return Decision(state=s, effects=(CheckTraffic(),), message="held at 100 %; checking the old model's traffic")


def _traffic_checked(s: RolloutState, event: TrafficChecked, now: datetime) -> Decision:
    if s.phase != Phase.DRAINING:
        return Decision(state=s)
    rate = event.old_model_rate
    if rate is None or rate > 0:
        seen = "no data" if rate is None else f"{rate:.3g} requests/s"
        s = _log(s, now, "old model still serving", detail=seen)
        # The DRI hears of it at the first failed check, then once per DRAIN_REMINDER checks, not at every one.
        failed = next((i for i, e in enumerate(reversed(s.log)) if e.event != "old model still serving"), len(s.log))
        effects = (EscalateDri(reason=f"the old model still serves this feature ({seen})"),) if failed % DRAIN_REMINDER == 1 else ()
        return Decision(state=s, effects=effects, message=f"the old model still serves: {seen}")
    s = _log(s.model_copy(update={"phase": Phase.DONE, "outcome": "rolled out"}), now, "drained", detail="0 requests/s")
    return Decision(state=s, effects=(RemoveFlag(), StepNote(body="No traffic left on the old model: the flag is removed.")),
                    message="done: no traffic on the old model")


# -- helpers ------------------------------------------------------------------------------------


def _replace(s: RolloutState, record: StepRecord) -> RolloutState:
    records = list(s.records)
    index = max(i for i, r in enumerate(records) if r.step == record.step)
    records[index] = record
    return s.model_copy(update={"records": tuple(records)})


def _end_step(s: RolloutState, now: datetime, outcome: Outcome | None, by: str) -> RolloutState:
    record = s.record(s.step)
    if record is None or record.ended_at is not None:
        return s
    return _replace(s, record.model_copy(update={"outcome": outcome or record.outcome, "ended_at": now, "ended_by": by}))


def _next(s: RolloutState, now: datetime, detail: str) -> Decision:
    if s.last:
        s = _log(s.model_copy(update={"phase": Phase.HOLDING, "paused_by": ""}), now, "holding at 100 %")
        return Decision(state=s, effects=(StepNote(body=f"{detail}\n\nHolding at 100 % before cleanup."),), message="holding at 100 %")
    s = s.model_copy(update={"step": s.step + 1, "phase": Phase.APPLYING, "paused_by": ""})
    return Decision(state=s, effects=(StepNote(body=detail), ApplyStep(step=s.step)), message=f"next: {s.current.label}")


def _latest(measurements: tuple[Measurement, ...]) -> list[Measurement]:
    latest: dict[str, Measurement] = {}
    for m in measurements:
        latest[m.metric] = m
    return list(latest.values())


def _roll_back(s: RolloutState, now: datetime, measured: tuple[Measurement, ...]) -> Decision:
    record = s.record(s.step)
    assert record is not None
    s = _replace(s, record.model_copy(update={"outcome": Outcome.FAILED, "ended_at": now, "ended_by": "analysis"}))
    s = s.model_copy(update={"phase": Phase.ROLLED_BACK, "outcome": f"rolled back at {s.current.label}"})
    s = _log(s, now, "rolled back")
    table = measurement_table(s.analysis, _latest(measured))
    body = f"**Rolled back** at {s.current.label}: the analysis failed. The flag is off in every environment.\n\n{table}"
    return Decision(state=s, effects=(AllOff(), StepNote(body=body), EscalateDri(reason=f"rolled back at {s.current.label}")),
                    message=f"rolled back at {s.current.label}")


Handler = Callable[[RolloutState, Any, datetime], Decision]
_HANDLERS: dict[type[BaseModel], Handler] = {
    Pause: _pause, Resume: _resume, Retry: _retry, Promote: _promote, PromoteFull: _promote_full, Abort: _abort,
    Applied: _applied, Measured: _measured, BakeEnded: _bake_ended, HoldEnded: _hold_ended, TrafficChecked: _traffic_checked,
}


