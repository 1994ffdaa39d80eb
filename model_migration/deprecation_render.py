"""Human output for deprecations: ``status deprecation:...``, their rows in ``list``, and the watch's report."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from activities.watch_payloads import WatchReport
from model_migration.domain.deprecation import BackwardPlan
from model_migration.listing import DeprecationRow
from workflows.deprecation_messages import DeprecationStatus


def _line(console: Console, text: str, style: str | None = None) -> None:
    console.print(text, style=style, markup=False, highlight=False)


def started(console: Console, workflow_id: str, plan: BackwardPlan) -> None:
    """What ``deprecate`` prints once the deprecation has started."""
    _line(console, f"started {workflow_id} for {plan.model} with {len(plan.features)} features: "
                   f"{', '.join(f.feature for f in plan.features)}")
    _line(console, f"plan: {plan.summary()}", "green" if plan.feasible else "red")
    if plan.feasible:
        _line(console, "mode: on plan; escalations start at T−14 days")
    else:
        _line(console, f"mode: LATE MODE: short by {plan.shortfall_days} days; the late-mode escalation goes out today", "red")
    _line(console, f"see: model-migration status {workflow_id}")


def status(console: Console, st: DeprecationStatus) -> None:
    _line(console, f"{st.workflow_id}  stage: {st.stage}")
    _line(console, f"model: {st.model} ({st.provider})")
    _line(console, f"cutoff {st.cutoff}, due {st.due}, {st.days_left} days left (today {st.today}): "
                   + ("feasible" if st.feasible else "LATE MODE"), None if st.feasible else "red")
    _line(console, f"plan: {st.plan_summary}")
    if st.blocked:
        _line(console, f"BLOCKED: {st.blocked}; fix it, then run: model-migration resume {st.workflow_id}", "red")
    if st.epic_url:
        _line(console, f"epic: {st.epic_url}")
    if st.replacement:
        _line(console, f"replacement: {st.replacement}" + (f" (fallback {st.fallback})" if st.fallback else ""))
    else:
        why = f" — {st.choice.reason}" if st.choice else ""
        _line(console, f"replacement: undecided{why}")
        if st.stage == "selecting":
            _line(console, f"next: model-migration select-replacement {st.workflow_id} --model <model> --reason <why>")
    if st.migration_id:
        _line(console, f"migration: {st.migration_id}")
    _tournament(console, st)
    if st.features:
        late = set(st.late)
        table = Table("feature", "stage", "plan", "issue", box=None)
        for f in st.features:
            track = "late" if f.feature in late else ("on track" if f.feature in st.on_track else "—")
            table.add_row(f.feature, f.outcome or str(f.stage), track, f.issue_url or "—")
        console.print(table)
    _line(console, f"on track: {len(st.on_track)}, late: {len(st.late)}" + (f" ({', '.join(st.late)})" if st.late else ""))
    if st.fired:
        _line(console, "escalations fired:")
        for e in st.fired:
            who = ", ".join(e.features) if e.features else "nobody late"
            _line(console, f"  {e.on}  {e.name}" + (f" ({e.label})" if e.label else "") + f" — {who}")
    _line(console, f"next escalation: {st.next_escalation or '—'}")
    if st.cutoff_changes:
        _line(console, "cutoff changes:")
        for c in st.cutoff_changes:
            _line(console, f"  {c.at:%Y-%m-%d %H:%M}  {c.old} → {c.new} by @{c.actor}: {c.reason}")


def _tournament(console: Console, st: DeprecationStatus) -> None:
    if not st.tournament:
        return
    table = Table("feature", "rank", "candidate", "gate", "quality", "p95 latency", "cost", "ahead by", title="tournament", box=None)
    for feature, result in st.tournament.items():
        if result is None:
            table.add_row(feature, "—", "no verdict", "", "", "", "", "")
            continue
        for row in result.table:
            quality = f"{row.quality:+.2f}" if row.quality is not None else "—"
            latency = f"{row.latency_p95_ms:.0f} ms" if row.latency_p95_ms is not None else "—"
            table.add_row(feature, str(row.rank), row.candidate, str(row.verdict), quality, latency, row.cost_indicator,
                          row.ahead_by or "—")
    console.print(table)


def rows(console: Console, items: Sequence[DeprecationRow], include_closed: bool = False) -> None:
    if not items:
        console.print("no deprecations" if include_closed else "no open deprecations")
        return
    table = Table("id", "model", "stage", "cutoff", "due", "days left", "on track", "late", "replacement")
    for column in table.columns[:2]:
        column.no_wrap = True
    for r in items:
        left = "—" if r.days_left is None else str(r.days_left) + ("" if r.feasible in (None, True) else " (late mode)")
        table.add_row(r.workflow_id, r.model or "—", r.stage, str(r.cutoff or "—"), str(r.due or "—"), left,
                      str(r.on_track), str(r.late), r.replacement or "—")
    console.print(table)


def report(console: Console, result: WatchReport) -> None:
    for line in result.lines():
        _line(console, line)
