"""The ``deprecation-watch`` schedule: install it (or update it), and run the watch now."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowFailureError,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.watch_payloads import WATCH_WORKFLOW, WatchInput, WatchReport
from model_migration.operations import UserError

SCHEDULE_ID = "deprecation-watch"
_EVERY = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_every(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``1d``, ``2w``."""
    found = _EVERY.match(text.strip())
    span = timedelta(**{_UNITS[found["unit"]]: float(found["n"])}) if found else timedelta(0)
    if span < timedelta(minutes=1):
        raise UserError(f"--every {text!r}: use a number and one of s, m, h, d, w, at least a minute (e.g. 1d, 12h)")
    return span


def schedule(task_queue: str, every: timedelta) -> Schedule:
    """A pass every ``every``; a pass still running when the next is due makes that one skip."""
    return Schedule(
        action=ScheduleActionStartWorkflow(WATCH_WORKFLOW, WatchInput(), id=SCHEDULE_ID, task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def install(client: Client, task_queue: str, every: timedelta) -> str:
    """Create the schedule, or bring an existing one to this action and interval (its paused state stays);
    "created" or "updated"."""
    wanted = schedule(task_queue, every)
    try:
        await client.create_schedule(SCHEDULE_ID, wanted)
        return "created"
    except ScheduleAlreadyRunningError:
        pass

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=dataclasses.replace(wanted, state=current.description.schedule.state))

    await client.get_schedule_handle(SCHEDULE_ID).update(update)
    return "updated"


async def describe(client: Client) -> ScheduleDescription | None:
    try:
        return await client.get_schedule_handle(SCHEDULE_ID).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise UserError(f"Temporal refused to describe schedule {SCHEDULE_ID}: {err.message}") from None


def _actions(description: ScheduleDescription) -> set[str]:
    info = description.info
    return {a.workflow_id for a in info.running_actions} | {r.action.workflow_id for r in info.recent_actions}


async def run_now(client: Client, task_queue: str, timeout: timedelta) -> tuple[str, bool, WatchReport]:
    """Trigger the schedule when it is installed, else start one pass directly; wait for its report.
    The pass's workflow id, whether the schedule ran it, and the report."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout.total_seconds()
    before = await describe(client)
    if before is None:
        workflow_id = f"{SCHEDULE_ID}-{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%fZ}"
        await client.start_workflow(WATCH_WORKFLOW, WatchInput(), id=workflow_id, task_queue=task_queue)
    else:
        seen = _actions(before)
        await client.get_schedule_handle(SCHEDULE_ID).trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
        while True:
            now = await describe(client)
            fresh = sorted(_actions(now) - seen) if now else []
            if fresh:
                workflow_id = fresh[-1]
                break
            if loop.time() > end:
                raise UserError(f"schedule {SCHEDULE_ID} was triggered but started no run within {timeout.total_seconds():g} s")
            await asyncio.sleep(0.2)
    handle = client.get_workflow_handle(workflow_id, result_type=WatchReport)
    try:
        report = await asyncio.wait_for(handle.result(), max(end - loop.time(), 1.0))
    except TimeoutError:
        raise UserError(
            f"the watch run {workflow_id} did not finish within {timeout.total_seconds():g} s; is a worker running on task "
            f"queue {task_queue}? see: temporal workflow show -w {workflow_id}"
        ) from None
    except WorkflowFailureError as err:
        cause = err.cause
        raise UserError(f"the watch run {workflow_id} failed: {getattr(cause, 'message', '') or cause or err}") from None
    return workflow_id, before is not None, report
