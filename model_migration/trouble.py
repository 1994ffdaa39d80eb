"""GitLab trouble as the Temporal server sees it: an activity being retried, and why.

The workflow cannot tell: its activity call is simply still running while Temporal retries
it. The server's description of the workflow knows the attempt and the last failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, ConfigDict
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client
from temporalio.exceptions import FailureError
from temporalio.service import RPCError

from model_migration.codec import PayloadDecryptError

#: How far back ``since`` is looked for; a retried activity was scheduled recently in history.
REVERSE_PAGES = 3


class GitLabTrouble(BaseModel):
    model_config = ConfigDict(frozen=True)
    activity: str
    attempt: int
    last_error: str
    #: When the call was first scheduled; None when history did not tell.
    since: datetime | None = None
    last_failed_at: datetime | None = None
    next_attempt_at: datetime | None = None

    def summary(self) -> str:
        since = f" since {self.since:%H:%M} UTC" if self.since else ""
        return f"GitLab unreachable{since}, retrying (attempt {self.attempt}): {self.last_error}"


def worst_pending(pending: Sequence[PendingActivityInfo]) -> PendingActivityInfo | None:
    """The most retried pending activity that has failed at least once, if any."""
    failing = [p for p in pending if p.attempt > 1 and p.HasField("last_failure")]
    return max(failing, key=lambda p: p.attempt) if failing else None


def trouble_of(info: PendingActivityInfo, since: datetime | None = None, message: str | None = None) -> GitLabTrouble:
    """``message``: the last failure's, when it had to be decrypted (see ``failure_message``)."""
    message = ((info.last_failure.message if message is None else message) or "unknown error").strip().splitlines()[0][:300]
    failed_at = _time(info.last_attempt_complete_time) if info.HasField("last_attempt_complete_time") else None
    return GitLabTrouble(
        activity=info.activity_type.name, attempt=info.attempt, last_error=message,
        since=since or failed_at, last_failed_at=failed_at,
        next_attempt_at=_time(info.next_attempt_schedule_time) if info.HasField("next_attempt_schedule_time") else None,
    )


async def gitlab_trouble(client: Client, workflow_id: str) -> GitLabTrouble | None:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return None  # the status query answered; this is only an addition to it
    worst = worst_pending(description.raw_description.pending_activities)
    if worst is None:
        return None
    since = await _scheduled_at(client, workflow_id, description.run_id, worst.activity_id)
    return trouble_of(worst, since, await failure_message(client, worst.last_failure))


async def failure_message(client: Client, failure: Failure) -> str:
    """A failure's message; with the payload codec it travels encrypted in the encoded attributes."""
    if not failure.HasField("encoded_attributes"):
        return failure.message
    copy = Failure()
    copy.CopyFrom(failure)  # decoding works in place
    try:
        decoded = await client.data_converter.decode_failure(copy)
    except PayloadDecryptError as err:
        return str(err)
    return decoded.message if isinstance(decoded, FailureError) else str(decoded)


async def _scheduled_at(client: Client, workflow_id: str, run_id: str, activity_id: str) -> datetime | None:
    """The time the activity was first scheduled, read from the end of history."""
    token = b""
    for _ in range(REVERSE_PAGES):
        try:
            page = await client.workflow_service.get_workflow_execution_history_reverse(
                GetWorkflowExecutionHistoryReverseRequest(
                    namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                    maximum_page_size=100, next_page_token=token,
                )
            )
        except RPCError:
            return None
        for event in page.history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and (
                event.activity_task_scheduled_event_attributes.activity_id == activity_id
            ):
                return event.event_time.ToDatetime(tzinfo=UTC)
        token = page.next_page_token
        if not token:
            return None
    return None


def _time(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)
