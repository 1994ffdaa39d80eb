"""The baseline: the engine's shape (updates that wake a run loop which then runs activities in
order) with no-op bodies, so what is left is the cost of Temporal itself."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from bench.baseline_payloads import BaselineInput, BaselineResult, NoopInput, NoopResult, Step, StepResult

NOOP = "bench_noop"
#: The engine's options (workflows.common.call with default Tunables); they cost nothing here.
TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


@activity.defn(name=NOOP)
def noop(request: NoopInput) -> NoopResult:
    """A sync activity, so it goes through the same thread pool as the GitLab activities."""
    return NoopResult(seq=request.seq)


@workflow.defn
class BaselineWorkflow:
    @workflow.init
    def __init__(self, input: BaselineInput) -> None:
        self.received = 0
        self.activities = 0

    @workflow.run
    async def run(self, input: BaselineInput) -> BaselineResult:
        await self._activities(input.initial)
        for done, count in enumerate(input.per_update):
            await workflow.wait_condition(lambda done=done: self.received > done)  # type: ignore[misc]
            await self._activities(count)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return BaselineResult(updates=self.received, activities=self.activities)

    async def _activities(self, count: int) -> None:
        for _ in range(count):
            self.activities += 1
            await workflow.execute_activity(
                NOOP, NoopInput(seq=self.activities), result_type=NoopResult,
                start_to_close_timeout=TIMEOUT, retry_policy=RETRY,
            )

    @workflow.update
    def step(self, cmd: Step) -> StepResult:
        self.received += 1
        return StepResult(index=cmd.index)


def build_worker(client: Client, task_queue: str, executor: ThreadPoolExecutor) -> Worker:
    """Configured as ``worker.build_worker`` configures the engine's worker."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BaselineWorkflow],
        activities=[noop],
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
    )
