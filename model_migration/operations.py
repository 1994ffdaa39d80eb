"""What the CLI does against Temporal: start, query, list and send commands."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from model_migration.domain.catalog import Catalog
from model_migration.domain.deadlines import StagePlan, check_plan
from model_migration.domain.errors import CommandRejected, DomainError, ErrorType
from model_migration.domain.escalation import DEFAULT_LADDER, scaled_ladder
from model_migration.domain.stages import Stage
from workflows import attributes
from workflows.messages import CommandResult, MigrationInput, Status, Tunables, feature_workflow_id, migration_id
from workflows.migration import ModelMigrationWorkflow

ID = re.compile(r"^migration:[a-z0-9_.-]+/[a-z0-9_.@-]+/[A-Za-z0-9_.@-]+(?::feature:[a-z0-9_]+)?$")
ONE_DAY = timedelta(days=1)


class UserError(DomainError):
    """Something the user can fix; printed as one line."""

    type = ErrorType.INVALID_INPUT


def check_id(workflow_id: str) -> str:
    if not ID.match(workflow_id):
        raise UserError(
            f"malformed id {workflow_id!r}: expected migration:<provider>/<model>/<version>"
            " (add :feature:<name> for one feature)"
        )
    return workflow_id


def target_id(workflow_id: str, feature: str | None) -> str:
    check_id(workflow_id)
    if feature is None:
        return workflow_id
    if ":feature:" in workflow_id:
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
    return Tunables(plan=plan, ladder=ladder, merge_poll=poll)


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
) -> MigrationInput:
    """Validate a start request against the catalog; raise one clear error if it does not fit."""
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
    check_plan(now or datetime.now(timezone.utc), tune.plan)
    return MigrationInput(model=target_model, replaced=replaced, features=tuple(specs), tunables=tune, started_by=actor)


async def start(client: Client, task_queue: str, request: MigrationInput) -> str:
    workflow_id = migration_id(request.model)
    if request.planned_from is None:
        request = request.model_copy(update={"planned_from": datetime.now(timezone.utc)})
    try:
        await client.start_workflow(
            ModelMigrationWorkflow.run, request, id=workflow_id, task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=attributes.at_migration_start(request),
        )
    except WorkflowAlreadyStartedError:
        raise UserError(
            f"migration {workflow_id} is already running; see: model-migration status {workflow_id}"
        ) from None
    return workflow_id


async def status(client: Client, workflow_id: str) -> Status:
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.query("status", result_type=Status)
    except RPCError as err:
        raise await _explain(client, err, workflow_id) from None


async def send(client: Client, workflow_id: str, update: str, payload: BaseModel, request_id: str | None = None) -> CommandResult:
    """Send a human command; the request id makes a retried command run once."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.execute_update(
            update, payload, id=request_id or str(uuid.uuid4()), result_type=CommandResult
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise CommandRejected(f"{workflow_id} refused {update}: {message}") from None
    except RPCError as err:
        raise await _explain(client, err, workflow_id) from None


async def _explain(client: Client, err: RPCError, workflow_id: str) -> DomainError:
    if err.status == RPCStatusCode.NOT_FOUND:
        try:
            closed = await client.get_workflow_handle(workflow_id).describe()
        except RPCError:
            return UserError(f"no workflow {workflow_id}; see: model-migration list")
        state = closed.status.name.lower() if closed.status else "closed"
        return UserError(f"{workflow_id} has finished ({state}); it takes no more commands")
    return UserError(f"Temporal refused the request for {workflow_id}: {err.message}")


class Row(BaseModel):
    workflow_id: str
    model: str
    stage: Stage
    done: int
    total: int
    next_deadline: datetime | None
    days_left: float | None


async def list_open(client: Client, include_closed: bool = False) -> list[Row]:
    query = 'MigrationKind = "migration"'
    if not include_closed:
        query += ' AND ExecutionStatus = "Running"'
    rows: list[Row] = []
    now = datetime.now(timezone.utc)
    async for execution in client.list_workflows(query):
        if execution.status != WorkflowExecutionStatus.RUNNING:
            rows.append(Row(workflow_id=execution.id, model="", stage=Stage.DONE, done=0, total=0, next_deadline=None, days_left=None))
            continue
        st = await status(client, execution.id)
        total = len(st.features)
        done = sum(1 for f in st.features if f.stage.terminal)
        open_etas = [f.eta for f in st.features if f.eta and not f.stage.terminal]
        nxt = min(open_etas) if open_etas else None
        rows.append(Row(
            workflow_id=execution.id, model=st.model, stage=st.stage, done=done, total=total,
            next_deadline=nxt, days_left=(nxt - now) / ONE_DAY if nxt else None,
        ))
    return sorted(rows, key=lambda r: r.workflow_id)


