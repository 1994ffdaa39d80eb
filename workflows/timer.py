"""The escalation timer, in the shape of the ``updatable_timer`` sample: the workflow asks it to
sleep until the next planned escalation, and a command that changes the plan wakes it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow


class EscalationTimer:
    """``kept``: one timer per planned escalation, kept across commands that leave the plan
    alone (feature revision 2 on). Otherwise every wait starts a fresh timer, as revision 1 did."""

    def __init__(self, *, kept: bool) -> None:
        self._kept = kept
        self._task: asyncio.Task[None] | None = None
        self._at: datetime | None = None

    async def sleep(self, at: datetime | None, changed: Callable[[], bool]) -> bool:
        """Sleep until ``at`` (None: no escalation planned) or until ``changed()``.
        True when the escalation is due now, False when a command came first."""
        if at is None:
            self.cancel()
            await workflow.wait_condition(changed)
            return False
        if not self._kept:
            delay = at - workflow.now()
            if delay > timedelta(0):
                try:
                    await workflow.wait_condition(changed, timeout=delay)
                    return False
                except TimeoutError:
                    pass
            return True
        if at <= workflow.now():
            self.cancel()  # due already (a worker back after a while): no timer for the old plan
            return True
        timer = self._arm(at)
        await workflow.wait_condition(lambda: changed() or timer.done())
        if not timer.done():
            return False
        self._task = None
        return not changed()  # a command came with the timer: plan again from the new state

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = self._at = None

    def _arm(self, at: datetime) -> asyncio.Task[None]:
        """The running timer if it is for ``at``, else a new one."""
        if self._task is not None and self._at == at and not self._task.done():
            return self._task
        self.cancel()
        self._task = asyncio.create_task(workflow.sleep(at - workflow.now()))
        self._at = at
        return self._task
