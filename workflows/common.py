"""Plumbing shared by the workflows: GitLab activity calls, the note outbox, history."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.payloads import Activity, NoteRef, NotifyInput, PostNoteInput
    from model_migration.domain.errors import ErrorType
    from model_migration.domain.models import marker_comment
    from model_migration.domain.stages import Stage
    from workflows.messages import Transition

T = TypeVar("T", bound=BaseModel)

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=ErrorType.non_retryable(),
)


class GitLabBlocked(Exception):
    """A GitLab call failed for good (auth, not found, invalid): a person must act."""


async def call(activity: Activity, arg: BaseModel, result: type[T] | None, timeout: timedelta) -> T:
    """Run an activity; a permanent failure (non-retryable) becomes ``GitLabBlocked``."""
    try:
        return await workflow.execute_activity(
            activity.value,
            arg,
            result_type=result,
            start_to_close_timeout=timeout,
            retry_policy=RETRY,
        )
    except ActivityError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.non_retryable:
            raise GitLabBlocked(cause.message) from err
        raise


#: Patches: behaviour added after the first release, skipped when replaying older histories.
ISSUE_LINK_PATCH = "issue-link"
BLOCKED_NOTICE_PATCH = "blocked-notice"
#: The migration workflow, too, tells people when GitLab refuses it (its tracking issue, say).
MIGRATION_BLOCKED_NOTICE_PATCH = "migration-blocked-notice"


async def notify(workflow_id: str, audience: tuple[str, ...], subject: str, body: str, timeout: timedelta) -> None:
    await workflow.execute_activity(
        Activity.NOTIFY.value,
        NotifyInput(workflow_id=workflow_id, audience=audience, subject=subject, body=body),
        start_to_close_timeout=timeout,
        retry_policy=RETRY,
    )


class Journal:
    """Transition history plus the notes still to post, in order, each with a stable marker."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        self.history: list[Transition] = []
        self.outbox: list[PostNoteInput] = []
        self.seq = 0

    def record(self, from_stage: Stage | None, to_stage: Stage, actor: str, detail: str = "") -> None:
        self.history.append(
            Transition(from_stage=from_stage, to_stage=to_stage, at=workflow.now(), actor=actor, detail=detail)
        )

    def note(
        self,
        body: str,
        *,
        add_labels: tuple[str, ...] = (),
        remove_labels: tuple[str, ...] = (),
        due_date: date | None = None,
    ) -> None:
        self.seq += 1
        marker = f"{self.workflow_id}:note:{self.seq}"
        self.outbox.append(
            PostNoteInput(
                iid=0,  # filled in when posted: the issue may not exist yet
                body=f"{body}\n\n{marker_comment(marker)}",
                marker=marker,
                add_labels=add_labels,
                remove_labels=remove_labels,
                due_date=due_date,
            )
        )

    async def flush(self, iid: int, timeout: timedelta) -> None:
        while self.outbox:
            note = self.outbox[0].model_copy(update={"iid": iid})
            await call(Activity.POST_NOTE, note, NoteRef, timeout)
            self.outbox.pop(0)


def utc_date(at: datetime | None) -> date | None:
    return at.date() if at is not None else None
