"""GitLabClient's epics, issue links and webhooks against the sandbox: mapping and idempotency."""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import TYPE_CHECKING

import gitlab
import pytest

from model_migration.clients.gitlab import GitLabClient
from model_migration.domain.errors import ErrorType, GitLabError
from model_migration.domain.models import EpicDraft, EpicRef, marker_comment
from tests.clients.gitlab_helpers import draft, unique

if TYPE_CHECKING:
    from tests.conftest import SandboxInfo


def epic_draft(**overrides: object) -> EpicDraft:
    key = unique("epic")
    fields: dict[str, object] = {
        "title": f"Replace discontinued claude-test {key} with claude-next",
        "description": "## Affected features\n\n- Duo Chat",
        "marker": f"deprecation:{key}",
        "labels": ["AI Model Migration"],
        "due_date": date(2026, 1, 22),
    }
    return EpicDraft(**{**fields, **overrides})  # type: ignore[arg-type]


def python_gitlab(sandbox: SandboxInfo) -> gitlab.Gitlab:
    return gitlab.Gitlab(sandbox.url, private_token=sandbox.token)


# -- epics -----------------------------------------------------------------------------------


def test_create_epic_maps_every_field_and_appends_the_marker(gitlab_client: GitLabClient) -> None:
    """A created epic has its labels, fixed due date, group, web URL and the hidden marker."""
    wanted = epic_draft()
    epic = gitlab_client.create_epic(wanted)
    assert epic.title == wanted.title and epic.state == "opened"
    assert epic.description.startswith("## Affected features")
    assert epic.description.endswith(marker_comment(wanted.marker))
    assert epic.labels == ["AI Model Migration"]
    assert (epic.due_date, epic.due_date_is_fixed) == (date(2026, 1, 22), True)
    assert epic.web_url.endswith(f"/groups/{gitlab_client.group_path}/-/epics/{epic.iid}")
    assert epic.id != epic.iid
    assert gitlab_client.get_epic(epic.iid) == epic


def test_ensure_epic_twice_creates_one_epic(
    gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo
) -> None:
    """A retried ensure_epic finds the first epic by its marker instead of creating another."""
    wanted = epic_draft()
    first = gitlab_client.ensure_epic(wanted)
    assert gitlab_client.ensure_epic(wanted) == first
    group = python_gitlab(gitlab_sandbox).groups.get(gitlab_sandbox.group_path)
    assert [e.iid for e in group.epics.list(search=wanted.title, get_all=True)] == [first.iid]


def test_find_epic_picks_the_marker_among_same_titles(gitlab_client: GitLabClient) -> None:
    """Two epics share a title; find_epic returns the one whose description has the marker."""
    first_draft = epic_draft()
    second_draft = epic_draft(title=first_draft.title)
    first = gitlab_client.create_epic(first_draft)
    second = gitlab_client.create_epic(second_draft)
    assert gitlab_client.find_epic(first.title, first_draft.marker) == first
    assert gitlab_client.find_epic(first.title, second_draft.marker) == second
    assert gitlab_client.find_epic(first.title, unique("never-used")) is None


def test_update_epic_is_one_put(gitlab_client: GitLabClient) -> None:
    """update_epic moves the due date, edits labels and closes the epic in one request."""
    epic = gitlab_client.create_epic(epic_draft())
    before = gitlab_client.calls
    updated = gitlab_client.update_epic(
        epic.iid,
        due_date=date(2026, 2, 5),
        add_labels=["priority::1"],
        remove_labels=["AI Model Migration"],
        state_event="close",
    )
    assert gitlab_client.calls - before == 1
    assert (updated.due_date, updated.labels, updated.state) == (
        date(2026, 2, 5), ["priority::1"], "closed",
    )  # fmt: skip
    assert updated.description == epic.description
    assert gitlab_client.get_epic(epic.iid) == updated


def test_add_issue_to_epic_twice_returns_the_same_epic_issue_id(
    gitlab_client: GitLabClient,
) -> None:
    """A retried add finds the existing membership (GitLab's 409) and returns its id."""
    epic = gitlab_client.create_epic(epic_draft())
    issue = gitlab_client.create_issue(draft())
    first = gitlab_client.add_issue_to_epic(epic.iid, issue.id)
    assert gitlab_client.add_issue_to_epic(epic.iid, issue.id) == first
    assert first not in (issue.id, issue.iid)
    assert [i.iid for i in gitlab_client.epic_issues(epic.iid)] == [issue.iid]
    assert gitlab_client.epic_issues(epic.iid)[0] == gitlab_client.get_issue(issue.iid)


def test_add_issue_to_epic_wants_the_global_id_not_the_iid(gitlab_client: GitLabClient) -> None:
    """Passing an issue's iid is a mistake GitLab answers with 404, mapped to NOT_FOUND."""
    epic = gitlab_client.create_epic(epic_draft())
    issue = gitlab_client.create_issue(draft())
    with pytest.raises(GitLabError) as caught:
        gitlab_client.add_issue_to_epic(epic.iid, issue.iid)
    assert caught.value.type == ErrorType.GITLAB_NOT_FOUND
    assert f"add issue {issue.iid} to epic &{epic.iid}" in caught.value.message


