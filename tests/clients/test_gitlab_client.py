"""GitLabClient against the local GitLab sandbox, over real HTTP: domain mapping and errors."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

from model_migration.clients.gitlab import GitLabClient
from model_migration.domain.errors import ErrorType, GitLabError
from model_migration.domain.models import marker_comment
from tests.clients.gitlab_helpers import api, draft, unique

if TYPE_CHECKING:
    from tests.conftest import SandboxInfo


# -- issues ----------------------------------------------------------------------------------


def test_create_issue_sets_every_field_and_appends_the_marker(gitlab_client: GitLabClient) -> None:
    """A created issue carries labels, assignee, due date, confidentiality and the hidden marker."""
    wanted = draft(assignee_username="dri-chat", due_date=date(2026, 5, 15), confidential=True)
    issue = gitlab_client.create_issue(wanted)
    dri = gitlab_client.user("dri-chat")
    assert issue.title == wanted.title
    assert issue.description.endswith(marker_comment(wanted.marker))
    assert issue.description.startswith("## Overview")
    assert issue.labels == sorted(wanted.labels)
    assert issue.assignee_ids == [dri.id]
    assert issue.due_date == date(2026, 5, 15)
    assert issue.confidential is True
    assert issue.state == "opened"
    assert issue.id != issue.iid
    assert issue.web_url.endswith(f"/-/issues/{issue.iid}")
    assert gitlab_client.get_issue(issue.iid) == issue


def test_find_issue_picks_the_marker_among_same_titles(gitlab_client: GitLabClient) -> None:
    """Two issues share a title; find_issue returns the one whose description has the marker."""
    first_draft = draft()
    second_draft = draft(title=first_draft.title)
    first = gitlab_client.create_issue(first_draft)
    second = gitlab_client.create_issue(second_draft)
    assert gitlab_client.find_issue(first.title, first_draft.marker) == first
    assert gitlab_client.find_issue(first.title, second_draft.marker) == second
    assert gitlab_client.find_issue(first.title, unique("never-used")) is None


def test_find_issue_honours_the_label_filter(gitlab_client: GitLabClient) -> None:
    """An issue without the asked-for labels is not found, with them it is."""
    wanted = draft(labels=["AI Model Migration"])
    gitlab_client.create_issue(wanted)
    assert gitlab_client.find_issue(wanted.title, wanted.marker, ["AI Model Migration"])
    assert gitlab_client.find_issue(wanted.title, wanted.marker, ["type::feature"]) is None


def test_ensure_issue_twice_creates_one_issue(
    gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo
) -> None:
    """A retried ensure finds the first issue, in one request, instead of creating another."""
    wanted = draft(assignee_username="mgr-chat")
    first = gitlab_client.ensure_issue(wanted)
    before = gitlab_client.calls
    again = gitlab_client.ensure_issue(wanted)
    assert again == first
    assert gitlab_client.calls - before == 1
    same_title = api(gitlab_sandbox, "/issues", search=wanted.title, **{"in": "title"}).json()
    assert [i["iid"] for i in same_title] == [first.iid]


def test_update_issue_is_one_put_with_only_the_given_fields(gitlab_client: GitLabClient) -> None:
    """update_issue costs exactly one request and leaves unmentioned fields alone."""
    issue = gitlab_client.create_issue(draft(due_date=date(2026, 1, 5)))
    before = gitlab_client.calls
    updated = gitlab_client.update_issue(issue.iid, add_labels=["workflow::evaluate"])
    assert gitlab_client.calls - before == 1
    assert "workflow::evaluate" in updated.labels
    assert updated.description == issue.description
    assert updated.due_date == date(2026, 1, 5)


def test_update_issue_changes_each_field(gitlab_client: GitLabClient) -> None:
    """Description, title, labels added and removed, due date, assignee and state all change."""
    issue = gitlab_client.create_issue(draft())
    dri = gitlab_client.user("dri-chat")
    updated = gitlab_client.update_issue(
        issue.iid,
        title=issue.title + " (done)",
        description="rewritten",
        add_labels=["workflow::rollout"],
        remove_labels=["group::ai framework"],
        due_date=date(2026, 2, 19),
        assignee_ids=[dri.id],
        state_event="close",
    )
    assert updated.title.endswith("(done)")
    assert updated.description == "rewritten"
    assert updated.labels == ["AI Model Migration", "workflow::rollout"]
    assert updated.due_date == date(2026, 2, 19)
    assert updated.assignee_ids == [dri.id]
    assert updated.state == "closed"
    reopened = gitlab_client.update_issue(issue.iid, state_event="reopen", assignee_ids=[])
    assert (reopened.state, reopened.assignee_ids) == ("opened", [])


# -- notes -----------------------------------------------------------------------------------


def test_notes_are_found_by_marker_and_listed_across_pages(gitlab_client: GitLabClient) -> None:
    """101 notes span two pages of 100; list_notes returns all, oldest first, in 2 requests."""
    issue = gitlab_client.create_issue(draft())
    for n in range(100):
        gitlab_client.create_note(issue.iid, f"note {n}")
    last = gitlab_client.create_note(issue.iid, "Evaluation passed", marker="eval:1")
    assert last.body == f"Evaluation passed\n\n{marker_comment('eval:1')}"

    before = gitlab_client.calls
    notes = gitlab_client.list_notes(issue.iid)
    assert gitlab_client.calls - before == 2
    assert [n.body for n in notes[:2]] == ["note 0", "note 1"]
    assert len(notes) == 101 and notes[-1] == last
    assert gitlab_client.find_note(issue.iid, "eval:1") == last
    assert gitlab_client.find_note(issue.iid, "eval:2") is None


def test_create_note_does_not_repeat_a_marker_already_in_the_body(
    gitlab_client: GitLabClient,
) -> None:
    """A body that already ends with the marker comment is sent unchanged."""
    issue = gitlab_client.create_issue(draft())
    body = f"Stage complete\n\n{marker_comment('stage:implement')}"
    note = gitlab_client.create_note(issue.iid, body, marker="stage:implement")
    assert note.body == body


# -- users and labels ------------------------------------------------------------------------


def test_user_lookup_finds_known_users(gitlab_client: GitLabClient) -> None:
    """A seeded username resolves to its id and display name."""
    user = gitlab_client.user("mgr-chat")
    assert (user.username, user.name) == ("mgr-chat", "Mgr Chat")
    assert user.id > 0


def test_unknown_user_is_not_found_and_named(gitlab_client: GitLabClient) -> None:
    """An unknown DRI fails as NOT_FOUND with a message that names the user and the catalog."""
    with pytest.raises(GitLabError) as caught:
        gitlab_client.create_issue(draft(assignee_username="jdoe"))
    assert caught.value.type == ErrorType.GITLAB_NOT_FOUND
    assert "'jdoe' does not exist" in caught.value.message
    assert "catalog" in caught.value.message


def test_ensure_label_twice_is_fine(
    gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo
) -> None:
    """The second ensure_label meets a 409 and treats it as success; one label exists."""
    name = unique("workflow::label")
    gitlab_client.ensure_label(name, "#428BCA", "stage label")
    gitlab_client.ensure_label(name, "#428BCA", "stage label")
    labels = api(gitlab_sandbox, "/labels", per_page=100).json()
    assert [label["color"] for label in labels if label["name"] == name] == ["#428BCA"]


# -- error mapping ---------------------------------------------------------------------------


def test_wrong_token_is_an_auth_error_without_the_token(gitlab_sandbox: SandboxInfo) -> None:
    """A bad token maps to GITLAB_AUTH; the token appears nowhere in the message."""
    token = "glpat-" + uuid.uuid4().hex
    client = GitLabClient(gitlab_sandbox.url, token, gitlab_sandbox.project_path)
    with pytest.raises(GitLabError) as caught:
        client.get_issue(1)
    assert caught.value.type == ErrorType.GITLAB_AUTH
    assert caught.value.status == 401
    assert "get issue #1" in caught.value.message
    assert token not in str(caught.value) and token not in repr(client)


def test_missing_issue_and_project_are_not_found(
    gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo
) -> None:
    """A 404 for an issue or a project maps to GITLAB_NOT_FOUND and names the operation."""
    with pytest.raises(GitLabError) as caught:
        gitlab_client.get_issue(987_654)
    assert caught.value.type == ErrorType.GITLAB_NOT_FOUND
    assert "get issue #987654" in caught.value.message and "Issue Not Found" in caught.value.message
    other = GitLabClient(gitlab_sandbox.url, gitlab_sandbox.token, "gitlab-org/nope")
    with pytest.raises(GitLabError) as caught:
        other.find_issue("x", "y")
    assert caught.value.type == ErrorType.GITLAB_NOT_FOUND
    assert "Project Not Found" in caught.value.message


def test_invalid_input_is_invalid(gitlab_client: GitLabClient) -> None:
    """GitLab's 400 for a bad state_event maps to GITLAB_INVALID, not to a retryable error."""
    issue = gitlab_client.create_issue(draft())
    with pytest.raises(GitLabError) as caught:
        gitlab_client.update_issue(issue.iid, state_event="explode")
    assert (caught.value.type, caught.value.status) == (ErrorType.GITLAB_INVALID, 400)
    assert "state_event does not have a valid value" in caught.value.message
    assert not caught.value.retryable


