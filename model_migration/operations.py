"""What the CLI does against Temporal: start, query and send commands (``listing`` lists)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from model_migration.domain.catalog import Catalog
from model_migration.domain.compat import compatibility_problems
from model_migration.domain.deadlines import StagePlan, check_plan
from model_migration.domain.errors import CommandRejected, DomainError, ErrorType
from model_migration.domain.escalation import DEFAULT_LADDER, scaled_ladder
from model_migration.domain.models import EpicRef
from model_migration.domain.requests import command_digest
from model_migration.trouble import GitLabTrouble, gitlab_trouble
from workflows import attributes
from workflows.messages import (
    MIGRATION_REVISION,
    CommandResult,
    FeatureStatus,
    MigrationInput,
    MigrationResult,
    MigrationStatus,
    Status,
    Tunables,
    feature_workflow_id,
    migration_id,
)
from workflows.migration import ModelMigrationWorkflow

ID = re.compile(
    r"^(?:migration:[a-z0-9_.-]+/[a-z0-9_.@-]+/[A-Za-z0-9_.@-]+|deprecation:[a-z0-9_.-]+/[a-z0-9_.@-]+:migration)(?::feature:[a-z0-9_]+)?$"
)
#: A deprecation itself (its migration is ``<id>:migration``).
DEPRECATION = re.compile(r"^deprecation:[a-z0-9_.-]+/[a-z0-9_.@-]+$")
ONE_DAY = timedelta(days=1)
#: The CLI command that sends each update, to name it back to a person.
CLI_NAMES = {
    "complete_stage": "complete", "report_evaluation": "report-eval", "report_rollout": "report-rollout",
    "extend_deadline": "extend-deadline", "pause": "pause", "resume": "resume", "abort": "abort",
    "approve": "approve", "reject": "reject", "rerun_evaluation": "evaluate --rerun", "retry_rollout": "rollout retry",
}


class UserError(DomainError):
    """Something the user can fix; printed as one line."""

    type = ErrorType.INVALID_INPUT


def check_id(workflow_id: str) -> str:
    if DEPRECATION.match(workflow_id):
        raise UserError(
            f"{workflow_id} is a deprecation: it takes status, select-replacement, update-cutoff and resume; "
            f"its migration is {workflow_id}:migration"
        )
    if not ID.match(workflow_id):
        raise UserError(
            f"malformed id {workflow_id!r}: expected migration:<provider>/<model>/<version>"
            " or deprecation:<provider>/<model>[:migration] (add :feature:<name> for one feature)"
        )
    return workflow_id


def is_feature_id(workflow_id: str) -> bool:
    return ":feature:" in workflow_id


def target_id(workflow_id: str, feature: str | None) -> str:
    check_id(workflow_id)
    if feature is None:
        return workflow_id
    if is_feature_id(workflow_id):
        raise UserError("give either a feature workflow id or --feature, not both")
    return feature_workflow_id(workflow_id, feature)


def tunables(day: timedelta = ONE_DAY, target: datetime | None = None) -> Tunables:
    """Default durations, with one plan day lasting ``day`` (seconds for rehearsals and demos)."""
    base = StagePlan()
    factor = day / ONE_DAY
    plan = StagePlan(
        implement=base.implement * factor, evaluate=base.evaluate * factor,
        rollout=base.rollout * factor, cleanup=base.cleanup * factor, target=target,
    )
    ladder = DEFAULT_LADDER if day == ONE_DAY else scaled_ladder(day)
    poll = max(timedelta(seconds=1), Tunables().merge_poll * factor)
    # A rehearsal's harness is polled faster too, but never below a fifth of a second.
    defaults = Tunables()
    harness_poll = min(defaults.evaluation_poll, max(timedelta(seconds=0.2), defaults.evaluation_poll * factor))
    heartbeat = min(defaults.evaluation_heartbeat, max(timedelta(seconds=3), defaults.evaluation_heartbeat * factor))
    return Tunables(plan=plan, ladder=ladder, merge_poll=poll, evaluation_poll=harness_poll, evaluation_heartbeat=heartbeat)


def build_input(
    catalog: Catalog,
    model: str,
    replaces: str | None,
    features: list[str],
    *,
    target: datetime | None = None,
    now: datetime | None = None,
    actor: str = "ai-framework",
    tune: Tunables | None = None,
    initiative: str | None = None,
) -> MigrationInput:
    """Validate a start request against the catalog; raise one clear error if it does not fit.

    ``initiative`` is the initiative epic's reference (``<group>&<iid>``) the tracking issue is
    filed under."""
    target_model = catalog.model(model)
    replaced = catalog.model(replaces) if replaces else None
    if replaced is not None and replaced.gitlab_identifier == target_model.gitlab_identifier:
        raise UserError("the new model and the replaced model are the same")
    if features:
        specs = [catalog.feature(name) for name in features]
    elif replaced is not None:
        specs = catalog.features_on(replaced.gitlab_identifier)
        if not specs:
            raise UserError(f"no feature runs on {replaced.gitlab_identifier}; name features with --feature")
    else:
        raise UserError("name the features with --feature, or the model being replaced with --replaces")
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"feature listed twice: {', '.join(duplicates)}")
    tune = tune or tunables(target=target)
    if target is not None:
        tune = tune.model_copy(update={"plan": tune.plan.model_copy(update={"target": target})})
    check_plan(now or datetime.now(UTC), tune.plan)
    try:
        epic = EpicRef.parse(initiative) if initiative else None
    except ValueError as err:
        raise UserError(f"MODEL_MIGRATION_INITIATIVE_EPIC: {err}") from None
    return MigrationInput(
        model=target_model, replaced=replaced, features=tuple(specs), tunables=tune, started_by=actor,
        revision=MIGRATION_REVISION, initiative_epic=epic,
    )


def preflight(request: MigrationInput, today: date) -> None:
    """What would make the workflow fail at once, refused before anything starts."""
    for role, model in (("replaced", request.replaced), ("new", request.model)):
        retired = model.deprecation.retirement_date if model and model.deprecation else None
        if model is not None and retired is not None and retired < today:
            raise UserError(f"the {role} model {model.gitlab_identifier} was retired on {retired}; nothing was started")
    problems = compatibility_problems(request.model, request.features)
    if problems:
        raise UserError(f"infrastructure check failed: {'; '.join(problems)}; nothing was started")


async def start(client: Client, task_queue: str, request: MigrationInput, *, rerun: bool = False) -> str:
    """Start a migration. A finished one is only started again on purpose (``rerun``)."""
    workflow_id = migration_id(request.model)
    previous = await _describe(client, workflow_id)
    if previous is not None and previous.status == WorkflowExecutionStatus.RUNNING:
        raise _already_running(workflow_id)
    if previous is not None and not rerun:
        outcome = await finished_outcome(client, previous)
        raise UserError(
            f"migration {workflow_id} already finished ({outcome}); nothing was started"
            " — add --rerun to run it again"
        )
    if previous is None and rerun:
        raise UserError(f"{workflow_id} has never run, so there is nothing to rerun; start it without --rerun")
    if previous is not None:
        request = request.model_copy(update={"rerun": await _previous_rerun(client, previous) + 1})
    if request.planned_from is None:
        request = request.model_copy(update={"planned_from": datetime.now(UTC)})
    try:
        await client.start_workflow(
            ModelMigrationWorkflow.run, request, id=workflow_id, task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=attributes.at_migration_start(request),
        )
    except WorkflowAlreadyStartedError:
        raise _already_running(workflow_id) from None
    except RPCError as err:
        raise UserError(f"Temporal refused to start {workflow_id}: {err.message}") from None
    return workflow_id


def _already_running(workflow_id: str) -> UserError:
    return UserError(f"migration {workflow_id} is already running; see: model-migration status {workflow_id}")


async def _describe(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise UserError(f"Temporal refused to describe {workflow_id}: {err.message}") from None


async def closed_result(client: Client, run: WorkflowExecution) -> MigrationResult | None:
    """The result a completed migration run returned; None when it did not complete."""
    if run.status != WorkflowExecutionStatus.COMPLETED:
        return None
    handle = client.get_workflow_handle(run.id, run_id=run.run_id, result_type=MigrationResult)
    try:
        return await handle.result(follow_runs=False)
    except (WorkflowFailureError, RPCError, ApplicationError, ValueError):
        return None  # an unreadable old result only costs the summary its detail


async def finished_outcome(client: Client, run: WorkflowExecutionDescription) -> str:
    """One phrase for a closed migration run: its stage and what became of its features."""
    result = await closed_result(client, run)
    if result is None:
        state = run.status.name.lower() if run.status else "closed"
        return f"{state} on {run.close_time:%Y-%m-%d}" if run.close_time else state
    stages = [str(f.stage) for f in result.features]
    counts = ", ".join(f"{stages.count(s)} {s}" for s in sorted(set(stages)))
    issue = f"; tracking issue {result.tracking_issue_url}" if result.tracking_issue_url else ""
    return f"{result.stage}: {counts or 'no features'}{issue}"


async def _previous_rerun(client: Client, run: WorkflowExecutionDescription) -> int:
    """The rerun count the closed run was started with, from its first history event."""
    handle = client.get_workflow_handle(run.id, run_id=run.run_id)
    async for event in handle.fetch_history_events(page_size=1):
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        [previous] = await client.data_converter.decode(payloads, [MigrationInput])
        return int(previous.rerun)
    return 0


class FeatureStatusView(FeatureStatus):
    """What ``status`` shows of a feature: the workflow's own answer plus what only the server knows."""

    gitlab_trouble: GitLabTrouble | None = None


