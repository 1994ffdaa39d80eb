"""Human output for the CLI: a status timeline and the list of migrations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from model_migration.domain.deprecation import BackwardPlan, CalendarEntry
from model_migration.domain.notes import humanize_delta
from model_migration.domain.stages import FeatureStage
from model_migration.listing import Row
from model_migration.trouble import GitLabTrouble
from workflows.messages import FeatureStatus, GateRecord, MigrationStatus, Status


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _relative(at: datetime, now: datetime) -> str:
    delta = at - now
    text = humanize_delta(delta)
    return f"in {text}" if delta.total_seconds() >= 0 else f"{text} ago"


def status(console: Console, st: Status, now: datetime | None = None, trouble: GitLabTrouble | None = None) -> None:
    now = now or datetime.now(UTC)
    feature = st if isinstance(st, FeatureStatus) else None
    flags = " (paused)" if st.paused else ""
    console.print(f"[bold]{st.workflow_id}[/bold]  stage: [bold]{st.stage}[/bold]{flags}")
    what = f"{st.replaced} → {st.model}" if st.replaced else st.model
    console.print(f"model: {what} ({st.provider})" + (f"  feature: {feature.feature}" if feature and feature.feature else ""))
    if st.issue:
        console.print(f"issue: {st.issue.web_url}")
    if st.blocked:
        console.print(f"[red]blocked: {st.blocked}[/red]")
    if trouble is not None:
        console.print(trouble.summary(), style="red", markup=False, highlight=False)
    if st.pending_action:
        p = st.pending_action
        console.print(f"next: {p.action} (owner @{p.owner})" + (f" — {p.command}" if p.command else ""))
    if feature and feature.next_escalation:
        e = feature.next_escalation
        console.print(f"next escalation: {e.kind} for {e.stage}, {_relative(e.at, now)}")
    if st.deadlines:
        console.print("deadlines:")
        for d in st.deadlines:
            mark = " (extended: " + d.reason + ")" if d.extended else ""
            console.print(f"  {d.stage:<10} {_when(d.due)}  {_relative(d.due, now)}{mark}")
    if isinstance(st, MigrationStatus):
        _features(console, st)
    if feature:
        _feature_details(console, feature)
    console.print("history:")
    for t in st.history:
        origin = f"{t.from_stage} → " if t.from_stage else ""
        console.print(f"  {_when(t.at)}  {origin}{t.to_stage}  by @{t.actor}" + (f" — {t.detail.splitlines()[0]}" if t.detail else ""))


def _features(console: Console, st: MigrationStatus) -> None:
    for problem in st.problems:
        console.print(f"problem: {problem}", markup=False)
    if st.features:
        table = Table("feature", "stage", "escalations", "issue", box=None)
        for f in st.features:
            # The outcome says how a feature ended ("aborted: <reason>"), which its stage alone cannot.
            table.add_row(f.feature, f.outcome or str(f.stage), str(f.escalations), f.issue_url or "—")
        console.print(table)


def _feature_details(console: Console, st: FeatureStatus) -> None:
    if st.rollout:
        steps = ", ".join(f"{'↓' if r.rollback else ''}{r.percentage}%" for r in st.rollout)
        console.print(f"rollout: {steps}")
    _engine_rollouts(console, st)
    if not st.gates:
        for ev in st.evaluations:
            console.print(f"evaluation: {ev.verdict} by @{ev.actor}" + (f" — {ev.summary}" if ev.summary else ""))
    for gate in st.gates:
        _gate(console, gate)
    if st.evaluation_loops:
        console.print(f"evaluation loops: {st.evaluation_loops} of {st.max_evaluation_loops}")
    if st.escalations:
        console.print("escalations fired:")
        for e in st.escalations:
            console.print(f"  {_when(e.at)}  {e.kind} ({e.stage})")


def _engine_rollouts(console: Console, st: FeatureStatus) -> None:
    """The rollouts the engine drove (revision 5): each attempt, the running one's id, the clean-up MR."""
    if not st.flag_target:
        return
    console.print(f"flag: {st.flag or '—'} driven by the engine ({st.flag_target})", markup=False, highlight=False)
    for r in st.rollouts:
        step = f" from step {r.from_step + 1}" if r.from_step else ""
        by = f" by @{r.requested_by}" if r.requested_by else ""
        outcome = f" — {r.outcome}" if r.outcome else ""
        console.print(f"  rollout {r.attempt}{step}, started {_when(r.started_at)}{by}: {r.phase}{outcome}", markup=False, highlight=False)
    if st.rollout_workflow_id:
        console.print(f"running rollout: {st.rollout_workflow_id} (model-migration rollout status {st.workflow_id})",
                      markup=False, highlight=False)
    if st.cleanup_mr:
        mr = "none needed" if st.cleanup_mr == "-" else st.cleanup_mr
        console.print(f"clean-up MR: {mr}", markup=False, highlight=False)


