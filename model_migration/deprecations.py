"""What the CLI and the deprecation watch do to deprecations: build the input, start, query, send updates.

``deprecate`` and the watch build a deprecation's input the same way (``build_input``) and
start it the same way (``start``), so a deprecation started by either is the same workflow.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.watch import AlreadyStarted, KnownDeprecation
from model_migration import operations as ops
from model_migration.domain.catalog import Catalog
from model_migration.domain.deprecation import BackwardPlan, DeprecationRequest, backward_plan, check_request
from model_migration.domain.deprecation_notices import DeprecationNotice
from model_migration.domain.errors import CommandRejected, DomainError
from model_migration.domain.models import EpicRef
from workflows import attributes
from workflows.deprecation_messages import DeprecationCommandResult, DeprecationInput, DeprecationStatus, UpdateCutoff, deprecation_id

WORKFLOW_TYPE = "ModelDeprecationWorkflow"
QUERY_TIMEOUT = timedelta(seconds=5)
#: The keys of a ``--file``: the flags' names (``-`` or ``_``), plus ``candidates`` for a list.
FILE_KEYS = ("model", "cutoff", "deprecation_date", "announcement", "recommended", "candidates", "lead_weeks", "day_seconds")


class RequestFile(BaseModel):
    """A ``deprecate --file``; every key may also be given as a flag, which wins."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str | None = None
    cutoff: date | None = None
    deprecation_date: date | None = None
    announcement: str | None = None
    recommended: str | None = None
    candidates: tuple[str, ...] = ()
    lead_weeks: int | None = None
    day_seconds: float | None = None


def is_deprecation_id(workflow_id: str) -> bool:
    return workflow_id.startswith("deprecation:") and ":" not in workflow_id.removeprefix("deprecation:")


def check_id(workflow_id: str) -> str:
    if not ops.DEPRECATION.match(workflow_id):
        raise ops.UserError(f"malformed id {workflow_id!r}: expected deprecation:<provider>/<model>")
    return workflow_id


def load_request_file(path: Path) -> RequestFile:
    """The file's keys as a request; an unknown key or a bad value is one line naming the file and the key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ops.UserError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ops.UserError(f"{path}: invalid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise ops.UserError(f"{path}: expected a mapping of {', '.join(FILE_KEYS)}")
    keys: dict[str, Any] = {}
    for raw, value in data.items():
        key = str(raw).replace("-", "_")
        key = "candidates" if key == "candidate" else key
        if key not in FILE_KEYS:
            raise ops.UserError(f"{path}: unknown key {raw!r}; known: {', '.join(FILE_KEYS)}")
        keys[key] = [value] if key == "candidates" and isinstance(value, str) else value
    try:
        return RequestFile.model_validate(keys)
    except ValidationError as err:
        first = err.errors()[0]
        raise ops.UserError(f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


def build_input(
    catalog: Catalog, request: DeprecationRequest, *, now: datetime, day: timedelta = ops.ONE_DAY,
    actor: str = "ai-framework", initiative: str | None = None,
) -> DeprecationInput:
    """Check the request against the catalog (one line when it does not fit), then the workflow's input,
    with every model resolved from the catalog and the plan starting ``now``."""
    features = check_request(request, catalog, now.date())
    retiring = catalog.model(request.model)
    recommended = catalog.model(request.recommended) if request.recommended else None
    candidates = tuple(catalog.model(c) for c in request.candidates)
    request = request.model_copy(update={
        "model": retiring.gitlab_identifier, "recommended": recommended.gitlab_identifier if recommended else None,
        "candidates": tuple(c.gitlab_identifier for c in candidates),
    })
    try:
        epic = EpicRef.parse(initiative) if initiative else None
    except ValueError as err:
        raise ops.UserError(f"MODEL_MIGRATION_INITIATIVE_EPIC: {err}") from None
    return DeprecationInput(
        request=request, retiring=retiring, recommended=recommended, candidates=candidates, features=features,
        tunables=ops.tunables(day), day=day, planned_from=now, initiative_epic=epic, started_by=actor,
    )


def plan_of(request: DeprecationInput) -> BackwardPlan:
    """The plan the workflow starts from: the one its first status shows."""
    today = (request.planned_from or datetime.now(UTC)).date()
    return backward_plan(
        request.request.model, request.request.cutoff, request.features, today, request.request.lead_time, request.rules,
    )


def _already_running(workflow_id: str) -> AlreadyStarted:
    return AlreadyStarted(f"deprecation {workflow_id} is already running; see: model-migration status {workflow_id}")


async def start(client: Client, task_queue: str, request: DeprecationInput) -> str:
    """Start the deprecation under its business key; a running one is ``AlreadyStarted`` (one line),
    a finished one is started again."""
    workflow_id = deprecation_id(request.retiring)
    found = await find(client, workflow_id)
    if found is not None and found.running:
        raise _already_running(workflow_id)
    searchable = TypedSearchAttributes([
        SearchAttributePair(attributes.KIND, "deprecation"),
        SearchAttributePair(attributes.MODEL, request.retiring.gitlab_identifier),
        SearchAttributePair(attributes.PROVIDER, request.retiring.provider),
        SearchAttributePair(attributes.FEATURES, attributes.fitting(f.name for f in request.features)),
    ])
    try:
        await client.start_workflow(
            WORKFLOW_TYPE, request, id=workflow_id, task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE, id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=searchable,
        )
    except WorkflowAlreadyStartedError:
        raise _already_running(workflow_id) from None
    except RPCError as err:
        raise ops.UserError(f"Temporal refused to start {workflow_id}: {err.message}") from None
    return workflow_id


async def find(client: Client, workflow_id: str) -> KnownDeprecation | None:
    """The deprecation under this id: a running one with the cutoff it plans to now, a closed one with
    how it ended; None when there never was one."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise ops.UserError(f"Temporal refused to describe {workflow_id}: {err.message}") from None
    if described.status != WorkflowExecutionStatus.RUNNING:
        state = described.status.name.lower() if described.status else "closed"
        return KnownDeprecation(workflow_id=workflow_id, running=False, state=state)
    return KnownDeprecation(workflow_id=workflow_id, running=True, cutoff=(await status(client, workflow_id)).cutoff)


