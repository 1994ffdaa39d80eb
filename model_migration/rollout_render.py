"""``rollout status``: one engine rollout as a report (the ladder, every measurement, the log), as JSON or text.

The report is built from what the rollout workflow says of itself (its ``status`` query while it
runs, its result once it has ended) and from its input (the ladder and the analysis thresholds).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.table import Table

from model_migration.domain.rollout import LadderStep, Measurement, MetricTemplate, judge
from model_migration.domain.rollout_machine import LogEntry, Phase, StepRecord

FROZEN = ConfigDict(frozen=True)
#: Who ends a step when no person does: the analysis, or the bake of a step the analysis does not judge.
MACHINE = frozenset({"", "analysis", "bake", "model-migration"})
TEST_RUN = "test run: bakes under 15 minutes allowed"


class StepRow(BaseModel):
    """One ladder step: what became of it in this rollout."""

    model_config = FROZEN
    number: int  # 1-based, as the notes and logs count steps
    label: str
    bake_seconds: float
    outcome: str
    current: bool = False
    applied_at: datetime | None = None  # first applied (a resume or retry bakes the step again)
    ended_at: datetime | None = None
    ended_by: str = ""


class MeasurementRow(BaseModel):
    """One measurement of one metric at one step, judged against the metric's thresholds."""

    model_config = FROZEN
    step: int  # 1-based
    label: str
    bake: int  # 1 for the step's first bake, 2 after a resume or retry baked it again
    metric: str
    value: float | None
    requests: float
    min_requests: int | None = None
    success: str = ""  # e.g. "<= 0.01"
    failure: str = ""  # e.g. "> 0.02"
    result: str = ""


class RolloutReport(BaseModel):
    """What ``rollout status`` shows, and ``--json`` prints."""

    model_config = FROZEN
    feature_workflow_id: str
    rollout_workflow_id: str
    attempt: int
    running: bool
    phase: Phase
    step: int  # 1-based
    step_label: str
    test_run: bool = False
    paused_by: str = ""
    flag: str = ""
    flag_target: str = ""
    outcome: str = ""
    steps: tuple[StepRow, ...] = ()
    measurements: tuple[MeasurementRow, ...] = ()
    log: tuple[LogEntry, ...] = ()


def build(
    *, feature_workflow_id: str, rollout_workflow_id: str, attempt: int, running: bool, phase: Phase, step: int,
    ladder: Sequence[LadderStep], analysis: Sequence[MetricTemplate], records: Sequence[StepRecord], log: Sequence[LogEntry],
    test_run: bool = False, paused_by: str = "", flag: str = "", flag_target: str = "", outcome: str = "", from_step: int = 0,
) -> RolloutReport:
    """The report of one rollout; ``ladder`` may be empty (an unreadable input): the steps reached are shown."""
    labels = {r.step: r.label for r in records}
    if ladder:
        label = ladder[step].label if step < len(ladder) else labels.get(step, "")
    else:
        label = labels.get(step, "")
    return RolloutReport(
        feature_workflow_id=feature_workflow_id, rollout_workflow_id=rollout_workflow_id, attempt=attempt, running=running,
        phase=phase, step=step + 1, step_label=label, test_run=test_run, paused_by=paused_by, flag=flag, flag_target=flag_target,
        outcome=outcome, steps=_steps(ladder, records, phase, step, from_step), measurements=_measurements(analysis, records),
        log=tuple(log),
    )


def _steps(
    ladder: Sequence[LadderStep], records: Sequence[StepRecord], phase: Phase, step: int, from_step: int,
) -> tuple[StepRow, ...]:
    if ladder:
        known = [(i, s.label, s.bake.total_seconds()) for i, s in enumerate(ladder)]
    else:
        seen = sorted({r.step: r.label for r in records}.items())
        known = [(i, label, 0.0) for i, label in seen]
    rows = []
    for i, label, bake in known:
        mine = [r for r in records if r.step == i]
        last = mine[-1] if mine else None
        rows.append(StepRow(
            number=i + 1, label=label, bake_seconds=bake, outcome=_outcome(i, last, phase, step, from_step), current=i == step,
            applied_at=mine[0].applied_at if mine else None, ended_at=last.ended_at if last else None,
            ended_by=last.ended_by if last else "",
        ))
    return tuple(rows)


