"""The GitLab sandbox behaves like GitLab: pagination, auth, error shapes, filters, pages, state."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlparse

import gitlab
import pytest
import requests

from gitlab_sandbox.gitlab import GitLabSandbox
from model_migration.clients.gitlab import GitLabClient
from tests.clients.gitlab_helpers import api, draft, unique

if TYPE_CHECKING:
    from tests.conftest import SandboxInfo


def test_pagination_headers_and_links(gitlab_sandbox: SandboxInfo) -> None:
    """x-total, x-next-page and Link (on the request's own host) describe offset pages."""
    label = unique("page")
    sandbox = gitlab_sandbox
    with GitLabClient(sandbox.url, sandbox.token, sandbox.project_path) as client:
        for _ in range(5):
            client.create_issue(draft(labels=[label]))
    gl = gitlab.Gitlab(gitlab_sandbox.url, private_token=gitlab_sandbox.token)
    project = gl.projects.get(gitlab_sandbox.project_path, lazy=True)
    first = project.issues.list(get_all=False, per_page=2, labels=[label])
    assert len(first) == 2
    pages = project.issues.list(iterator=True, per_page=2, labels=[label])
    assert (pages.total, pages.total_pages, pages.next_page, pages.prev_page) == (5, 3, 2, None)
    assert len({issue.iid for issue in pages}) == 5

    raw = api(gitlab_sandbox, "/issues", labels=label, per_page=2, page=2)
    assert raw.headers["x-page"] == "2" and raw.headers["x-prev-page"] == "1"
    assert raw.headers["x-next-page"] == "3" and raw.headers["x-total"] == "5"
    last = urlparse(raw.links["last"]["url"])
    assert f"{last.scheme}://{last.netloc}" == gitlab_sandbox.url
    assert parse_qs(last.query)["page"] == ["3"] and parse_qs(last.query)["labels"] == [label]
    assert set(raw.links) == {"prev", "next", "first", "last"}


def test_state_survives_a_restart(tmp_path: Path) -> None:
    """A new sandbox on the same state file still has the issue and notes, and no extra seeds."""
    state_file = tmp_path / "gitlab.sqlite"
    wanted = draft(assignee_username="dri-chat")
    with GitLabSandbox(state_file, token="one", usernames=["dri-chat"]) as sandbox:
        with GitLabClient(sandbox.url, "one", sandbox.project_path) as client:
            issue = client.create_issue(wanted)
            client.create_note(issue.iid, "kept", marker="n")
    with GitLabSandbox(state_file, token="two", usernames=["dri-chat"]) as sandbox:
        with GitLabClient(sandbox.url, "two", sandbox.project_path) as client:
            again = client.get_issue(issue.iid)
            assert again.model_dump(exclude={"web_url"}) == issue.model_dump(exclude={"web_url"})
            assert again.web_url.startswith(sandbox.url)
            assert client.find_note(issue.iid, "n") is not None
        users = requests.get(
            f"{sandbox.url}/api/v4/users", headers={"PRIVATE-TOKEN": "two"}, timeout=5
        ).json()
        assert sorted(u["username"] for u in users) == ["dri-chat", "model-migration-bot"]


def test_issue_web_page_renders_without_a_token(gitlab_client: GitLabClient) -> None:
    """An issue's web_url is an HTML page with its title, labels and notes, open to anyone."""
    issue = gitlab_client.create_issue(draft(title=f"Roll out <b>{unique()}</b>"))
    gitlab_client.create_note(issue.iid, "Rollout at 25%")
    page = requests.get(issue.web_url, timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert issue.title.replace("<", "&lt;").replace(">", "&gt;") in page.text
    assert "group::ai framework" in page.text and "Rollout at 25%" in page.text


def test_the_api_needs_a_token_and_accepts_bearer(gitlab_sandbox: SandboxInfo) -> None:
    """No token is 401 with GitLab's body; a Bearer token works like PRIVATE-TOKEN."""
    url = f"{gitlab_sandbox.url}/api/v4/user"
    anonymous = requests.get(url, timeout=5)
    assert (anonymous.status_code, anonymous.json()) == (401, {"message": "401 Unauthorized"})
    auth = {"Authorization": f"Bearer {gitlab_sandbox.token}"}
    bearer = requests.get(url, headers=auth, timeout=5)
    assert bearer.json()["username"] == "model-migration-bot" and bearer.json()["is_admin"]


def test_invalid_requests_get_gitlabs_error_shapes(gitlab_sandbox: SandboxInfo) -> None:
    """Missing title, bad due date, duplicate label and unknown routes answer like GitLab."""
    headers = {"PRIVATE-TOKEN": gitlab_sandbox.token}
    base = f"{gitlab_sandbox.url}/api/v4/projects/{quote(gitlab_sandbox.project_path, safe='')}"
    no_title = requests.post(f"{base}/issues", json={"body": "x"}, headers=headers, timeout=5)
    assert (no_title.status_code, no_title.json()) == (400, {"error": "title is missing"})
    bad_date = requests.post(
        f"{base}/issues", json={"title": "t", "due_date": "15/05/2026"}, headers=headers, timeout=5
    )
    assert (bad_date.status_code, bad_date.json()) == (400, {"error": "due_date is invalid"})
    label = {"name": unique("dup"), "color": "#FF0000"}
    created = requests.post(f"{base}/labels", json=label, headers=headers, timeout=5)
    assert created.status_code == 201
    dup = requests.post(f"{base}/labels", json=label, headers=headers, timeout=5)
    assert (dup.status_code, dup.json()) == (409, {"message": "Label already exists"})
    nowhere = requests.get(f"{gitlab_sandbox.url}/api/v4/nowhere", headers=headers, timeout=5)
    assert (nowhere.status_code, nowhere.json()) == (404, {"message": "404 Not Found"})


def test_issue_list_filters(gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo) -> None:
    """state, iids[], assignee_username, search in description and order_by narrow the list."""
    label = unique("filter")
    first = gitlab_client.create_issue(draft(labels=[label], assignee_username="dri-chat"))
    second = gitlab_client.create_issue(
        draft(labels=[label], description=f"needle {label}", due_date=date(2026, 1, 1))
    )
    gitlab_client.update_issue(first.iid, state_event="close")
    gl = gitlab.Gitlab(gitlab_sandbox.url, private_token=gitlab_sandbox.token)
    project = gl.projects.get(gitlab_sandbox.project_path, lazy=True)

    def iids(**filters: object) -> list[int]:
        return [i.iid for i in project.issues.list(get_all=True, labels=[label], **filters)]

    assert iids() == [second.iid, first.iid]  # newest first by default
    assert iids(sort="asc") == [first.iid, second.iid]
    assert iids(state="opened") == [second.iid]
    assert iids(state="closed") == [first.iid]
    assert iids(iids=[first.iid]) == [first.iid]
    assert iids(assignee_username="dri-chat") == [first.iid]
    assert iids(search=f"needle {label}", **{"in": "description"}) == [second.iid]
    assert iids(search=f"needle {label}", **{"in": "title"}) == []
    assert iids(order_by="due_date", sort="asc") == [second.iid, first.iid]  # no date: last


def test_issues_created_concurrently_get_distinct_iids(gitlab_sandbox: SandboxInfo) -> None:
    """Parallel creates through separate clients never share an iid."""

    def create(_: int) -> int:
        sandbox = gitlab_sandbox
        with GitLabClient(sandbox.url, sandbox.token, sandbox.project_path) as client:
            return client.create_issue(draft()).iid

    with ThreadPoolExecutor(max_workers=8) as pool:
        iids = list(pool.map(create, range(24)))
    assert len(set(iids)) == 24


def test_objects_resolve_by_id_or_encoded_path(gitlab_sandbox: SandboxInfo) -> None:
    """Projects and groups answer to their numeric id and their URL-encoded path; users by id
    and username, with an empty list for unknown names."""
    gl = gitlab.Gitlab(gitlab_sandbox.url, private_token=gitlab_sandbox.token)
    project = gl.projects.get(gitlab_sandbox.project_path)
    assert gl.projects.get(project.id).path_with_namespace == gitlab_sandbox.project_path
    assert project.namespace["full_path"] == gitlab_sandbox.project_path.rsplit("/", 1)[0]
    group = gl.groups.get(gitlab_sandbox.group_path)
    assert gl.groups.get(group.id).full_path == gitlab_sandbox.group_path
    [dri] = gl.users.list(username="dri-chat", get_all=False)
    assert (dri.state, dri.web_url) == ("active", f"{gitlab_sandbox.url}/dri-chat")
    assert gl.users.get(dri.id).username == "dri-chat"
    assert gl.users.list(username="nobody-here", get_all=False) == []


def test_each_request_is_logged_once_without_the_token(
    gitlab_sandbox: SandboxInfo, caplog: pytest.LogCaptureFixture
) -> None:
    """The sandbox logs one debug line per request, and the token never appears in it."""
    marker = unique("log")
    with caplog.at_level(logging.DEBUG, logger="gitlab_sandbox.gitlab"):
        api(gitlab_sandbox, "/issues", search=marker, private_token=gitlab_sandbox.token)
    lines = [r.getMessage() for r in caplog.records if r.name == "gitlab_sandbox.gitlab"]
    assert len(lines) == 1 and lines[0].startswith("GET /api/v4/projects/") and "-> 200" in lines[0]
    assert gitlab_sandbox.token not in caplog.text and marker not in caplog.text


def test_scoped_labels_replace_their_scope_as_on_premium(gitlab_client: GitLabClient) -> None:
    """``scope::value`` labels are exclusive within a scope: on create, update, and quick actions."""
    scope = unique("priority")
    plain = unique("plain")
    issue = gitlab_client.create_issue(draft(labels=[f"{scope}::3", f"{scope}::2", plain]))
    assert sorted(issue.labels) == sorted([f"{scope}::2", plain])  # the last of a scope wins
    issue = gitlab_client.update_issue(issue.iid, add_labels=[f"{scope}::1"])
    assert sorted(issue.labels) == sorted([f"{scope}::1", plain])
    gitlab_client.create_note(issue.iid, f'Overdue.\n\n/label ~"{scope}::2"')
    assert sorted(gitlab_client.get_issue(issue.iid).labels) == sorted([f"{scope}::2", plain])
    # A nested scope is its own scope: a::b::1 and a::2 live side by side.
    nested = f"{scope}::team::1"
    issue = gitlab_client.update_issue(issue.iid, add_labels=[nested], remove_labels=[plain])
    assert sorted(issue.labels) == sorted([f"{scope}::2", nested])
