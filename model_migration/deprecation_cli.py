"""Deprecation commands (AI Framework): deprecate, select-replacement, update-cutoff, watch.

Every refusal is a ``UserError`` (a ``DomainError``): the command line prints it as one line
and exits 2, before anything is started or sent.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from model_migration import deprecation_render as show
from model_migration import deprecations as dep
from model_migration.cli_support import actor_or_user, with_client
from model_migration.domain.deprecation import DeprecationRequest
from model_migration.operations import UserError
from model_migration.settings import Settings

out = Console(width=None if sys.stdout.isatty() else 200)

DeprecationId = Annotated[str, typer.Argument(help="deprecation:<provider>/<model>")]
Actor = Annotated[str, typer.Option("--actor", help="GitLab username recorded as the author.")]
RequestId = Annotated[str | None, typer.Option("--request-id", help="Idempotency key: a retried command with the same key runs once.")]
Json = Annotated[bool, typer.Option("--json")]


def register(app: typer.Typer) -> None:
    app.command()(deprecate)
    app.command("select-replacement")(select_replacement)
    app.command("update-cutoff")(update_cutoff)
    app.command()(watch)


def _date(value: str | date, flag: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"bad date {value!r} for {flag}: use YYYY-MM-DD") from None


def deprecate(
    model: Annotated[str | None, typer.Option("--model", "-m", help="The retiring model: identifier, key or name.")] = None,
    cutoff: Annotated[str | None, typer.Option("--cutoff", help="The provider's retirement date, YYYY-MM-DD.")] = None,
    deprecation_date: Annotated[str | None, typer.Option("--deprecation-date", help="When it was announced (default today).")] = None,
    announcement: Annotated[str | None, typer.Option("--announcement", help="The provider's announcement (an http(s) URL).")] = None,
    recommended: Annotated[str | None, typer.Option("--recommended", help="The provider's recommended replacement.")] = None,
    candidate: Annotated[list[str] | None, typer.Option("--candidate", help="Another replacement candidate (repeat).")] = None,
    lead_weeks: Annotated[int | None, typer.Option(
        "--lead-weeks", help="Weeks from the epic's due date to the cutoff (2–4, default 4).",
    )] = None,
    day_seconds: Annotated[float | None, typer.Option("--day-seconds", help="Rehearsal: one plan day lasts this many seconds.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A YAML file with these keys; flags given as well win.")] = None,
    actor: Actor = "ai-framework",
    as_json: Json = False,
) -> None:
    """Start a model deprecation: the epic, the candidates' tournament, then a migration to the replacement."""
    from model_migration.catalog import load_catalog

    given = dep.load_request_file(file) if file is not None else dep.RequestFile()
    model = model or given.model
    if not model:
        raise UserError("name the retiring model with --model (or model: in --file)")
    cut = cutoff or given.cutoff
    if cut is None:
        raise UserError("give the provider's cutoff with --cutoff YYYY-MM-DD (or cutoff: in --file)")
    seconds = day_seconds if day_seconds is not None else given.day_seconds
    if seconds is not None and not seconds > 0:
        raise UserError(f"--day-seconds {seconds:g} is not a number of seconds above 0")
    weeks = lead_weeks if lead_weeks is not None else given.lead_weeks if given.lead_weeks is not None else 4
    now = datetime.now(UTC)
    request = DeprecationRequest(
        model=model, cutoff=_date(cut, "--cutoff"),
        deprecation_date=_date(deprecation_date or given.deprecation_date or now.date(), "--deprecation-date"),
        announcement_url=announcement if announcement is not None else given.announcement or "",
        recommended=recommended or given.recommended, candidates=tuple(candidate or given.candidates),
        lead_time=timedelta(weeks=weeks),
    )
    s = Settings()
    day = timedelta(seconds=seconds) if seconds is not None else timedelta(days=1)
    built = dep.build_input(load_catalog(s.catalog_dir), request, now=now, day=day, actor=actor, initiative=s.initiative_epic)
    plan = dep.plan_of(built)
    workflow_id = with_client(lambda c: dep.start(c, s.task_queue, built))
    if as_json:
        body = {"workflow_id": workflow_id, "model": plan.model, "late_mode": not plan.feasible, "summary": plan.summary(),
                "plan": plan.model_dump(mode="json")}
        print(json.dumps(body, indent=2))
    else:
        show.started(out, workflow_id, plan)


