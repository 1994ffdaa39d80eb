"""GitLab activities. Each one is idempotent: a retry finds what an earlier attempt wrote."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import structlog
from temporalio import activity

from activities.errors import to_application_error
from activities.payloads import (
    Activity,
    EnsureIssueInput,
    NoteRef,
    PostNoteInput,
    UpdateIssueInput,
)
from model_migration.domain.errors import DomainError
from model_migration.domain.models import Issue, IssueDraft, IssueRef, Note

log = structlog.get_logger("activities.gitlab")


class IssueTracker(Protocol):
    """What these activities need from a GitLab client."""

    calls: int

    def ensure_issue(self, draft: IssueDraft) -> Issue: ...

    def update_issue(self, iid: int, **changes: object) -> Issue: ...

    def find_note(self, iid: int, marker: str) -> Note | None: ...

    def create_note(self, iid: int, body: str, marker: str | None = None) -> Note: ...


class GitLabActivities:
    """Activities bound to one GitLab client per worker thread."""

    def __init__(self, client_factory: Callable[[], IssueTracker]) -> None:
        self._factory = client_factory
        self._local = threading.local()
        self._lock = threading.Lock()
        #: GitLab requests sent, per activity name, since the worker started.
        self.calls: Counter[str] = Counter()

    def _client(self) -> IssueTracker:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._factory()
        return client

    @contextmanager
    def _call(self, name: Activity) -> Iterator[IssueTracker]:
        info = activity.info()
        client = self._client()
        before = client.calls
        bound = log.bind(workflow_id=info.workflow_id, activity=name.value, attempt=info.attempt)
        try:
            yield client
        except DomainError as err:
            bound.warning("gitlab_call_failed", error_type=str(err.type), error=err.message)
            raise to_application_error(err) from None
        finally:
            spent = client.calls - before
            with self._lock:
                self.calls[name.value] += spent
            bound.debug("gitlab_calls", calls=spent)

    @activity.defn(name=Activity.ENSURE_ISSUE)
    def ensure_issue(self, request: EnsureIssueInput) -> IssueRef:
        with self._call(Activity.ENSURE_ISSUE) as client:
            return client.ensure_issue(request.draft).ref()

    @activity.defn(name=Activity.UPDATE_ISSUE)
    def update_issue(self, request: UpdateIssueInput) -> IssueRef:
        with self._call(Activity.UPDATE_ISSUE) as client:
            issue = client.update_issue(
                request.iid,
                description=request.description,
                add_labels=list(request.add_labels) or None,
                remove_labels=list(request.remove_labels) or None,
                state_event=request.state_event,
            )
            return issue.ref()

    @activity.defn(name=Activity.POST_NOTE)
    def post_note(self, request: PostNoteInput) -> NoteRef:
        with self._call(Activity.POST_NOTE) as client:
            # A first attempt cannot have written anything yet, so only retries look.
            found = client.find_note(request.iid, request.marker) if activity.info().attempt > 1 else None
            note = found or client.create_note(request.iid, request.body, marker=request.marker)
            if request.add_labels or request.remove_labels or request.due_date:
                client.update_issue(
                    request.iid,
                    add_labels=list(request.add_labels) or None,
                    remove_labels=list(request.remove_labels) or None,
                    due_date=request.due_date,
                )
            return NoteRef(id=note.id, created=found is None)

    def all(self) -> list[Callable[..., object]]:
        return [self.ensure_issue, self.update_issue, self.post_note]