def _num(x: float | None, signed: bool = False) -> str:
    return "—" if x is None else (f"{x:+.3g}" if signed else f"{x:.3g}")


def _gate(console: Console, gate: GateRecord) -> None:
    """One evaluation: its verdict and how it was reached, then the per-metric table."""
    source = gate.results_url or str(gate.harness)
    head = f"evaluation #{gate.attempt}: prompt {gate.prompt_version} via {source} — "
    if gate.running:
        console.print(head + "running", markup=False)
        return
    if gate.result is None:
        console.print(head + f"no verdict: {gate.error}", markup=False, style="red")
        return
    result = gate.result
    decided = f", {gate.decision}d by @{gate.decided_by}: {gate.reason}" if gate.decided_by else ""
    team = f" (team said {gate.team_verdict})" if gate.team_verdict else ""
    console.print(head + f"{result.verdict}{team}{decided} — {result.reason}", markup=False)
    if gate.run_url:
        console.print(f"  run: {gate.run_url}", markup=False)
    table = Table("metric", "baseline", "candidate", "Δ", f"{result.confidence:.0%} CI", "margin", "Holm p", "result", box=None)
    for m in result.metrics:
        ci = f"[{_num(m.ci_low, True)}, {_num(m.ci_high, True)}]"
        table.add_row(m.name, _num(m.baseline_mean), _num(m.candidate_mean), _num(m.delta, True), ci, f"−{m.margin:g}",
                      _num(m.adjusted_p), str(m.decision))
    for bar in result.bars:
        holds = {True: "holds", False: "fails", None: "—"}[bar.holds]
        table.add_row(bar.name, "", "", "", "", f"{bar.limit:g}", "" if bar.value is None else f"{bar.value:.3g}", holds)
    console.print(table)


def deprecation_plan(console: Console, plan: BackwardPlan, calendar: Sequence[CalendarEntry]) -> None:
    """The backward plan: due date, each affected feature's latest stage starts, the escalation calendar."""
    style = "green" if plan.feasible else "red"
    console.print(plan.summary(), style=style, markup=False, highlight=False)
    table = Table("feature", "maturity", "group", "DRI", "harness", "implement", "evaluate by", "roll out by", "clean up by",
                  title=f"latest starts, for the epic due {plan.due}")
    for f in plan.features:
        starts = [str(f.window(s).latest_start) for s in (FeatureStage.EVALUATE, FeatureStage.ROLLOUT, FeatureStage.CLEANUP)]
        implement = f"{f.implement_days} days" + (f" ({f.shortfall_days} short)" if f.shortfall_days else "")
        table.add_row(f.title, f.maturity, f.group, f"@{f.dri}", str(f.harness), implement, *starts)
    console.print(table)
    calendar_table = Table("date", "escalation", "to", "label", title="escalation calendar")
    for e in calendar:
        calendar_table.add_row(str(e.on), e.name, str(e.audience), (e.label or "") + (" + notifier" if e.notify else ""))
    console.print(calendar_table)


def rows(console: Console, items: Sequence[Row], include_closed: bool = False) -> None:
    if not items:
        console.print("no migrations" if include_closed else "no open migrations")
        return
    table = Table("id", "model", "stage", "features done", "next deadline", "days left")
    # Ids and models stay whole, so a pipe can grep them; a long stage reason wraps instead.
    for column in table.columns[:2]:
        column.no_wrap = True
    for r in items:
        nxt = r.next_deadline.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if r.next_deadline else "—"
        if r.next_deadline and r.next_feature:
            nxt += f" ({r.next_feature})"
        left = f"{r.days_left:.1f}" if r.days_left is not None else "—"
        done = f"{r.done}/{r.total}" + (f" ({r.aborted} aborted)" if r.aborted else "")
        table.add_row(r.workflow_id, r.model or "—", r.stage, done, nxt, left)
    console.print(table)
