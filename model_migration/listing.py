"""``list``: migrations read from visibility, so one broken workflow cannot fail the listing.

A row needs a status query only when its search attributes are missing (a workflow started
before they existed); a query that fails marks that row and the others are still listed.
Deprecations are found by their workflow type and each is queried: their cutoff, due date and
late features change with every day and every ``update_cutoff``, which search attributes would not follow.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from model_migration.operations import ONE_DAY, closed_result
from workflows import attributes
from workflows.deprecation_messages import DeprecationResult, DeprecationStatus
from workflows.messages import Status

TERMINAL = frozenset({"done", "aborted", "failed"})
QUERY_TIMEOUT = timedelta(seconds=5)


class Row(BaseModel):
    kind: str = "migration"
    workflow_id: str
    model: str
    #: The workflow's stage, "unreadable: <reason>" when it could not be read.
    stage: str
    running: bool
    done: int
    aborted: int = 0
    total: int
    next_deadline: datetime | None
    #: The feature whose deadline ``next_deadline`` is; empty for the migration's own.
    next_feature: str = ""
    days_left: float | None


async def list_migrations(client: Client, include_closed: bool = False, now: datetime | None = None) -> list[Row]:
    now = now or datetime.now(UTC)
    query = 'MigrationKind = "migration"'
    if not include_closed:
        query += ' AND ExecutionStatus = "Running"'
    migrations = _latest([e async for e in client.list_workflows(query)])
    features = [e async for e in client.list_workflows('MigrationKind = "feature"')] if migrations else []
    rows = [await _row(client, m, _features_of(m, features), now) for m in migrations]
    return sorted(rows, key=lambda r: r.workflow_id)


def _latest(executions: Iterable[WorkflowExecution]) -> list[WorkflowExecution]:
    """One execution per workflow id: the newest run (a rerun replaces the run before it)."""
    newest: dict[str, WorkflowExecution] = {}
    for e in executions:
        if e.id not in newest or e.start_time > newest[e.id].start_time:
            newest[e.id] = e
    return list(newest.values())


def _features_of(migration: WorkflowExecution, features: Iterable[WorkflowExecution]) -> list[WorkflowExecution]:
    """This run's feature children: same id prefix, started no earlier than the run itself."""
    prefix = f"{migration.id}:feature:"
    return _latest(f for f in features if f.id.startswith(prefix) and f.start_time >= migration.start_time)


def _stage(e: WorkflowExecution) -> str:
    return e.typed_search_attributes.get(attributes.STAGE) or ""


def _is_open(e: WorkflowExecution) -> bool:
    return e.status == WorkflowExecutionStatus.RUNNING and _stage(e) not in TERMINAL


async def _row(client: Client, m: WorkflowExecution, features: list[WorkflowExecution], now: datetime) -> Row:
    attrs = m.typed_search_attributes
    model, stage = attrs.get(attributes.MODEL) or "", _stage(m)
    names = list(attrs.get(attributes.FEATURES) or [])
    stages = {f.id.rsplit(":feature:", 1)[1]: _stage(f) or "unknown" for f in features}
    deadlines = [
        (due, f.id.rsplit(":feature:", 1)[1])
        for f in features if _is_open(f) and (due := f.typed_search_attributes.get(attributes.DUE_DATE))
    ]
    running = m.status == WorkflowExecutionStatus.RUNNING
    if running and not (model and stage):
        queried = await _query(client, m.id)
        if isinstance(queried, str):
            stage = f"unreadable: {queried}"
        else:
            progress = getattr(queried, "features", ())  # only a migration's status lists features
            model, stage, names = queried.model, str(queried.stage), [f.feature for f in progress]
            stages.update({f.feature: str(f.stage) for f in progress})
            deadlines += [(f.eta, f.feature) for f in progress if f.eta and str(f.stage) not in TERMINAL]
    elif not running:
        result = await closed_result(client, m)
        if result is not None:
            stage = str(result.stage)
            stages = {f.feature: str(f.stage) for f in result.features}
            names = names or list(stages)
        else:
            stage = stage or (m.status.name.lower() if m.status else "closed")
    if running and not deadlines and (own := attrs.get(attributes.DUE_DATE)) and stage not in TERMINAL:
        deadlines.append((own, ""))  # no feature has started yet: the migration's own due date
    nxt, feature = min(deadlines) if deadlines else (None, "")
    # A big migration's MigrationFeatures holds only the names that fit: its children tell the rest.
    values = [stages.get(n, "") for n in sorted(set(names) | set(stages))]
    return Row(
        workflow_id=m.id, model=model, stage=stage, running=running,
        done=values.count("done"), aborted=values.count("aborted"), total=len(values),
        next_deadline=nxt, next_feature=feature, days_left=(nxt - now) / ONE_DAY if nxt else None,
    )