def _outcome(i: int, last: StepRecord | None, phase: Phase, step: int, from_step: int) -> str:
    """The step's outcome, or where the rollout stands at it, in a few words."""
    text = str(last.outcome) if last is not None and last.outcome else ""
    if last is not None and last.ended_by not in MACHINE:
        text = f"{text}, promoted by @{last.ended_by}" if text else f"promoted by @{last.ended_by}"
    if i == step and (not phase.terminal or not text):
        return f"{text}; {phase}" if text else str(phase)
    if text:
        return text
    if i < from_step:
        return "passed in an earlier rollout"  # a retry starts at the step that failed
    return "skipped" if i < step else "—"


def _measurements(analysis: Sequence[MetricTemplate], records: Sequence[StepRecord]) -> tuple[MeasurementRow, ...]:
    templates = {t.name: t for t in analysis}
    rows = []
    bakes: dict[int, int] = {}
    for record in records:
        bakes[record.step] = bakes.get(record.step, 0) + 1
        for m in record.measurements:
            rows.append(_row(record, bakes[record.step], m, templates.get(m.metric)))
    return tuple(rows)


def _row(record: StepRecord, bake: int, m: Measurement, template: MetricTemplate | None) -> MeasurementRow:
    row = MeasurementRow(step=record.step + 1, label=record.label, bake=bake, metric=m.metric, value=m.value, requests=m.requests)
    if template is None:  # a metric the input does not name: shown, not judged
        return row
    return row.model_copy(update={"min_requests": template.min_requests, "success": str(template.success),
                                  "failure": str(template.failure), "result": str(judge(template, m))})


# -- text ----------------------------------------------------------------------------------------


def _line(console: Console, text: str, style: str | None = None) -> None:
    console.print(text, style=style, markup=False, highlight=False)


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "—"


def _seconds(bake: float) -> str:
    if not bake:
        return "—"
    if bake >= 3600 and bake % 3600 == 0:
        return f"{bake / 3600:g} h"
    return f"{bake / 60:g} min" if bake >= 60 and bake % 60 == 0 else f"{bake:g} s"


def show(console: Console, r: RolloutReport) -> None:
    state = "running" if r.running else "ended"
    _line(console, f"{r.rollout_workflow_id}  rollout {r.attempt} of {r.feature_workflow_id} ({state})")
    target = f" ({r.flag_target})" if r.flag_target else ""
    _line(console, f"flag: {r.flag or '—'}{target}  phase: {r.phase}  step {r.step} of {len(r.steps)}: {r.step_label}")
    if r.paused_by == "analysis":
        _line(console, "paused by the analysis: the step is inconclusive; rollout retry, promote or abort moves it on", "yellow")
    elif r.paused_by:
        _line(console, f"paused by @{r.paused_by}; rollout resume moves it on", "yellow")
    if r.test_run:
        _line(console, TEST_RUN, "yellow")
    if r.outcome:
        _line(console, f"outcome: {r.outcome}", "green" if r.phase == Phase.DONE else "red")
    steps = Table("", "step", "bake", "outcome", "applied (UTC)", "ended (UTC)", title="ladder", title_justify="left", box=None)
    for s in r.steps:
        steps.add_row("▶" if s.current else "", f"{s.number}. {s.label}", _seconds(s.bake_seconds), s.outcome, _when(s.applied_at),
                      _when(s.ended_at))
    console.print(steps)
    if r.measurements:
        table = Table("step", "metric", "value", "threshold (ok / fails)", "requests", "result", title="measurements",
                      title_justify="left", box=None)
        baked_again = {m.step for m in r.measurements if m.bake > 1}
        for m in r.measurements:
            again = f" (bake {m.bake})" if m.step in baked_again else ""
            value = "no data" if m.value is None else f"{m.value:.4g}"
            threshold = f"{m.success} / {m.failure}" if m.success else "—"
            few = m.min_requests is not None and m.requests < m.min_requests
            requests = f"{m.requests:.0f}" + (f" (< {m.min_requests})" if few else "")
            table.add_row(f"{m.step}{again}", m.metric, value, threshold, requests, m.result or "—")
        console.print(table)
    else:
        _line(console, "measurements: none yet")
    if r.log:
        _line(console, "log:")
        for e in r.log:
            detail = f" — {e.detail.splitlines()[0]}" if e.detail else ""
            _line(console, f"  {_when(e.at)}  step {e.step + 1}  {e.event} by @{e.actor}{detail}")
