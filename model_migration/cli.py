"""The ``model-migration`` command line. Every user error is one line on stderr, exit 2."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from model_migration import deprecation_cli, deprecation_render, listing, render, rollout_cli
from model_migration import operations as ops
from model_migration.domain.errors import DomainError
from model_migration.domain.stages import (
    FEATURE_COMPLETABLE,
    FEATURE_STAGES,
    MIGRATION_COMPLETABLE,
    CompletableStage,
    FeatureStage,
    MigrationStage,
)
from model_migration.settings import Settings
from workflows.messages import (
    Abort,
    Approve,
    CompleteStage,
    ExtendDeadline,
    MetricResult,
    Pause,
    Reject,
    ReportEvaluation,
    ReportRollout,
    RerunEvaluation,
    Resume,
    Verdict,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Durable GitLab AI model migrations on Temporal.")
app.add_typer(rollout_cli.app, name="rollout")
out = Console(width=None if sys.stdout.isatty() else 200)  # pipes get whole lines
T = TypeVar("T")

Feature = Annotated[str | None, typer.Option("--feature", "-f", help="Feature name, when the id is a migration id.")]
Actor = Annotated[str, typer.Option("--actor", help="GitLab username recorded as the author.")]
RequestId = Annotated[str | None, typer.Option("--request-id", help="Idempotency key: a retried command with the same key runs once.")]
WorkflowId = Annotated[str, typer.Argument(help="migration:<provider>/<model>/<version>[:feature:<name>]")]

#: Evaluate ends with report-eval and rollout with report-rollout reaching 100, so a person
#: completes only these; the CLI refuses the rest before anything is sent.
COMPLETABLE = tuple(s.value for s in CompletableStage)
ON_MIGRATION = tuple(s.value for s in MIGRATION_COMPLETABLE)
ON_FEATURE = tuple(s.value for s in FEATURE_COMPLETABLE)
DEADLINE_STAGES = tuple(s.value for s in FEATURE_STAGES)
#: How many feature names `start` prints; `status` lists every one.
SHOWN_FEATURES = 12


class Fail(Exception):
    """Raised to end a command with one line on stderr."""


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry, e.g. in a container
        return "cli"


def settings() -> Settings:
    return Settings()


def run(coro_factory: Callable[[Any], Awaitable[T]]) -> T:
    """Connect to Temporal and run one coroutine with the client."""
    from model_migration.temporal import connect

    async def main() -> T:
        return await coro_factory(await connect(settings()))

    return asyncio.run(main())


def positive_seconds(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise typer.BadParameter(f"{value:g} is not a number of seconds above 0")
    return value


def one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(choices)}")
        return value

    return check


def parse_when(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Fail(f"bad date {value!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_metric(value: str) -> MetricResult:
    try:
        name, scores = value.split("=", 1)
        baseline, candidate = (float(x) for x in scores.split(":", 1))
    except ValueError:
        raise Fail(f"bad metric {value!r}: use name=baseline:candidate, e.g. correctness=3.1:3.4") from None
    lower_better = name.strip() in {"latency", "latency_ms", "error_rate", "poor_ratio", "tokens"}
    return MetricResult(name=name.strip(), baseline=baseline, candidate=candidate, higher_is_better=not lower_better)


def command(workflow_id: str, feature: str | None, update: str, payload: Any, request_id: str | None) -> None:
    target = ops.target_id(workflow_id, feature)
    result = run(lambda c: ops.send(c, target, update, payload, request_id))
    out.print(f"{target}: {result.message}")


@app.command()
def start(
    model: Annotated[str, typer.Option("--model", "-m", help="New model: identifier, key or name.")],
    replaces: Annotated[str | None, typer.Option("--replaces", "-r", help="The model being replaced.")] = None,
    features: Annotated[
        list[str] | None, typer.Option("--feature", "-f", help="Feature to migrate (repeat); default: every feature on --replaces.")
    ] = None,
    target_date: Annotated[str | None, typer.Option("--target-date", help="Plan backwards so cleanup is due then (YYYY-MM-DD).")] = None,
    day_seconds: Annotated[float | None, typer.Option(
        "--day-seconds", callback=positive_seconds, help="Rehearsal: one plan day lasts this many seconds.",
    )] = None,
    activity_timeout: Annotated[float, typer.Option(
        "--activity-timeout", callback=positive_seconds, help="Seconds before a stuck GitLab call is retried.",
    )] = 30.0,
    rerun: Annotated[bool, typer.Option("--rerun", help="Run a finished migration again, with new issues.")] = False,
    actor: Actor = "ai-framework",
) -> None:
    """Start a model migration (AI Framework)."""
    from model_migration.catalog import load_catalog

    s = settings()
    catalog = load_catalog(s.catalog_dir)
    day = timedelta(seconds=day_seconds) if day_seconds is not None else timedelta(days=1)
    target = parse_when(target_date) if target_date else None
    tune = ops.tunables(day).model_copy(update={"activity_timeout": timedelta(seconds=activity_timeout)})
    request = ops.build_input(
        catalog, model, replaces, features or [], target=target, actor=actor, tune=tune, initiative=s.initiative_epic,
    )
    ops.preflight(request, datetime.now(UTC).date())
    workflow_id = run(lambda c: ops.start(c, s.task_queue, request, rerun=rerun))
    again = " again" if rerun else ""
    names = [f.name for f in request.features]
    shown = ", ".join(names[:SHOWN_FEATURES]) + (f" and {len(names) - SHOWN_FEATURES} more" if len(names) > SHOWN_FEATURES else "")
    out.print(f"started {workflow_id}{again} with {len(names)} features: {shown}")


@app.command()
def plan(
    model: Annotated[str, typer.Option("--model", "-m", help="The model being retired: identifier, key or name.")],
    cutoff: Annotated[str, typer.Option("--cutoff", help="The provider's cutoff (retirement) date, YYYY-MM-DD.")],
    lead_weeks: Annotated[int, typer.Option("--lead-weeks", help="Weeks between the epic's due date and the cutoff (2–4).")] = 4,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Plan as if today were this date (YYYY-MM-DD).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Plan a deprecation backwards from its cutoff, without starting anything (AI Framework)."""
    from model_migration.catalog import load_catalog
    from model_migration.domain.deprecation import backward_plan, escalation_calendar

    catalog = load_catalog(settings().catalog_dir)
    retiring = catalog.model(model)
    today = parse_when(as_of).date() if as_of else datetime.now(UTC).date()
    features = tuple(catalog.features_on(retiring.gitlab_identifier))
    planned = backward_plan(retiring.gitlab_identifier, parse_when(cutoff).date(), features, today, timedelta(weeks=lead_weeks))
    calendar = escalation_calendar(planned)
    if as_json:
        body = planned.model_dump(mode="json")
        body.update(feasible=planned.feasible, shortfall_days=planned.shortfall_days, summary=planned.summary(),
                    calendar=[e.model_dump(mode="json") for e in calendar])
        print(json.dumps(body, indent=2))
    else:
        render.deprecation_plan(out, planned, calendar)