async def _query(client: Client, workflow_id: str) -> Status | str:
    """The workflow's status, or one line saying why it could not be read."""
    try:
        return await client.get_workflow_handle(workflow_id).query(
            "status", result_type=Status, rpc_timeout=QUERY_TIMEOUT,
        )
    except Exception as err:  # noqa: BLE001 - any failure here belongs in this row, not the command
        text = getattr(err, "message", "") or str(err) or type(err).__name__
        return text.strip().splitlines()[0][:160]


class DeprecationRow(BaseModel):
    kind: str = "deprecation"
    workflow_id: str
    model: str = ""
    #: The deprecation's stage, "unreadable: <reason>" when it could not be read.
    stage: str
    running: bool
    cutoff: date | None = None
    due: date | None = None
    #: Plan days until the due date.
    days_left: int | None = None
    feasible: bool | None = None
    on_track: int = 0
    late: int = 0
    replacement: str = ""


async def list_deprecations(client: Client, include_closed: bool = False) -> list[DeprecationRow]:
    query = 'WorkflowType = "ModelDeprecationWorkflow"'
    if not include_closed:
        query += ' AND ExecutionStatus = "Running"'
    found = _latest([e async for e in client.list_workflows(query)])
    rows = [await _deprecation_row(client, e) for e in found]
    return sorted(rows, key=lambda r: r.workflow_id)


async def _deprecation_row(client: Client, e: WorkflowExecution) -> DeprecationRow:
    model = e.typed_search_attributes.get(attributes.MODEL) or ""
    if e.status != WorkflowExecutionStatus.RUNNING:
        result = await _deprecation_result(client, e)
        state = e.status.name.lower() if e.status else "closed"
        if result is None:
            return DeprecationRow(workflow_id=e.id, model=model, stage=state, running=False)
        return DeprecationRow(
            workflow_id=e.id, model=result.model, stage="done" if state == "completed" else state, running=False,
            cutoff=result.cutoff, due=result.due, replacement=result.replacement,
        )
    try:
        st = await client.get_workflow_handle(e.id).query("status", result_type=DeprecationStatus, rpc_timeout=QUERY_TIMEOUT)
    except Exception as err:  # noqa: BLE001 - any failure here belongs in this row, not the command
        return DeprecationRow(workflow_id=e.id, model=model, stage=f"unreadable: {_one_line(err)}", running=True)
    return DeprecationRow(
        workflow_id=e.id, model=st.model, stage=str(st.stage), running=True, cutoff=st.cutoff, due=st.due,
        days_left=st.days_left, feasible=st.feasible, on_track=len(st.on_track), late=len(st.late), replacement=st.replacement,
    )


async def _deprecation_result(client: Client, e: WorkflowExecution) -> DeprecationResult | None:
    if e.status != WorkflowExecutionStatus.COMPLETED:
        return None
    handle = client.get_workflow_handle(e.id, run_id=e.run_id, result_type=DeprecationResult)
    try:
        return await handle.result(follow_runs=False)
    except Exception:  # noqa: BLE001 - an unreadable old result only costs the row its detail
        return None


def _one_line(err: BaseException) -> str:
    text = getattr(err, "message", "") or str(err) or type(err).__name__
    return str(text).strip().splitlines()[0][:160]
