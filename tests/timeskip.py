"""Moving the time-skipping server's clock, and saying what holds it when it will not move.

The test server skips time only while nothing holds its clock: every scheduled activity and every
workflow task holds it until it completes, in real time. One slow GitLab call, or one task on a
queue no worker polls, keeps a long ``sleep`` waiting; this says which.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ListOpenWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

#: Real seconds a skip may take: every activity it sets off runs in real time.
SKIP_TIMEOUT = 90.0


async def open_workflows(client: Client) -> list[WorkflowExecution]:
    """Every open workflow on the server (the test server lists no other way)."""
    found: list[WorkflowExecution] = []
    token = b""
    while True:
        page = await client.workflow_service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(namespace=client.namespace, maximum_page_size=1000, next_page_token=token)
        )
        found += [e.execution for e in page.executions]
        token = page.next_page_token
        if not token:
            return found


async def clock_holders(client: Client) -> list[str]:
    """What holds the clock now: each open workflow's running activities and pending workflow task."""
    held: list[str] = []
    for execution in await open_workflows(client):
        try:
            raw = (await client.get_workflow_handle(execution.workflow_id, run_id=execution.run_id).describe()).raw_description
        except RPCError as err:
            held.append(f"{execution.workflow_id}: not described ({err})")
            continue
        for a in raw.pending_activities:
            failure = f", last failure: {a.last_failure.message}" if a.HasField("last_failure") else ""
            held.append(f"{execution.workflow_id}: activity {a.activity_type.name} attempt {a.attempt}{failure}")
        if raw.HasField("pending_workflow_task"):
            held.append(f"{execution.workflow_id}: a workflow task (attempt {raw.pending_workflow_task.attempt})")
    return held


async def skip(env: WorkflowEnvironment, duration: timedelta, timeout: float = SKIP_TIMEOUT) -> None:
    """Move the clock on by ``duration``, running every timer due meanwhile; fail naming what held it."""
    try:
        await asyncio.wait_for(env.sleep(duration), timeout)
    except (TimeoutError, RPCError) as err:
        holders = await clock_holders(env.client)
        raise AssertionError(
            f"the time-skipping clock did not move on {duration} in {timeout:.0f} s ({err or type(err).__name__}); "
            f"holding it: {'; '.join(holders) or 'nothing open'}"
        ) from err


async def settle_and_terminate(client: Client, timeout: float = 30.0) -> None:
    """End every workflow still open once none has an activity running.

    Terminating a workflow while its activity runs leaves the test server's clock held for good
    (the activity's hold is never released), so this waits for quiet first; what is still busy
    after ``timeout`` is terminated anyway, and named."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    busy: list[str] = []
    while True:
        busy = [h for h in await clock_holders(client) if ": activity " in h]
        if not busy or loop.time() > end:
            break
        await asyncio.sleep(0.2)
    for execution in await open_workflows(client):
        try:
            await client.get_workflow_handle(execution.workflow_id, run_id=execution.run_id).terminate("test over")
        except RPCError:
            pass  # ended meanwhile
    assert not busy, f"terminated with activities still running (the clock may stay held): {'; '.join(busy)}"
