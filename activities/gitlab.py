"""GitLab activities. Each one is idempotent: a retry finds what an earlier attempt wrote."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Protocol

import structlog
from temporalio import activity

from activities.errors import to_application_error
from activities.payloads import (
    NOTHING_TO_REMOVE,
    Activity,
    AddToEpicInput,
    CleanupMergeRequestInput,
    ConfigMergeRequestInput,
    EnsureEpicInput,
    EnsureIssueInput,
    EnsureLabelsInput,
    EnsureLabelsResult,
    EpicInfo,
    FileEpicInput,
    IssueLinkInput,
    MergeRequestInput,
    MergeRequestRef,
    NoteRef,
    PostEpicNoteInput,
    PostNoteInput,
    TrackingIssueResult,
    UpdateEpicInput,
    UpdateIssueInput,
    WriteTrackingIssueInput,
)
from model_migration.domain import templates
from model_migration.domain.errors import DomainError
from model_migration.domain.models import (
    Branch,
    Commit,
    Epic,
    EpicDraft,
    EpicRef,
    Issue,
    IssueDraft,
    IssueRef,
    MergeRequest,
    Note,
    marker_comment,
)

log = structlog.get_logger("activities.gitlab")


class IssueTracker(Protocol):
    """What these activities need from a GitLab client."""

    calls: int

    def ensure_issue(self, draft: IssueDraft) -> Issue: ...

    def get_issue(self, iid: int) -> Issue: ...

    def update_issue(self, iid: int, **changes: object) -> Issue: ...

    def find_note(self, iid: int, marker: str) -> Note | None: ...

    def create_note(self, iid: int, body: str, marker: str | None = None) -> Note: ...

    def link_issues(self, iid: int, target_iid: int) -> bool: ...

    def ensure_branch(self, name: str, ref: str = "main") -> Branch: ...

    def commit_files(self, branch: str, message: str, files: dict[str, str], deletes: Collection[str] = ()) -> Commit: ...

    def existing_files(self, paths: Collection[str], ref: str = "main") -> list[str]: ...

    def find_merge_request(self, source_branch: str) -> MergeRequest | None: ...

    def ensure_merge_request(
        self, source_branch: str, target_branch: str, title: str, description: str = "",
        labels: list[str] | None = None,
    ) -> MergeRequest: ...

    def get_merge_request(self, iid: int) -> MergeRequest: ...

    def read_file(self, path: str, ref: str = "main") -> str | None: ...

    def ensure_labels(self, names: list[str]) -> list[str]: ...

    def add_issue_to_epic(self, epic_iid: int, issue_id: int, group: str | None = None) -> int: ...

    def ensure_epic(self, draft: EpicDraft) -> Epic: ...

    def update_epic(
        self, iid: int, *, title: str | None = None, description: str | None = None, due_date: date | None = None,
        add_labels: list[str] | None = None, remove_labels: list[str] | None = None, state_event: str | None = None,
    ) -> Epic: ...

    def post_epic_note(self, epic_iid: int, body: str, marker: str) -> int: ...

    def set_epic_parent(self, epic_iid: int, parent: EpicRef) -> Epic: ...


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

    @activity.defn(name=Activity.WRITE_TRACKING_ISSUE)
    def write_tracking_issue(self, request: WriteTrackingIssueInput) -> TrackingIssueResult:
        """Draw the description from the request's view, then find or create the issue, or
        rewrite its description."""
        view = request.view
        body = templates.tracking_issue_body(
            migration_id=view.migration_id, model=view.model, replaced=view.replaced, rows=list(view.rows),
            target_date=view.target_date, config_mr_url=view.config_mr_url,
        )
        with self._call(Activity.WRITE_TRACKING_ISSUE) as client:
            if request.iid == 0:
                draft = IssueDraft(
                    title=request.title, description=body, marker=request.marker, labels=list(request.labels),
                    due_date=request.due_date,
                )
                return TrackingIssueResult(issue=client.ensure_issue(draft).ref())
            # The workflow asks only when the description changed; a retry writes the same text again.
            description = body + "\n\n" + marker_comment(request.marker)
            return TrackingIssueResult(issue=client.update_issue(request.iid, description=description).ref())

    @activity.defn(name=Activity.POST_NOTE)
    def post_note(self, request: PostNoteInput) -> NoteRef:
        with self._call(Activity.POST_NOTE) as client:
            # A first attempt cannot have written anything yet, so only retries look.
            # The note's label and due-date changes ride along as quick actions, so GitLab
            # applies them with the note, in the same request, and exactly when the note exists.
            # GitLab's /label applies only labels that exist: the workflow runs ensure_labels first.
            found = client.find_note(request.iid, request.marker) if activity.info().attempt > 1 else None
            body = request.body + _quick_actions(request)
            note = found or client.create_note(request.iid, body, marker=request.marker)
            return NoteRef(id=note.id, created=found is None)

    @activity.defn(name=Activity.ENSURE_LABELS)
    def ensure_labels(self, request: EnsureLabelsInput) -> EnsureLabelsResult:
        """Create the missing ones of ``labels``; a retry finds them and creates nothing."""
        with self._call(Activity.ENSURE_LABELS) as client:
            return EnsureLabelsResult(created=tuple(client.ensure_labels(list(request.labels))))

    @activity.defn(name=Activity.ENSURE_ISSUE_LINK)
    def ensure_issue_link(self, request: IssueLinkInput) -> None:
        with self._call(Activity.ENSURE_ISSUE_LINK) as client:
            client.link_issues(request.iid, request.target_iid)

    @activity.defn(name=Activity.ENSURE_CONFIG_MR)
    def ensure_model_config_mr(self, request: ConfigMergeRequestInput) -> MergeRequestRef:
        """Branch, commit and merge request, each found again on a retry."""
        with self._call(Activity.ENSURE_CONFIG_MR) as client:
            client.ensure_branch(request.branch, ref=request.target_branch)
            files = dict(request.files)
            for path, entry in request.appends.items():
                files[path] = _appended(client.read_file(path, request.branch), entry)
            client.commit_files(request.branch, request.commit_message, files)
            mr = client.ensure_merge_request(
                request.branch, request.target_branch, request.title, request.description, list(request.labels)
            )
            return MergeRequestRef(iid=mr.iid, web_url=mr.web_url, state=mr.state)

    @activity.defn(name=Activity.ENSURE_CLEANUP_MR)
    def ensure_cleanup_mr(self, request: CleanupMergeRequestInput) -> MergeRequestRef:
        """The merge request that removes ``deletes``: branch, one delete commit and the MR, each
        found again on a retry. An MR already opened from the branch is returned as it is, even
        closed or merged (a person's decision).

        When the target branch has none of the files (someone removed them, or nothing was
        the old model's alone), no branch, commit or MR is made: the result has ``iid`` 0 and
        state ``NOTHING_TO_REMOVE``, so the caller can say so instead of linking an MR."""
        with self._call(Activity.ENSURE_CLEANUP_MR) as client:
            found = client.find_merge_request(request.branch)
            if found is None and not client.existing_files(request.deletes, request.target_branch):
                return MergeRequestRef(iid=0, state=NOTHING_TO_REMOVE)
            if found is None:
                client.ensure_branch(request.branch, ref=request.target_branch)
                client.commit_files(request.branch, request.commit_message, {}, deletes=request.deletes)
                found = client.ensure_merge_request(
                    request.branch, request.target_branch, request.title, request.description, list(request.labels)
                )
            return MergeRequestRef(iid=found.iid, web_url=found.web_url, state=found.state)

    @activity.defn(name=Activity.MERGE_REQUEST_STATE)
    def merge_request_state(self, request: MergeRequestInput) -> MergeRequestRef:
        with self._call(Activity.MERGE_REQUEST_STATE) as client:
            mr = client.get_merge_request(request.iid)
            return MergeRequestRef(iid=mr.iid, web_url=mr.web_url, state=mr.state)

    @activity.defn(name=Activity.ADD_TO_EPIC)
    def add_to_epic(self, request: AddToEpicInput) -> None:
        with self._call(Activity.ADD_TO_EPIC) as client:
            client.add_issue_to_epic(request.epic_iid, request.issue_id, group=request.group)

    @activity.defn(name=Activity.ENSURE_EPIC)
    def ensure_epic(self, request: EnsureEpicInput) -> EpicInfo:
        with self._call(Activity.ENSURE_EPIC) as client:
            return _epic_info(client.ensure_epic(request.draft))

    @activity.defn(name=Activity.UPDATE_EPIC)
    def update_epic(self, request: UpdateEpicInput) -> EpicInfo:
        with self._call(Activity.UPDATE_EPIC) as client:
            epic = client.update_epic(
                request.iid, title=request.title, description=request.description, due_date=request.due_date,
                add_labels=list(request.add_labels) or None, remove_labels=list(request.remove_labels) or None,
                state_event=request.state_event,
            )
            return _epic_info(epic)

    @activity.defn(name=Activity.POST_EPIC_NOTE)
    def post_epic_note(self, request: PostEpicNoteInput) -> int:
        """The note's id; a retry finds the note by its marker and posts nothing."""
        with self._call(Activity.POST_EPIC_NOTE) as client:
            return client.post_epic_note(request.epic_iid, request.body, request.marker)

    @activity.defn(name=Activity.FILE_EPIC_UNDER)
    def file_epic_under(self, request: FileEpicInput) -> EpicInfo:
        with self._call(Activity.FILE_EPIC_UNDER) as client:
            return _epic_info(client.set_epic_parent(request.epic_iid, request.parent))

    def all(self) -> list[Callable[..., object]]:
        return [
            self.ensure_issue, self.update_issue, self.post_note, self.ensure_issue_link, self.ensure_model_config_mr,
            self.merge_request_state, self.ensure_labels, self.add_to_epic, self.ensure_epic, self.update_epic,
            self.post_epic_note, self.file_epic_under, self.ensure_cleanup_mr, self.write_tracking_issue,
        ]


def _epic_info(epic: Epic) -> EpicInfo:
    return EpicInfo(id=epic.id, iid=epic.iid, web_url=epic.web_url)


def _appended(existing: str | None, entry: str) -> str:
    """``existing`` with ``entry`` added at the end, unless it is already there."""
    if existing is None:
        return "models:\n" + entry
    if entry.strip() in existing:
        return existing
    return existing.rstrip("\n") + "\n" + entry


def _quick_actions(request: PostNoteInput) -> str:
    lines = []
    if request.add_labels:
        lines.append("/label " + " ".join(f'~"{name}"' for name in request.add_labels))
    if request.remove_labels:
        lines.append("/unlabel " + " ".join(f'~"{name}"' for name in request.remove_labels))
    if request.due_date:
        lines.append(f"/due {request.due_date.isoformat()}")
    if request.close:
        lines.append("/close")
    return "\n\n" + "\n".join(lines) if lines else ""

