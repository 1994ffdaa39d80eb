"""DeprecationWatchWorkflow: one pass of the deprecation watch, as the ``deprecation-watch`` schedule starts it daily.

The pass is one activity (``activities/watch.py``): it reads the catalog's and the AI gateway's
deprecation notices, starts a ``ModelDeprecationWorkflow`` for each new one and moves the cutoff
of each running one whose date moved. Its report is this workflow's result.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.watch import WatchActivities
    from activities.watch_payloads import WatchInput, WatchReport
    from model_migration.domain.errors import ErrorType

#: A pass is idempotent, so a failed one (Temporal unreachable from the worker, say) is simply run again.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5), maximum_attempts=5,
    non_retryable_error_types=ErrorType.non_retryable(),
)


@workflow.defn
class DeprecationWatchWorkflow:
    @workflow.run
    async def run(self, input: WatchInput) -> WatchReport:
        return await workflow.execute_activity_method(
            WatchActivities.watch_deprecations, input, start_to_close_timeout=input.timeout, retry_policy=RETRY,
        )