class MigrationStatusView(MigrationStatus):
    """What ``status`` shows of a migration: the workflow's own answer plus what only the server knows."""

    gitlab_trouble: GitLabTrouble | None = None


StatusView = FeatureStatusView | MigrationStatusView


async def status(client: Client, workflow_id: str) -> Status:
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.query("status", result_type=Status)
    except RPCError as err:
        raise await _explain(client, err, workflow_id) from None


async def inspect(client: Client, workflow_id: str) -> StatusView:
    """The status query, plus GitLab trouble read from the server's pending activities."""
    st = await status(client, workflow_id)
    trouble = await gitlab_trouble(client, workflow_id)
    view = FeatureStatusView if isinstance(st, FeatureStatus) else MigrationStatusView
    return view.model_validate({**st.model_dump(), "gitlab_trouble": trouble})


async def send(client: Client, workflow_id: str, update: str, payload: BaseModel, request_id: str | None = None) -> CommandResult:
    """Send a human command; the request id makes a retried command run once."""
    handle = client.get_workflow_handle(workflow_id)
    request_id = request_id or str(uuid.uuid4())
    try:
        result = await handle.execute_update(update, payload, id=request_id, result_type=CommandResult)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise CommandRejected(f"{workflow_id} refused {update}: {message}") from None
    except RPCError as err:
        raise await _explain(client, err, workflow_id) from None
    check_same_command(result, request_id, update, payload)
    return result


def check_same_command(result: CommandResult, request_id: str, update: str, payload: BaseModel) -> None:
    """Temporal answers a reused update id with the first command's result; say so instead of
    passing that answer off as this command's."""
    other_update = bool(result.command) and result.command != update
    other_payload = bool(result.digest) and result.digest != command_digest(update, payload)
    if other_update or other_payload:
        first = CLI_NAMES.get(result.command, result.command) or "another command"
        raise UserError(
            f"request id {request_id} was already used for {first}; nothing was changed — use a new --request-id"
        )


async def _explain(client: Client, err: RPCError, workflow_id: str) -> DomainError:
    if err.status == RPCStatusCode.NOT_FOUND:
        closed = await _describe(client, workflow_id)
        if closed is None:
            return UserError(f"no workflow {workflow_id}; see: model-migration list")
        # The workflow's own stage: an aborted feature's run completes, and "completed" would mislead.
        stage = closed.typed_search_attributes.get(attributes.STAGE)
        state = stage or (closed.status.name.lower() if closed.status else "closed")
        return UserError(f"{workflow_id} has finished ({state}); it takes no more commands")
    return UserError(f"Temporal refused the request for {workflow_id}: {err.message}")
