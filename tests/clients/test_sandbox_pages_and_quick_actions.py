"""The sandbox's merge request page, and quick actions that only GitLab's own rules make work."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from gitlab_sandbox.gitlab import GitLabSandbox
from model_migration.clients.gitlab import GitLabClient
from tests.clients.gitlab_helpers import api, draft, unique

if TYPE_CHECKING:
    from tests.conftest import SandboxInfo


def test_merge_request_web_page_shows_branches_description_and_files(gitlab_client: GitLabClient) -> None:
    """A merge request's web_url opens without a token: title, state, branches, description, files."""
    branch = gitlab_client.ensure_branch(f"model-migration/{unique('page')}").name
    gitlab_client.commit_files(branch, "Add the model", {"models.yml": "models:\n- name: <new>\n", "docs/a.md": "hi\n"})
    mr = gitlab_client.ensure_merge_request(branch, "main", f"Add <model> {unique()}", "Adds the **model** & its docs")
    page = requests.get(mr.web_url, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    text = page.text
    assert mr.title.replace("<", "&lt;").replace(">", "&gt;") in text and "<model>" not in text
    assert "opened" in text and branch in text and '<code class="target">main</code>' in text
    assert "Adds the **model** &amp; its docs" in text
    assert "models.yml" in text and "docs/a.md" in text and "+- name: &lt;new&gt;" in text
    assert "Changes (2)" in text


def test_merge_request_page_of_an_unknown_iid_is_a_404(gitlab_sandbox: SandboxInfo) -> None:
    """Only merge requests that exist have a page."""
    page = requests.get(f"{gitlab_sandbox.url}/{gitlab_sandbox.project_path}/-/merge_requests/999999", timeout=5)
    assert page.status_code == 404


def test_label_quick_action_applies_known_labels_and_skips_unknown_ones(gitlab_client: GitLabClient) -> None:
    """``/label`` applies labels that exist; an unknown one is not applied and not created."""
    known, unknown = unique("known"), unique("unknown")
    gitlab_client.ensure_label(known, "#428bca")
    issue = gitlab_client.create_issue(draft(labels=[]))
    gitlab_client.create_note(issue.iid, f"Escalated.\n\n/label ~{known} ~\"{unknown}\"")
    assert gitlab_client.get_issue(issue.iid).labels == [known]
    assert not gitlab_client.label_exists(unknown)
    [note] = gitlab_client.list_notes(issue.iid)
    assert note.body == "Escalated."  # the command line is consumed even though a label was skipped


def test_unavailable_commands_stay_in_the_note(tmp_path: Path) -> None:
    """In a project without labels ``/label`` is not a command; nor is ``/unlabel`` on an unlabelled
    issue, ``/close`` on a closed one, or ``/remove_due_date`` without a due date: the lines stay text."""
    token = secrets.token_urlsafe(16)
    with GitLabSandbox(tmp_path / "g.sqlite", token=token) as box:
        with GitLabClient(box.url, token, box.project_path) as client:
            issue = client.create_issue(draft(labels=[]))
            client.create_note(issue.iid, "Done.\n/label ~x\n/unlabel ~y\n/remove_due_date")
            client.update_issue(issue.iid, state_event="close")
            client.create_note(issue.iid, "Again.\n/close")
            bodies = [note.body for note in client.list_notes(issue.iid)]
            assert bodies == ["Done.\n/label ~x\n/unlabel ~y\n/remove_due_date", "Again.\n/close"]
            assert client.get_issue(issue.iid).labels == [] and not client.label_exists("x")


def test_rest_api_labels_are_created_when_missing(gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo) -> None:
    """Unlike a quick action, ``labels``/``add_labels`` on create or update create missing labels."""
    scope, added = unique("area"), unique("added")
    issue = gitlab_client.create_issue(draft(labels=[f"{scope}::a", f"{scope}::b"]))
    assert issue.labels == [f"{scope}::b"]  # the last of a scope wins, yet both labels now exist
    gitlab_client.update_issue(issue.iid, add_labels=[added])
    names = {label["name"] for label in api(gitlab_sandbox, "/labels", per_page=100, search=scope).json()}
    assert names == {f"{scope}::a", f"{scope}::b"}
    assert gitlab_client.label_exists(added)
