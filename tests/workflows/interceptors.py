"""A worker interceptor that widens the window in which a feature tells its parent where it is.

It lives in its own module so that the workflow sandbox can import it (and the sleep it adds is
a workflow timer, so replay stays deterministic).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.worker import (
    Interceptor,
    SignalExternalWorkflowInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

#: How long each signal to the parent takes: long enough for a test to land a command meanwhile.
SLOW_SIGNAL = timedelta(seconds=2)


class _SlowOutbound(WorkflowOutboundInterceptor):
    async def signal_external_workflow(self, input: SignalExternalWorkflowInput) -> None:
        await workflow.sleep(SLOW_SIGNAL)
        return await super().signal_external_workflow(input)


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_SlowOutbound(outbound))


class SlowParentSignals(Interceptor):
    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor] | None:
        return _Inbound

    def intercept_activity(self, next: Any) -> Any:
        return next
