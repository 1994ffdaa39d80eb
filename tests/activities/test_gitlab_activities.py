"""GitLab activities in ActivityEnvironment: idempotency on retries and error typing."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from datetime import date

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.gitlab import GitLabActivities
from activities.payloads import (
    NOTHING_TO_REMOVE,
    CleanupMergeRequestInput,
    EnsureEpicInput,
    EnsureIssueInput,
    EnsureLabelsInput,
    EnsureLabelsResult,
    FileEpicInput,
    MergeRequestRef,
    PostEpicNoteInput,
    PostNoteInput,
    TrackingView,
    UpdateEpicInput,
    WriteTrackingIssueInput,
)
from gitlab_sandbox.gitlab import GitLabSandbox
from model_migration.catalog import load_catalog
from model_migration.clients.gitlab import GitLabClient
from model_migration.domain.errors import ErrorType
from model_migration.domain.gateway import cleanup_change, prompt_definition_path
from model_migration.domain.models import EpicDraft, EpicRef, IssueDraft, marker_comment
from model_migration.domain.stages import FeatureStage
from model_migration.domain.templates import FeatureRow


def client_for(sandbox, token: str | None = None) -> GitLabClient:  # type: ignore[no-untyped-def]
    return GitLabClient(sandbox.url, token or sandbox.token, sandbox.project_path)


def activities_for(sandbox, token: str | None = None) -> GitLabActivities:  # type: ignore[no-untyped-def]
    return GitLabActivities(lambda: client_for(sandbox, token))


def env(attempt: int = 1) -> ActivityEnvironment:
    e = ActivityEnvironment()
    e.info = dataclasses.replace(e.info, attempt=attempt, workflow_id="migration:test/x/1")
    return e


def draft(title: str) -> IssueDraft:
    return IssueDraft(title=title, description="body", marker=f"{title}:issue", labels=["AI Model Migration"], assignee_username="bot")


def test_ensure_issue_twice_leaves_one_issue(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """Running ensure_issue twice with the same input leaves exactly one issue."""
    acts = activities_for(gitlab_sandbox)
    title = f"Idempotency {uuid.uuid4().hex[:8]}"
    first = env(1).run(acts.ensure_issue, EnsureIssueInput(draft=draft(title)))
    second = env(2).run(acts.ensure_issue, EnsureIssueInput(draft=draft(title)))
    assert first.iid == second.iid
    listed = client_for(gitlab_sandbox).find_issue(title, f"{title}:issue")
    assert listed is not None and listed.iid == first.iid
    raw = client_for(gitlab_sandbox)._gl.http_list(  # noqa: SLF001 - count rows as GitLab stores them
        f"/projects/{gitlab_sandbox.project_path.replace('/', '%2F')}/issues", query_data={"search": title}, get_all=True
    )
    assert len(raw) == 1


def test_post_note_retry_does_not_duplicate(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """A retried post_note (attempt 2) finds the note attempt 1 wrote instead of posting another."""
    acts = activities_for(gitlab_sandbox)
    issue = env().run(acts.ensure_issue, EnsureIssueInput(draft=draft(f"Notes {uuid.uuid4().hex[:8]}")))
    marker = f"note-{uuid.uuid4().hex}"
    env().run(acts.ensure_labels, EnsureLabelsInput(labels=("priority::2",)))
    request = PostNoteInput(iid=issue.iid, body=f"hello\n\n{marker_comment(marker)}", marker=marker, add_labels=("priority::2",))
    first = env(1).run(acts.post_note, request)
    again = env(2).run(acts.post_note, request)
    assert first.created and not again.created and first.id == again.id
    client = client_for(gitlab_sandbox)
    assert sum(marker in n.body for n in client.list_notes(issue.iid)) == 1
    assert "priority::2" in client.get_issue(issue.iid).labels


def test_bad_token_is_a_non_retryable_auth_error(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """A refused token becomes a non-retryable GitLabAuthError that does not leak the token."""
    bad = "wrong-" + uuid.uuid4().hex
    acts = activities_for(gitlab_sandbox, token=bad)
    with pytest.raises(ApplicationError) as info:
        env().run(acts.ensure_issue, EnsureIssueInput(draft=draft("never created")))
    assert info.value.type == ErrorType.GITLAB_AUTH and info.value.non_retryable
    assert bad not in str(info.value)


def test_unknown_assignee_is_not_found_and_names_the_user(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """An unknown DRI username fails for good with a message naming it, creating nothing."""
    acts = activities_for(gitlab_sandbox)
    title = f"Ghost {uuid.uuid4().hex[:8]}"
    bad = draft(title).model_copy(update={"assignee_username": "ghost-user"})
    with pytest.raises(ApplicationError) as info:
        env().run(acts.ensure_issue, EnsureIssueInput(draft=bad))
    assert info.value.type == ErrorType.GITLAB_NOT_FOUND and "ghost-user" in info.value.message
    assert client_for(gitlab_sandbox).find_issue(title, f"{title}:issue") is None


def _escalate(acts: GitLabActivities, iid: int, label: str, seq: int) -> None:
    """What ``Journal.note(body, add_labels=(label,))`` becomes when the workflow flushes it."""
    marker = f"migration:test/x/1:note:{seq}-{uuid.uuid4().hex[:6]}"
    body = f'Overdue. Priority: ~"{label}".\n\n{marker_comment(marker)}'
    env().run(acts.post_note, PostNoteInput(iid=iid, body=body, marker=marker, add_labels=(label,)))


def test_escalation_labels_land_once_ensured(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """On a project without them, ``/label ~"priority::2"`` does nothing (as on GitLab); after
    ensure_labels of the escalation labels, the same note lands it, and priority::1 replaces it."""
    token = secrets.token_urlsafe(16)
    with GitLabSandbox(tmp_path / "gitlab.sqlite", token=token, usernames=["bot"]) as box:
        acts = GitLabActivities(lambda: GitLabClient(box.url, token, box.project_path))
        issue = env().run(acts.ensure_issue, EnsureIssueInput(draft=draft(f"Escalate {uuid.uuid4().hex[:8]}")))
        client = GitLabClient(box.url, token, box.project_path)
        _escalate(acts, issue.iid, "priority::2", 1)
        assert "priority::2" not in client.get_issue(issue.iid).labels
        ensured = env().run(acts.ensure_labels, EnsureLabelsInput(labels=("priority::1", "priority::2")))
        assert ensured == EnsureLabelsResult(created=("priority::1", "priority::2"))
        again = env(2).run(acts.ensure_labels, EnsureLabelsInput(labels=("priority::1", "priority::2")))
        assert again.created == ()
        _escalate(acts, issue.iid, "priority::2", 2)
        assert "priority::2" in client.get_issue(issue.iid).labels
        _escalate(acts, issue.iid, "priority::1", 3)
        labels = client.get_issue(issue.iid).labels
        assert "priority::1" in labels and "priority::2" not in labels
        assert all("/label" not in note.body for note in client.list_notes(issue.iid))
        assert acts.calls["ensure_labels"] == 6  # two look-ups and two creates, then two look-ups


def test_a_closing_note_closes_the_issue_once(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """The last note of a feature closes its issue with ``/close``; a retry neither re-posts nor breaks."""
    acts = activities_for(gitlab_sandbox)
    title = f"Closing {uuid.uuid4().hex[:8]}"
    issue = env().run(acts.ensure_issue, EnsureIssueInput(draft=draft(title)))
    marker = f"{title}:note:9"
    request = PostNoteInput(iid=issue.iid, body=f"done\n\n{marker_comment(marker)}", marker=marker, close=True)
    first = env(1).run(acts.post_note, request)
    again = env(2).run(acts.post_note, request)
    assert first.created and not again.created and first.id == again.id
    gl = client_for(gitlab_sandbox)
    assert gl.get_issue(issue.iid).state == "closed"
    [note] = [n for n in gl.list_notes(issue.iid) if marker in n.body]
    assert "/close" not in note.body  # the quick action was carried out, not left as text


def test_the_deprecation_epic_is_created_once_and_updated(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """ensure_epic finds its epic again on a retry; update_epic sets the title, labels and fixed due date."""
    def grouped() -> GitLabClient:
        return GitLabClient(gitlab_sandbox.url, gitlab_sandbox.token, gitlab_sandbox.project_path, gitlab_sandbox.group_path)

    acts = GitLabActivities(grouped)
    unique = uuid.uuid4().hex[:8]
    request = EnsureEpicInput(draft=EpicDraft(
        title=f"Replace discontinued Model {unique} with TBD", description="the plan", marker=f"deprecation:test/{unique}:epic",
        labels=["AI Model Migration", "group::ai framework"], due_date=date(2026, 1, 22),
    ))
    first, again = env(1).run(acts.ensure_epic, request), env(2).run(acts.ensure_epic, request)
    assert first == again and first.web_url.startswith("http")
    title = f"Replace discontinued Model {unique} with Claude Sonnet 4.5"
    env().run(acts.update_epic, UpdateEpicInput(iid=first.iid, title=title, due_date=date(2026, 2, 5), add_labels=("priority::1",)))
    epic = grouped().get_epic(first.iid)
    assert epic.title == title and epic.due_date == date(2026, 2, 5) and epic.due_date_is_fixed
    assert {"AI Model Migration", "group::ai framework", "priority::1"} <= set(epic.labels)


def grouped_client(sandbox, group: str | None = None) -> GitLabClient:  # type: ignore[no-untyped-def]
    return GitLabClient(sandbox.url, sandbox.token, sandbox.project_path, group or sandbox.group_path)


def epic_in(acts: GitLabActivities, name: str) -> int:
    unique = uuid.uuid4().hex[:8]
    draft = EpicDraft(title=f"{name} {unique}", description="the plan", marker=f"deprecation:test/{unique}:epic")
    return env().run(acts.ensure_epic, EnsureEpicInput(draft=draft)).iid


def test_epic_note_lost_answer_then_retry_posts_once(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """Attempt 1 writes the note but loses GitLab's answer (retryable); attempt 2 finds it by its marker."""
    acts = GitLabActivities(lambda: grouped_client(gitlab_sandbox))
    iid = epic_in(acts, "Replace discontinued Model")
    marker = f"deprecation:test/{uuid.uuid4().hex[:8]}:note:1"
    request = PostEpicNoteInput(epic_iid=iid, body="Replacement chosen: Claude Sonnet 4.5.", marker=marker)
    gitlab_sandbox.server.inject_fault(r"/epics/\d+/notes$", "drop_after_write", method="POST", count=1)
    with pytest.raises(ApplicationError) as lost:
        env(1).run(acts.post_epic_note, request)
    assert lost.value.type == ErrorType.GITLAB_TRANSIENT and not lost.value.non_retryable
    sent = acts.calls["post_epic_note"]
    note_id = env(2).run(acts.post_epic_note, request)
    assert acts.calls["post_epic_note"] - sent == 2  # the epic and its notes: nothing posted
    assert env(3).run(acts.post_epic_note, request) == note_id
    epic = grouped_client(gitlab_sandbox)._group().epics.get(iid)
    assert [n.id for n in epic.notes.list(get_all=True) if marker in n.body] == [note_id]