async def status(client: Client, workflow_id: str) -> DeprecationStatus:
    handle = client.get_workflow_handle(workflow_id)
    try:
        result: DeprecationStatus = await handle.query("status", result_type=DeprecationStatus, rpc_timeout=QUERY_TIMEOUT)
        return result
    except RPCError as err:
        raise await _explain(client, err, workflow_id) from None
    except Exception as err:  # noqa: BLE001 - a failed query (a worker that cannot decode it) is one line too
        raise ops.UserError(f"the status of {workflow_id} cannot be read: {_line(err)}") from None


async def send(
    client: Client, workflow_id: str, update: str, payload: Any, request_id: str | None = None,
) -> DeprecationCommandResult:
    """Send an update; the workflow validator's refusal is one line naming the update."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        result: DeprecationCommandResult = await handle.execute_update(
            update, payload, id=request_id or str(uuid.uuid4()), result_type=DeprecationCommandResult,
        )
        return result
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise CommandRejected(f"{workflow_id} refused {update}: {message}") from None
    except RPCError as err:
        raise await _explain(client, err, workflow_id) from None


async def _explain(client: Client, err: RPCError, workflow_id: str) -> DomainError:
    if err.status == RPCStatusCode.NOT_FOUND:
        found = await find(client, workflow_id)
        if found is None:
            return ops.UserError(f"no deprecation {workflow_id}; see: model-migration list")
        return ops.UserError(f"{workflow_id} has finished ({found.state}); it takes no more commands")
    return ops.UserError(f"Temporal refused the request for {workflow_id}: {err.message}")


def _line(err: BaseException) -> str:
    text = getattr(err, "message", "") or str(err) or type(err).__name__
    return str(text).strip().splitlines()[0][:200]


class TemporalDeprecations:
    """The watch's ``Deprecations`` port over a Temporal client: starts as ``deprecate`` does."""

    def __init__(self, client: Client, task_queue: str, catalog: Catalog, initiative: str | None = None) -> None:
        self.client = client
        self.task_queue = task_queue
        self.catalog = catalog
        self.initiative = initiative

    async def find(self, workflow_id: str) -> KnownDeprecation | None:
        return await find(self.client, workflow_id)

    async def start(self, notice: DeprecationNotice, actor: str) -> str:
        request = build_input(self.catalog, notice.request(), now=datetime.now(UTC), actor=actor, initiative=self.initiative)
        return await start(self.client, self.task_queue, request)

    async def update_cutoff(self, workflow_id: str, new_date: date, reason: str, actor: str, request_id: str) -> None:
        await send(self.client, workflow_id, "update_cutoff", UpdateCutoff(new_date=new_date, reason=reason, actor=actor), request_id)