class _FaultHandler(BaseHTTPRequestHandler):
    """Answers like a GitLab under pressure: 429, 503 or 403, echoing the token back."""

    hits = 0
    status_by_iid = {"1": (429, "7"), "2": (503, "date"), "3": (500, None), "4": (403, None)}

    def do_GET(self) -> None:  # noqa: N802
        type(self).hits += 1
        status, retry_after = self.status_by_iid[self.path.split("?")[0].rsplit("/", 1)[-1]]
        body = f'{{"message": "{status} go away {self.headers["PRIVATE-TOKEN"]}"}}'.encode()
        self.send_response(status)
        if retry_after == "date":
            retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def faulty_gitlab() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FaultHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("iid", "status", "kind", "retry_after"),
    [
        (1, 429, ErrorType.GITLAB_TRANSIENT, (7, 7)),
        (2, 503, ErrorType.GITLAB_TRANSIENT, (25, 30)),
        (3, 500, ErrorType.GITLAB_TRANSIENT, None),
        (4, 403, ErrorType.GITLAB_AUTH, None),
    ],
)
def test_rate_limits_and_server_errors_are_sent_once_and_mapped(
    faulty_gitlab: str, iid: int, status: int, kind: ErrorType, retry_after: tuple[int, int] | None
) -> None:
    """429/5xx become TRANSIENT with Retry-After in seconds, after one request and no sleep;
    403 becomes AUTH; the token the server echoes back is scrubbed."""
    token = "glpat-" + uuid.uuid4().hex
    client = GitLabClient(faulty_gitlab, token, "g/p")
    _FaultHandler.hits = 0
    with pytest.raises(GitLabError) as caught:
        client.get_issue(iid)
    error = caught.value
    assert (error.type, error.status) == (kind, status)
    assert (client.calls, _FaultHandler.hits) == (1, 1)
    if retry_after is None:
        assert error.retry_after is None
    else:
        low, high = retry_after
        assert error.retry_after is not None and low <= error.retry_after <= high
    if status == 403:
        assert "api scope" in error.message and "Reporter" in error.message
    else:
        assert "go away [REDACTED]" in error.message
    assert token not in error.message
    assert "\n" not in error.message