def test_file_epic_under_a_parent_in_another_group(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """file_epic_under files the epic once (a retry is a no-op) and a cycle fails for good as a conflict."""
    subgroup = gitlab_sandbox.project_path.rpartition("/")[0]
    acts = GitLabActivities(lambda: grouped_client(gitlab_sandbox))
    initiative = epic_in(GitLabActivities(lambda: grouped_client(gitlab_sandbox, subgroup)), "AI model deprecations")
    child = epic_in(acts, "Replace discontinued Model")
    request = FileEpicInput(epic_iid=child, parent=EpicRef(group=subgroup, iid=initiative))
    first, again = env(1).run(acts.file_epic_under, request), env(2).run(acts.file_epic_under, request)
    assert first == again and first.iid == child
    epic = grouped_client(gitlab_sandbox)._group().epics.get(child)
    assert (epic.parent_iid, epic._links["parent"].split("/epics/")[-1]) == (initiative, str(initiative))
    back = grouped_client(gitlab_sandbox, subgroup)
    cycle = GitLabActivities(lambda: back)
    with pytest.raises(ApplicationError) as refused:
        env().run(cycle.file_epic_under, FileEpicInput(epic_iid=initiative, parent=EpicRef(group=gitlab_sandbox.group_path, iid=child)))
    assert refused.value.type == ErrorType.GITLAB_CONFLICT and refused.value.non_retryable
    assert "already an ancestor" in refused.value.message


# -- the clean-up merge request ----------------------------------------------------------------

OLD_MODEL, NEW_MODEL = "claude_3_7_sonnet_20250219", "claude_sonnet_4_5_20250929"


def cleanup_for(client: GitLabClient, *, seed: bool = True) -> tuple[CleanupMergeRequestInput, str, str]:
    """A clean-up change for a feature of its own prompt, whose old- and new-model prompts are on main
    (unless ``seed`` is false); with the old and the new model's prompt paths."""
    catalog = load_catalog()
    unique = uuid.uuid4().hex[:8]
    feature = catalog.features[0].model_copy(update={"prompt_id": f"cleanup_test/{unique}", "title": f"Duo Chat {unique}"})
    old, new = catalog.model(OLD_MODEL), catalog.model(NEW_MODEL)
    old_path, new_path = prompt_definition_path(feature, old, "1.0.0"), prompt_definition_path(feature, new, "1.0.0-dev")
    if seed:
        prompts = {old_path: "old: 1\n", old_path.replace("1.0.0", "1.0.1"): "old: 2\n", new_path: "new\n"}
        client.commit_files("main", f"Add {unique} prompts", prompts)
    change = cleanup_change(f"migration:test/{unique}", feature, old, new, tracking_url="https://gitlab.example/t/1")
    return CleanupMergeRequestInput(**change.model_dump()), old_path, new_path


def _commits_titled(client: GitLabClient, ref: str, title: str) -> int:
    return sum(c.title == title for c in client._project.commits.list(ref_name=ref, get_all=True, per_page=100))  # noqa: SLF001


def test_cleanup_mr_removes_the_old_prompts_once(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """The MR's branch drops the old model's prompt folder (main keeps it until the merge); a retry
    makes no second commit or MR, and after the merge the same, merged MR is the answer."""
    acts, client = activities_for(gitlab_sandbox), client_for(gitlab_sandbox)
    request, old_path, new_path = cleanup_for(client)
    first = env(1).run(acts.ensure_cleanup_mr, request)
    again = env(2).run(acts.ensure_cleanup_mr, request)
    assert first == again and first.iid > 0 and first.state == "opened"
    assert client.read_file(old_path, request.branch) is None and client.existing_files(request.deletes, request.branch) == []
    assert client.read_file(old_path, "main") == "old: 1\n" and client.read_file(new_path, request.branch) == "new\n"
    assert _commits_titled(client, request.branch, request.title) == 1
    mr = client.get_merge_request(first.iid)
    assert (mr.title, mr.source_branch, mr.target_branch) == (request.title, request.branch, "main")
    assert set(mr.labels) == set(request.labels) and "https://gitlab.example/t/1" in mr.description
    assert client.find_merge_request(request.branch) == mr
    client.merge_merge_request(first.iid)
    assert client.read_file(old_path, "main") is None and client.read_file(new_path, "main") == "new\n"
    after = env(3).run(acts.ensure_cleanup_mr, request)
    assert (after.iid, after.state) == (first.iid, "merged")


@pytest.mark.parametrize("lost", [r"/repository/commits$", r"/merge_requests$"])
def test_cleanup_mr_retry_after_a_lost_answer_commits_and_opens_once(gitlab_sandbox, lost: str) -> None:  # type: ignore[no-untyped-def]
    """Attempt 1's commit or MR is written but its answer lost; attempt 2 finds it and makes nothing twice."""
    acts, client = activities_for(gitlab_sandbox), client_for(gitlab_sandbox)
    request, _, _ = cleanup_for(client)
    gitlab_sandbox.server.inject_fault(lost, "drop_after_write", method="POST", count=1)
    with pytest.raises(ApplicationError) as dropped:
        env(1).run(acts.ensure_cleanup_mr, request)
    assert dropped.value.type == ErrorType.GITLAB_TRANSIENT and not dropped.value.non_retryable
    ref = env(2).run(acts.ensure_cleanup_mr, request)
    assert ref.iid > 0 and ref.state == "opened"
    assert _commits_titled(client, request.branch, request.title) == 1
    merge_requests = client._project.mergerequests.list(source_branch=request.branch, state="all", get_all=True)  # noqa: SLF001
    assert [m.iid for m in merge_requests] == [ref.iid]


@pytest.mark.parametrize("case", ["removed on main", "nothing of its own"])
def test_cleanup_mr_with_nothing_to_remove_opens_nothing(gitlab_sandbox, case: str) -> None:  # type: ignore[no-untyped-def]
    """When main has none of the files (removed by someone, or none were the old model's alone), the
    answer is iid 0 and NOTHING_TO_REMOVE, with no branch, commit or MR."""
    acts, client = activities_for(gitlab_sandbox), client_for(gitlab_sandbox)
    request, _, _ = cleanup_for(client, seed=False)
    if case == "nothing of its own":
        request = request.model_copy(update={"deletes": ()})
    ref = env().run(acts.ensure_cleanup_mr, request)
    assert ref == MergeRequestRef(iid=0, web_url="", state=NOTHING_TO_REMOVE)
    assert client.find_merge_request(request.branch) is None
    assert request.branch not in [b.name for b in client._project.branches.list(get_all=True)]  # noqa: SLF001


def test_write_tracking_issue_draws_the_description_from_the_rows(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """Created once by its marker (a retry finds it), then rewritten from new rows; the result is the issue's reference only."""
    catalog = load_catalog()
    key = f"migration:test/{uuid.uuid4().hex[:8]}"
    rows = tuple(FeatureRow(feature=catalog.feature(n)) for n in ("duo_chat", "code_generation"))
    view = TrackingView(migration_id=key, model=catalog.model("claude_sonnet_4_5_20250929"), rows=rows)
    create = WriteTrackingIssueInput(marker=f"{key}:tracking", view=view, title=f"AI Model Migration - {key}", labels=("ai",))
    acts = activities_for(gitlab_sandbox)
    first = env(1).run(acts.write_tracking_issue, create)
    again = env(2).run(acts.write_tracking_issue, create)
    assert again.issue.iid == first.issue.iid
    done = rows[0].model_copy(update={"stage": FeatureStage.DONE, "issue_url": f"{gitlab_sandbox.url}/x/-/issues/7"})
    later = view.model_copy(update={"rows": (done, rows[1])})
    env(1).run(acts.write_tracking_issue, WriteTrackingIssueInput(marker=f"{key}:tracking", view=later, iid=first.issue.iid))
    description = client_for(gitlab_sandbox).get_issue(first.issue.iid).description
    assert "Progress: 1 of 2 feature(s) done" in description and "/x/-/issues/7" in description
    assert description.endswith(marker_comment(f"{key}:tracking"))
