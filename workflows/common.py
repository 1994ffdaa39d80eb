"""Glue both workflows share: typed activity calls, the note outbox, GitLab blocks, validators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities import interface
    from activities.payloads import NotifyInput, PostNoteInput
    from model_migration.domain.errors import CommandRejected, ErrorType
    from model_migration.domain.feature import Note
    from model_migration.domain.models import marker_comment
    from model_migration.domain.requests import command_digest
    from model_migration.domain.stages import AnyStage
    from workflows.messages import CommandResult

A = TypeVar("A")
R = TypeVar("R")

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=ErrorType.non_retryable(),
)


class GitLabBlocked(Exception):
    """A GitLab call failed for good (auth, not found, invalid): a person must act."""


async def call(activity: Callable[[A], R], arg: A, timeout: timedelta) -> R:
    """Run an activity by its typed declaration; a permanent failure becomes ``GitLabBlocked``."""
    try:
        return await workflow.execute_activity(activity, arg, start_to_close_timeout=timeout, retry_policy=RETRY)
    except ActivityError as err:
        _raise_blocked(err)
        raise


async def call_local(activity: Callable[[A], R], arg: A, timeout: timedelta) -> R:
    """As ``call``, as a local activity: it runs within the workflow's task, and history keeps
    only its result, in one marker event, never its input. Its retries are few and quick, as a
    local activity that runs long keeps the workflow's task open (three events per extension);
    a failure that outlasts them runs it as an activity, whose retries cost no events and whose
    input is kept in history (only then)."""
    try:
        return await workflow.execute_local_activity(activity, arg, start_to_close_timeout=timeout, retry_policy=LOCAL_RETRY)
    except FailureError as err:  # a local activity's failure may come unwrapped
        _raise_blocked(err)
    return await call(activity, arg, timeout)


LOCAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=4),
    maximum_attempts=3,
    non_retryable_error_types=ErrorType.non_retryable(),
)


def _raise_blocked(err: FailureError) -> None:
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        raise GitLabBlocked(cause.message) from err


async def notify(workflow_id: str, audience: tuple[str, ...], subject: str, body: str, timeout: timedelta) -> None:
    request = NotifyInput(workflow_id=workflow_id, audience=audience, subject=subject, body=body)
    await workflow.execute_activity(interface.notify, request, start_to_close_timeout=timeout, retry_policy=RETRY)


async def until_done(
    step: Callable[[], Awaitable[None]],
    *,
    on_block: Callable[[str], Awaitable[None]],
    is_blocked: Callable[[], bool],
) -> None:
    """Run a GitLab step; a permanent failure blocks the workflow until someone resumes it."""
    while True:
        try:
            await step()
            return
        except GitLabBlocked as err:
            await on_block(str(err))
            await workflow.wait_condition(lambda: not is_blocked())


def rejected(err: CommandRejected) -> ApplicationError:
    return ApplicationError(err.message, type=ErrorType.COMMAND_REJECTED.value, non_retryable=True)


class _Decision(Protocol):
    """What both stage machines decide: a state with a stage, and a message for the sender."""

    @property
    def state(self) -> _Staged: ...

    @property
    def message(self) -> str: ...


class _Staged(Protocol):
    @property
    def stage(self) -> AnyStage: ...


def handle(name: str, command: BaseModel, apply: Callable[[], _Decision]) -> CommandResult:
    """An update handler: apply the command, and answer with the command's name and digest, so
    that a sender who reused a request id for another command can tell."""
    try:
        decision = apply()
    except CommandRejected as err:  # only on replay of a run whose validator was looser
        raise rejected(err) from None
    return CommandResult(
        stage=decision.state.stage, message=decision.message, command=name, digest=command_digest(name, command),
    )


def validate(decide: Callable[[], Any]) -> None:
    """An update validator: run the stage machine's ``decide`` and drop the result."""
    try:
        decide()
    except CommandRejected as err:
        raise rejected(err) from None


def marker_base(workflow_id: str, rerun: int) -> str:
    """The key every GitLab object of this run is found by; a rerun's objects are its own."""
    return workflow_id if rerun == 0 else f"{workflow_id}:run{rerun}"


class Journal:
    """The notes still to post, in order, each with a stable marker."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.outbox: list[PostNoteInput] = []
        self.seq = 0
        #: A posted note closed the issue (``/close``).
        self.closed = False

    def note(self, note: Note) -> None:
        self.seq += 1
        marker = f"{self.key}:note:{self.seq}"
        self.outbox.append(
            PostNoteInput(
                iid=0,  # filled in when posted: the issue may not exist yet
                body=f"{note.body}\n\n{marker_comment(marker)}",
                marker=marker,
                add_labels=note.add_labels,
                remove_labels=note.remove_labels,
                due_date=note.due_date,
                close=note.close,
            )
        )

    async def flush(self, iid: int, timeout: timedelta) -> None:
        while self.outbox:
            note = self.outbox[0].model_copy(update={"iid": iid})
            await call(interface.post_note, note, timeout)
            self.outbox.pop(0)
            self.closed = self.closed or note.close