def test_unreachable_gitlab_is_transient() -> None:
    """A refused connection maps to GITLAB_TRANSIENT, so Temporal retries it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = GitLabClient(f"http://127.0.0.1:{port}", "secret-token", "g/p", timeout=2)
    with pytest.raises(GitLabError) as caught:
        client.get_issue(1)
    assert caught.value.type == ErrorType.GITLAB_TRANSIENT
    assert caught.value.retryable and "secret-token" not in caught.value.message


def test_found_users_are_remembered_unknown_ones_are_asked_again(gitlab_client) -> None:  # type: ignore[no-untyped-def]
    """A known username costs this client one request; an unknown one is asked every time."""
    first = gitlab_client.calls
    gitlab_client.user("bot")
    gitlab_client.user("bot")
    assert gitlab_client.calls == first + 1
    for _ in range(2):
        with pytest.raises(GitLabError):
            gitlab_client.user("nobody-here")
    assert gitlab_client.calls == first + 3


class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy that records the request line and answers GitLab's 404."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        _Proxy.seen.append(self.requestline)
        body = b'{"message": "404 Not found"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def proxy() -> Iterator[str]:
    _Proxy.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_environment_proxy_is_read_at_construction(proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY in the environment carries the requests (read once, not on every call)."""
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = GitLabClient("http://gitlab.invalid", "secret-token", "g/p", timeout=5)
    monkeypatch.delenv("HTTP_PROXY")
    with pytest.raises(GitLabError) as caught:
        client.get_issue(1)
    assert caught.value.status == 404
    assert _Proxy.seen == ["GET http://gitlab.invalid/api/v4/projects/g%2Fp/issues/1 HTTP/1.1"]


def test_no_proxy_is_honoured(proxy: str, gitlab_sandbox: SandboxInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    client = GitLabClient(gitlab_sandbox.url, gitlab_sandbox.token, gitlab_sandbox.project_path)
    assert client.find_issue(f"no such title {unique()}", "marker") is None
    assert _Proxy.seen == []


def test_ca_bundle_from_the_environment_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/company-ca.pem")
    client = GitLabClient("https://gitlab.example.com", "secret-token", "g/p")
    assert client._gl.ssl_verify == "/etc/ssl/company-ca.pem"
    assert not client._gl.session.trust_env


class _LoginPage(BaseHTTPRequestHandler):
    """What a proxy or a single sign-on page in front of GitLab answers: 200 and HTML."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html><body>Sign in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.mark.parametrize("call", ["note", "issue"])
def test_a_page_that_is_not_json_is_a_transient_error(call: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LoginPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = GitLabClient(f"http://127.0.0.1:{server.server_address[1]}", "secret-token", "g/p", timeout=5)
        with pytest.raises(GitLabError) as caught:
            if call == "note":
                client.create_note(1, "hello")
            else:
                client.create_issue(draft())
        assert caught.value.type == ErrorType.GITLAB_TRANSIENT and "not JSON" in caught.value.message
    finally:
        server.shutdown()
        server.server_close()