def test_epic_errors_map_to_domain_errors(gitlab_client: GitLabClient) -> None:
    """An unknown epic is NOT_FOUND; a client without a group cannot reach epics at all."""
    with pytest.raises(GitLabError) as missing:
        gitlab_client.update_epic(999_999, description="x")
    assert missing.value.type == ErrorType.GITLAB_NOT_FOUND and missing.value.status == 404
    no_group = GitLabClient(gitlab_client.url, gitlab_client._gl.private_token, "a/b")
    with pytest.raises(GitLabError) as groupless:
        no_group.find_epic("anything", "marker")
    assert groupless.value.type == ErrorType.GITLAB_INVALID
    assert no_group.calls == 0


# -- epic notes and child epics --------------------------------------------------------------


def test_post_epic_note_twice_posts_one_note_with_the_marker(
    gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo
) -> None:
    """A second post_epic_note finds the first note by its marker; a closed epic takes notes too."""
    epic = gitlab_client.create_epic(epic_draft())
    gitlab_client.update_epic(epic.iid, state_event="close")
    marker = unique("epic-note")
    first = gitlab_client.post_epic_note(epic.iid, "Cutoff moved to 2026-02-05.", marker)
    before = gitlab_client.calls
    assert gitlab_client.post_epic_note(epic.iid, "Cutoff moved to 2026-02-05.", marker) == first
    assert gitlab_client.calls - before == 2  # the epic (for its global id) and its notes: no POST
    other = gitlab_client.post_epic_note(epic.iid, "Another note.", unique("epic-note"))
    assert other != first
    remote = python_gitlab(gitlab_sandbox).groups.get(gitlab_sandbox.group_path).epics.get(epic.iid)
    notes = remote.notes.list(sort="asc", get_all=True)
    assert [n.id for n in notes] == [first, other]
    assert notes[0].body == f"Cutoff moved to 2026-02-05.\n\n{marker_comment(marker)}"
    assert (notes[0].noteable_type, notes[0].noteable_id, notes[0].noteable_iid) == ("Epic", epic.id, epic.iid)


def test_post_epic_note_refusals_map_to_domain_errors(gitlab_client: GitLabClient) -> None:
    """An unknown epic is NOT_FOUND; a body over GitLab's 1,000,000 characters is INVALID, and nothing is posted."""
    with pytest.raises(GitLabError) as missing:
        gitlab_client.post_epic_note(999_999, "hello", unique("m"))
    assert (missing.value.type, missing.value.status) == (ErrorType.GITLAB_NOT_FOUND, 404)
    assert "note on epic &999999" in missing.value.message
    epic = gitlab_client.create_epic(epic_draft())
    with pytest.raises(GitLabError) as too_long:
        gitlab_client.post_epic_note(epic.iid, "x" * 1_000_000, unique("m"))  # the marker tips it over
    assert (too_long.value.type, too_long.value.status) == (ErrorType.GITLAB_INVALID, 400)
    assert "is too long" in too_long.value.message
    assert gitlab_client._group().epics.get(epic.iid).notes.list(get_all=True) == []


def test_set_epic_parent_files_once_and_moves(gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo) -> None:
    """The child lands under the parent once (a repeat sends no POST) and moves to a parent in a subgroup."""
    parent, child = gitlab_client.create_epic(epic_draft()), gitlab_client.create_epic(epic_draft())
    under = EpicRef(group=gitlab_client.group_path or "", iid=parent.iid)
    assert gitlab_client.set_epic_parent(child.iid, under).id == child.id
    before = gitlab_client.calls
    assert gitlab_client.set_epic_parent(child.iid, under).iid == child.iid
    assert gitlab_client.calls - before == 2  # the two reads
    remote = python_gitlab(gitlab_sandbox)
    assert remote.groups.get(gitlab_sandbox.group_path).epics.get(child.iid).parent_iid == parent.iid
    subgroup = gitlab_sandbox.project_path.rpartition("/")[0]
    elsewhere = GitLabClient(gitlab_client.url, gitlab_client._gl.private_token, gitlab_sandbox.project_path, subgroup)
    initiative = elsewhere.create_epic(epic_draft())
    gitlab_client.set_epic_parent(child.iid, EpicRef(group=subgroup, iid=initiative.iid))
    moved = remote.groups.get(gitlab_sandbox.group_path).epics.get(child.iid)
    assert (moved.parent_id, moved.parent_iid) == (initiative.id, initiative.iid)
    assert moved._links["parent"].endswith(f"/groups/{initiative.group_id}/epics/{initiative.iid}")