def select_replacement(
    workflow_id: DeprecationId,
    model: Annotated[str, typer.Option("--model", "-m", help="The replacement: a candidate or any catalog model.")],
    reason: Annotated[str, typer.Option("--reason", help="Why this one.")],
    actor: Actor = "",
    request_id: RequestId = None,
) -> None:
    """Choose the replacement of a retiring model (AI Framework settles a close call)."""
    from model_migration.catalog import load_catalog
    from workflows.deprecation_messages import SelectReplacement

    dep.check_id(workflow_id)
    chosen = load_catalog(Settings().catalog_dir).model(model)
    payload = SelectReplacement(model=chosen.gitlab_identifier, reason=reason, actor=actor_or_user(actor), definition=chosen)
    result = with_client(lambda c: dep.send(c, workflow_id, "select_replacement", payload, request_id))
    out.print(f"{workflow_id}: {result.message}", markup=False, highlight=False)


def update_cutoff(
    workflow_id: DeprecationId,
    new_date: Annotated[str, typer.Option("--date", help="The provider's new cutoff, YYYY-MM-DD.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it moved (the provider's new announcement, say).")],
    actor: Actor = "",
    request_id: RequestId = None,
) -> None:
    """Move a deprecation's cutoff: its plan, its due date and every escalation move with it."""
    from workflows.deprecation_messages import UpdateCutoff

    dep.check_id(workflow_id)
    payload = UpdateCutoff(new_date=_date(new_date, "--date"), reason=reason, actor=actor_or_user(actor))
    result = with_client(lambda c: dep.send(c, workflow_id, "update_cutoff", payload, request_id))
    out.print(f"{workflow_id}: {result.message}", markup=False, highlight=False)


def resume(workflow_id: str, actor: str, request_id: str | None) -> None:
    """``resume`` on a deprecation blocked on GitLab."""
    dep.check_id(workflow_id)
    result = with_client(lambda c: dep.send(c, workflow_id, "resume", actor_or_user(actor), request_id))
    out.print(f"{workflow_id}: {result.message}", markup=False, highlight=False)


def status(workflow_id: str, as_json: bool) -> None:
    dep.check_id(workflow_id)
    st = with_client(lambda c: dep.status(c, workflow_id))
    if as_json:
        print(st.model_dump_json(indent=2))
    else:
        show.status(out, st)


def watch(
    install: Annotated[bool, typer.Option("--install", help="Create or update the deprecation-watch schedule.")] = False,
    every: Annotated[str, typer.Option("--every", help="How often the schedule runs the watch: 1d, 12h, 30m ...")] = "1d",
    run_now: Annotated[bool, typer.Option(
        "--run-now", help="Run the watch now (through the schedule when installed) and print its report.",
    )] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --run-now waits for the report.")] = 300.0,
    as_json: Json = False,
) -> None:
    """The deprecation watch: new provider deprecations become deprecations, moved cutoffs are updated."""
    from model_migration import watch_schedule

    if not (install or run_now):
        raise UserError("pass --install (the daily schedule) or --run-now (one pass now), or both")
    span = watch_schedule.parse_every(every)
    if not timeout > 0:
        raise UserError(f"--timeout {timeout:g} is not a number of seconds above 0")
    s = Settings()

    async def work(client: Any) -> None:
        body: dict[str, Any] = {}
        if install:
            done = await watch_schedule.install(client, s.task_queue, span)
            body.update(schedule=watch_schedule.SCHEDULE_ID, schedule_change=done, every_seconds=span.total_seconds())
            if not as_json:
                out.print(f"{done} schedule {watch_schedule.SCHEDULE_ID}: the watch runs every {every} on task queue {s.task_queue}",
                          markup=False, highlight=False)
        if run_now:
            workflow_id, scheduled, report = await watch_schedule.run_now(client, s.task_queue, timedelta(seconds=timeout))
            body.update(workflow_id=workflow_id, scheduled=scheduled, report=report.model_dump(mode="json"))
            if not as_json:
                how = f"schedule {watch_schedule.SCHEDULE_ID} triggered" if scheduled else "no schedule installed: run directly"
                out.print(f"ran {workflow_id} ({how})", markup=False, highlight=False)
                show.report(out, report)
        if as_json:
            print(json.dumps(body, indent=2))

    with_client(work)


def is_deprecation(workflow_id: str, feature: str | None) -> bool:
    """Whether ``status``/``resume`` address a deprecation itself; ``--feature`` belongs to its migration."""
    if not dep.is_deprecation_id(workflow_id):
        return False
    if feature is not None:
        raise UserError(f"a deprecation has no features of its own: use its migration, {workflow_id}:migration, with --feature")
    return True