@app.command()
def status(workflow_id: WorkflowId, feature: Feature = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a migration's, a feature's or a deprecation's timeline."""
    if deprecation_cli.is_deprecation(workflow_id, feature):
        deprecation_cli.status(workflow_id, as_json)
        return
    target = ops.target_id(workflow_id, feature)
    st = run(lambda c: ops.inspect(c, target))
    if as_json:
        print(st.model_dump_json(indent=2))
    else:
        render.status(out, st, trouble=st.gitlab_trouble)


@app.command("list")
def list_(
    include_closed: Annotated[bool, typer.Option("--all", help="Include finished migrations and deprecations.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List migrations (stage, features done, the nearest open deadline) and deprecations (cutoff, due, late features)."""

    async def both(client: Any) -> tuple[list[listing.Row], list[listing.DeprecationRow]]:
        return await listing.list_migrations(client, include_closed), await listing.list_deprecations(client, include_closed)

    rows, deprecations = run(both)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in (*rows, *deprecations)], indent=2))
    else:
        render.rows(out, rows, include_closed)
        if deprecations:
            deprecation_render.rows(out, deprecations, include_closed)


@app.command()
def complete(
    workflow_id: WorkflowId,
    stage: Annotated[str, typer.Option(
        "--stage", "-s", callback=one_of(*COMPLETABLE), help="init (a migration), implement or cleanup (a feature).",
    )],
    feature: Feature = None,
    prompt_version: Annotated[str | None, typer.Option("--prompt-version")] = None,
    flag: Annotated[str | None, typer.Option("--flag")] = None,
    note: Annotated[str, typer.Option("--note")] = "",
    actor: Actor = "",
    request_id: RequestId = None,
) -> None:
    """Mark a stage complete (feature teams)."""
    on_feature = feature is not None or ops.is_feature_id(workflow_id)
    if on_feature and stage not in ON_FEATURE:
        raise Fail(f"{stage} belongs to the migration: drop --feature and use the migration id")
    if not on_feature and stage not in ON_MIGRATION:
        raise Fail(f"{stage} belongs to a feature: add --feature <name> (or use the feature's workflow id)")
    named = FeatureStage(stage) if on_feature else MigrationStage(stage)
    payload = CompleteStage(stage=named, actor=actor or default_actor(), prompt_version=prompt_version, flag_name=flag, note=note)
    command(workflow_id, feature, "complete_stage", payload, request_id)


@app.command("report-eval")
def report_eval(
    workflow_id: WorkflowId,
    verdict: Annotated[Verdict, typer.Option("--verdict")],
    feature: Feature = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", help="name=baseline:candidate (repeat).")] = None,
    dataset: Annotated[str, typer.Option("--dataset")] = "",
    summary: Annotated[str, typer.Option("--summary")] = "",
    url: Annotated[str, typer.Option("--url", help="Per-example results in the experiment service's results format.")] = "",
    actor: Actor = "",
    request_id: RequestId = None,
) -> None:
    """Report an evaluation from your own harness: --url links its per-example results, which the engine's gate judges."""
    payload = ReportEvaluation(
        actor=actor or default_actor(), verdict=verdict, metrics=tuple(parse_metric(m) for m in metric or []),
        dataset=dataset, summary=summary, url=url,
    )
    command(workflow_id, feature, "report_evaluation", payload, request_id)


def _feature_only(workflow_id: str, feature: str | None, what: str) -> None:
    if feature is None and not ops.is_feature_id(workflow_id):
        ops.check_id(workflow_id)
        raise Fail(f"{what} belongs to a feature: add --feature <name> (or use the feature's workflow id)")


def _decide(update: str, workflow_id: str, feature: str | None, actor: str, reason: str, request_id: str | None) -> None:
    """approve or reject: the DRI's decision on an inconclusive gate, with a reason."""
    _feature_only(workflow_id, feature, "an evaluation")
    payload = (Approve if update == "approve" else Reject)(actor=actor or default_actor(), reason=reason)
    command(workflow_id, feature, update, payload, request_id)


@app.command()
def approve(
    workflow_id: WorkflowId, reason: Annotated[str, typer.Option("--reason", help="Why the candidate may roll out.")],
    feature: Feature = None, actor: Actor = "", request_id: RequestId = None,
) -> None:
    """Pass an inconclusive evaluation gate (the feature's DRI): the feature rolls out."""
    _decide("approve", workflow_id, feature, actor, reason, request_id)


@app.command()
def reject(
    workflow_id: WorkflowId, reason: Annotated[str, typer.Option("--reason", help="Why the candidate needs a new prompt version.")],
    feature: Feature = None, actor: Actor = "", request_id: RequestId = None,
) -> None:
    """Fail an inconclusive evaluation gate (the feature's DRI): back to implement."""
    _decide("reject", workflow_id, feature, actor, reason, request_id)


@app.command()
def evaluate(
    workflow_id: WorkflowId,
    rerun: Annotated[bool, typer.Option("--rerun", help="Run the harness and the gate again.")] = False,
    feature: Feature = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
    actor: Actor = "",
    request_id: RequestId = None,
) -> None:
    """Run a feature's evaluation again (after a harness error, or to settle an inconclusive gate)."""
    if not rerun:
        raise Fail("the evaluation runs by itself when a feature enters evaluate; pass --rerun to run it again")
    _feature_only(workflow_id, feature, "an evaluation")
    command(workflow_id, feature, "rerun_evaluation", RerunEvaluation(actor=actor or default_actor(), reason=reason), request_id)


@app.command("report-rollout")
def report_rollout(
    workflow_id: WorkflowId,
    percentage: Annotated[int, typer.Option("--percentage", "-p")],
    feature: Feature = None,
    rollback: Annotated[bool, typer.Option("--rollback")] = False,
    note: Annotated[str, typer.Option("--note")] = "",
    actor: Actor = "",
    request_id: RequestId = None,
) -> None:
    """Report the feature flag's rollout percentage."""
    payload = ReportRollout(actor=actor or default_actor(), percentage=percentage, rollback=rollback, note=note)
    command(workflow_id, feature, "report_rollout", payload, request_id)


@app.command()
def pause(
    workflow_id: WorkflowId, feature: Feature = None, reason: Annotated[str, typer.Option("--reason")] = "", actor: Actor = "",
    request_id: RequestId = None,
) -> None:
    """Pause a migration or one feature; deadlines stop while paused."""
    command(workflow_id, feature, "pause", Pause(actor=actor or default_actor(), reason=reason), request_id)


@app.command()
def resume(
    workflow_id: WorkflowId, feature: Feature = None, note: Annotated[str, typer.Option("--note")] = "", actor: Actor = "",
    request_id: RequestId = None,
) -> None:
    """Resume a paused or blocked migration or feature, or a deprecation blocked on GitLab."""
    if deprecation_cli.is_deprecation(workflow_id, feature):
        deprecation_cli.resume(workflow_id, actor, request_id)
        return
    command(workflow_id, feature, "resume", Resume(actor=actor or default_actor(), note=note), request_id)


@app.command()
def abort(
    workflow_id: WorkflowId, reason: Annotated[str, typer.Option("--reason")], feature: Feature = None, actor: Actor = "",
    request_id: RequestId = None,
) -> None:
    """Abort a migration or one feature."""
    command(workflow_id, feature, "abort", Abort(actor=actor or default_actor(), reason=reason), request_id)


@app.command("extend-deadline")
def extend_deadline(
    workflow_id: WorkflowId,
    stage: Annotated[str, typer.Option("--stage", "-s", callback=one_of(*DEADLINE_STAGES))],
    date: Annotated[str, typer.Option("--date", help="New due date, YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC).")],
    reason: Annotated[str, typer.Option("--reason")],
    feature: Feature = None,
    actor: Actor = "",
    request_id: RequestId = None,
) -> None:
    """Move a stage's due date later; later stages move with it."""
    if feature is None and not ops.is_feature_id(workflow_id):
        ops.check_id(workflow_id)
        raise Fail("deadlines belong to features: add --feature <name> (or use the feature's workflow id)")
    payload = ExtendDeadline(actor=actor or default_actor(), stage=FeatureStage(stage), new_date=parse_when(date), reason=reason)
    command(workflow_id, feature, "extend_deadline", payload, request_id)


def _exit(code: int) -> None:
    """Leave without interpreter finalization: Temporal's core threads can abort a finalizing process."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_app(argv: list[str] | None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        # Bare ``model-migration`` shows the help, as ``--help`` does.
        code = app(args=args or ["--help"], standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        return 130
    except typer.TyperException as err:
        return _fail(err.format_message())
    except (DomainError, Fail) as err:
        return _fail(str(err))
    except ValidationError as err:
        first = err.errors()[0]
        return _fail(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    except OSError as err:
        return _fail(str(err.strerror or err))
    except Exception as err:  # noqa: BLE001 - a bug still gets one line; the variable brings the traceback back
        if os.environ.get("MODEL_MIGRATION_DEBUG"):
            raise
        _fail(f"unexpected {type(err).__name__}: {err} (set MODEL_MIGRATION_DEBUG=1 for the traceback)")
        return 1
    return code if isinstance(code, int) else 0


def _fail(message: str) -> int:
    line = message.strip().splitlines()[0] if message.strip() else "failed"
    from model_migration import logging as mm_logging

    if mm_logging.json_enabled():
        # A worker logging JSON ends with JSON too: its log collector reads every line.
        import structlog

        structlog.get_logger("model_migration").error("fatal", error=line)
    else:
        print(f"error: {line}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> None:
    from model_migration import prometheus_setup, promptfoo_setup, services  # worker, dev-server, sandbox, demo; setup-*

    services.register(app)
    promptfoo_setup.register(app)
    prometheus_setup.register(app)
    deprecation_cli.register(app)
    from model_migration import unleash_setup  # setup-unleash

    unleash_setup.register(app)
    _exit(_run_app(argv))


if __name__ == "__main__":
    main()