def test_set_epic_parent_refuses_itself_and_cycles(gitlab_client: GitLabClient) -> None:
    """An epic under itself, or under its own descendant, is GitLab's 409: CONFLICT, nothing changed."""
    group = gitlab_client.group_path or ""
    top, middle = gitlab_client.create_epic(epic_draft()), gitlab_client.create_epic(epic_draft())
    gitlab_client.set_epic_parent(middle.iid, EpicRef(group=group, iid=top.iid))
    for parent, reason in ((top, "cannot be added to itself"), (middle, "already an ancestor of the parent")):
        with pytest.raises(GitLabError) as refused:
            gitlab_client.set_epic_parent(top.iid, EpicRef(group=group, iid=parent.iid))
        assert (refused.value.type, refused.value.status) == (ErrorType.GITLAB_CONFLICT, 409)
        assert reason in refused.value.message
    assert gitlab_client._group().epics.get(top.iid).parent_id is None
    with pytest.raises(GitLabError) as unknown:
        gitlab_client.set_epic_parent(middle.iid, EpicRef(group=group, iid=999_999))
    assert unknown.value.type == ErrorType.GITLAB_NOT_FOUND


# -- issue links and labels ------------------------------------------------------------------


def test_ensure_issue_link_twice_makes_one_link(gitlab_client: GitLabClient) -> None:
    """ensure_issue_link is idempotent, also when asked from the other issue's side."""
    source = gitlab_client.create_issue(draft())
    target = gitlab_client.create_issue(draft())
    link = gitlab_client.ensure_issue_link(source.iid, target.iid, "blocks")
    assert (link.source_iid, link.target_iid, link.link_type) == (source.iid, target.iid, "blocks")
    assert link.target_project_id == source.project_id
    assert gitlab_client.ensure_issue_link(source.iid, target.iid, "blocks") == link
    reverse = gitlab_client.ensure_issue_link(target.iid, source.iid)
    assert (reverse.id, reverse.link_type) == (link.id, "is_blocked_by")
    issue = gitlab_client._project.issues.get(source.iid, lazy=True)
    assert [x.issue_link_id for x in issue.links.list(get_all=True)] == [link.id]


def test_ensure_label_creates_a_scoped_label_once(
    gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo
) -> None:
    """A ``scope::value`` label is created with its colour, and ensuring it again is a no-op."""
    name = f"{unique('priority')}::1"
    gitlab_client.ensure_label(name, "#d9534f", "most urgent")
    gitlab_client.ensure_label(name, "#d9534f", "most urgent")
    project = python_gitlab(gitlab_sandbox).projects.get(gitlab_sandbox.project_path)
    found = [x for x in project.labels.list(get_all=True) if x.name == name]
    assert [(x.color, x.description) for x in found] == [("#d9534f", "most urgent")]


# -- webhooks --------------------------------------------------------------------------------


def test_ensure_hook_is_idempotent_by_url_and_converges_events(
    gitlab_client: GitLabClient,
) -> None:
    """A second ensure_hook for the same URL updates that hook's events instead of adding one."""
    url = f"http://127.0.0.1:9/{unique('hook')}"
    hook = gitlab_client.ensure_hook(url, "tkn", ["issues", "note_events"])
    try:
        assert (hook.url, hook.events) == (url, ["issues", "note"])
        again = gitlab_client.ensure_hook(url, "tkn", ["confidential_issues", "issues"])
        assert (again.id, again.events) == (hook.id, ["issues", "confidential_issues"])
        assert [h for h in gitlab_client.list_hooks() if h.url == url] == [again]
    finally:
        gitlab_client.delete_hook(hook.id)
    assert all(h.url != url for h in gitlab_client.list_hooks())
    gitlab_client.delete_hook(hook.id)  # already gone: fine


def test_ensure_hook_rejects_unknown_events(gitlab_client: GitLabClient) -> None:
    """A misspelled event name fails before any request is made."""
    before = gitlab_client.calls
    with pytest.raises(ValueError, match="issue_events"):
        gitlab_client.ensure_hook("http://127.0.0.1:9/x", "t", ["issue_events"])
    assert gitlab_client.calls == before


def test_sandbox_logs_failed_deliveries_without_the_token(
    gitlab_client: GitLabClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook whose receiver is down gets a warning that names the URL but never the token."""
    caplog.set_level(logging.WARNING, logger="gitlab_sandbox.hooks")
    path = unique("down")
    hook = gitlab_client.ensure_hook(f"http://127.0.0.1:1/{path}?t=q", "tok-never-log", ["issues"])
    try:
        gitlab_client.create_issue(draft())
        deadline = time.monotonic() + 10
        while not [r for r in caplog.records if path in r.getMessage()]:
            assert time.monotonic() < deadline, "no delivery failure was logged"
            time.sleep(0.05)
    finally:
        gitlab_client.delete_hook(hook.id)
    [record] = [r for r in caplog.records if path in r.getMessage()]
    assert "Issue Hook" in record.getMessage() and "failed" in record.getMessage()
    assert "tok-never-log" not in caplog.text and "t=q" not in caplog.text
