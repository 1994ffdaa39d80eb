"""Injected faults reach python-gitlab and ``GitLabClient`` the way GitLab's own failures do."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gitlab
import pytest
import requests

from gitlab_sandbox.gitlab import GitLabSandbox
from model_migration.clients.gitlab import GitLabClient
from model_migration.domain.errors import ErrorType, GitLabError
from tests.clients.gitlab_helpers import draft, unique

TOKEN = "fault-token"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitLabSandbox]:
    """A sandbox of its own: faults here must not reach other tests."""
    with GitLabSandbox(tmp_path_factory.mktemp("faults") / "gitlab.sqlite", token=TOKEN) as sb:
        yield sb


@pytest.fixture
def client(sandbox: GitLabSandbox) -> Iterator[GitLabClient]:
    sandbox.clear_faults()
    with GitLabClient(sandbox.url, TOKEN, sandbox.project_path, timeout=1.0) as c:
        yield c
    sandbox.clear_faults()


@pytest.fixture
def gl(sandbox: GitLabSandbox) -> gitlab.Gitlab:
    return gitlab.Gitlab(
        sandbox.url, private_token=TOKEN, retry_transient_errors=False, timeout=1.0
    )


def _project(gl: gitlab.Gitlab, sandbox: GitLabSandbox) -> object:
    return gl.projects.get(sandbox.project_path, obey_rate_limit=False)


@pytest.mark.parametrize("status", [500, 502])
def test_server_errors_are_transient(
    sandbox: GitLabSandbox, client: GitLabClient, gl: gitlab.Gitlab, status: int
) -> None:
    """500 and 502 reach python-gitlab as that status and GitLabClient as TRANSIENT."""
    sandbox.inject_fault(r"/projects/[^/]+$", str(status), method="GET", count=1)
    with pytest.raises(gitlab.exceptions.GitlabGetError) as raised:
        _project(gl, sandbox)
    assert raised.value.response_code == status
    issue = client.create_issue(draft())
    sandbox.inject_fault(r"/issues/\d+$", str(status), method="GET", count=1)
    with pytest.raises(GitLabError) as error:
        client.get_issue(issue.iid)
    assert (error.value.type, error.value.status) == (ErrorType.GITLAB_TRANSIENT, status)
    assert client.get_issue(issue.iid) == issue  # count=1: spent


def test_429_is_transient_with_retry_after(
    sandbox: GitLabSandbox, client: GitLabClient, gl: gitlab.Gitlab
) -> None:
    """An injected 429 says "Retry later" with the rule's Retry-After; the client keeps it."""
    sandbox.inject_fault(r"/projects/[^/]+$", "429", count=1, retry_after=7)
    with pytest.raises(gitlab.exceptions.GitlabGetError) as raised:
        _project(gl, sandbox)
    assert (raised.value.response_code, raised.value.error_message) == (429, "Retry later")
    sandbox.inject_fault(r"/users$", "429", count=1, retry_after=7)
    with pytest.raises(GitLabError) as error:
        client.user("model-migration-bot")
    assert error.value.type == ErrorType.GITLAB_TRANSIENT and error.value.retry_after == 7


def test_timeout_is_transient(
    sandbox: GitLabSandbox, client: GitLabClient, gl: gitlab.Gitlab
) -> None:
    """A request held past the client's 1 s timeout is a timeout, hence TRANSIENT."""
    sandbox.inject_fault(r"/projects/[^/]+$", "timeout", method="GET", count=1, delay=3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        _project(gl, sandbox)
    sandbox.inject_fault(r"/users$", "timeout", count=1, delay=3)
    with pytest.raises(GitLabError) as error:
        client.user("model-migration-bot")
    assert error.value.type == ErrorType.GITLAB_TRANSIENT and "ReadTimeout" in error.value.message


def test_drop_after_write_applies_the_write(
    sandbox: GitLabSandbox, client: GitLabClient, gl: gitlab.Gitlab
) -> None:
    """The answer is lost but the issue exists: a naive retry duplicates, ensure_issue does not."""
    project = gl.projects.get(sandbox.project_path, lazy=True)
    title = f"dropped {unique()}"
    sandbox.inject_fault(r"/issues$", "drop_after_write", method="POST", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        project.issues.create({"title": title})
    project.issues.create({"title": title})  # the naive retry
    assert len(project.issues.list(search=title, get_all=True)) == 2

    wanted = draft()
    sandbox.inject_fault(r"/issues$", "drop_after_write", method="POST", count=1)
    with pytest.raises(GitLabError) as error:
        client.ensure_issue(wanted)
    assert error.value.type == ErrorType.GITLAB_TRANSIENT and error.value.status is None
    created = client.find_issue(wanted.title, wanted.marker)
    assert created is not None  # the write happened
    assert client.ensure_issue(wanted) == created  # and the retry finds it


def test_count_and_method_select_requests(sandbox: GitLabSandbox, client: GitLabClient) -> None:
    """A rule fires on its method only, ``count`` times, then lists itself as spent."""
    issue = client.create_issue(draft())
    rule = sandbox.inject_fault(r"/issues/\d+$", "500", method="PUT", count=2)
    assert client.get_issue(issue.iid) == issue  # GET: not this rule's method
    for _ in range(2):
        with pytest.raises(GitLabError):
            client.update_issue(issue.iid, title="changed")
    assert client.update_issue(issue.iid, title="changed").title == "changed"
    (listed,) = [r for r in sandbox.faults() if r["id"] == rule["id"]]
    assert (listed["fired"], listed["remaining"]) == (2, 0)


def test_fraction_is_deterministic_with_a_seed(
    sandbox: GitLabSandbox, client: GitLabClient
) -> None:
    """``fraction`` fails that share of matching requests, in the order the seed dictates."""

    def outcomes() -> list[bool]:
        sandbox.clear_faults()
        sandbox.inject_fault(r"/user$", "502", fraction=0.5, seed=7)
        results = []
        for _ in range(20):
            try:
                client._gl.http_get("/user")
                results.append(False)
            except gitlab.exceptions.GitlabHttpError:
                results.append(True)
        return results

    rng = random.Random(7)
    expected = [rng.random() < 0.5 for _ in range(20)]
    assert outcomes() == expected == outcomes()
    assert 0 < sum(expected) < 20


def test_clearing_over_http_needs_the_token(sandbox: GitLabSandbox, client: GitLabClient) -> None:
    """The /-/sandbox/faults endpoints add, list and clear rules, and only with the token."""
    url, auth = f"{sandbox.url}/-/sandbox/faults", {"PRIVATE-TOKEN": TOKEN}
    rule = {"method": "GET", "path": "/users$", "fault": "500", "count": None}
    assert requests.post(url, json=rule, timeout=5).status_code == 401
    added = requests.post(url, json=rule, headers=auth, timeout=5)
    assert added.status_code == 201 and added.json()["remaining"] is None
    assert [r["id"] for r in requests.get(url, headers=auth, timeout=5).json()] == [
        added.json()["id"]
    ]
    with pytest.raises(GitLabError):
        client.user("model-migration-bot")
    assert requests.delete(url, timeout=5).status_code == 401
    assert requests.delete(url, headers=auth, timeout=5).status_code == 204
    assert requests.get(url, headers=auth, timeout=5).json() == []
    assert client.user("model-migration-bot").username == "model-migration-bot"


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "/x", "fault": "418"},
        {"path": "(", "fault": "500"},
        {"path": "/x", "fault": "500", "fraction": 1.5},
        {"path": "/x", "fault": "500", "count": 0},
        {"path": "/x", "fault": "500", "method": "BREW"},
        {"fault": "500"},
    ],
)
def test_bad_rules_are_refused(sandbox: GitLabSandbox, rule: dict[str, object]) -> None:
    """Unknown faults, bad regexes, fractions, counts or methods are a 400; nothing is added."""
    answer = requests.post(f"{sandbox.url}/-/sandbox/faults", json=rule,
                           headers={"PRIVATE-TOKEN": TOKEN}, timeout=5)  # fmt: skip
    assert answer.status_code == 400
    assert sandbox.faults() == []


def test_request_counts_by_route(sandbox: GitLabSandbox, client: GitLabClient) -> None:
    """The sandbox counts requests per (method, route pattern), faulted ones included."""
    key = ("GET", r"^/api/v4/users$")
    before = sandbox.request_counts().get(key, 0)
    sandbox.inject_fault(r"/users$", "500", count=1)
    with pytest.raises(GitLabError):
        client.user("model-migration-bot")
    client.user("model-migration-bot")
    assert sandbox.request_counts()[key] == before + 2


def test_stop_releases_a_held_request(tmp_path: Path) -> None:
    """Stopping does not wait out a ``timeout`` fault, and the held client is let go."""
    sandbox = GitLabSandbox(tmp_path / "gitlab.sqlite", token=TOKEN)
    url = sandbox.start()
    sandbox.inject_fault("/version", "timeout", delay=30)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(requests.get(f"{url}/api/v4/version", headers={"PRIVATE-TOKEN": TOKEN},
                                        timeout=10).status_code)  # fmt: skip
        except requests.RequestException as exc:
            outcome.append(type(exc))

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)
    started = time.monotonic()
    sandbox.stop()
    caller.join(timeout=5)
    assert time.monotonic() - started < 10 and not caller.is_alive()  # the delay was 30 s
    assert outcome and outcome[0] != 200


def test_server_error_does_not_wait_out_the_rate_limit_window(
    sandbox: GitLabSandbox, client: GitLabClient
) -> None:
    """A 500 carries RateLimit-Reset like every answer, but is retried soon, not after the window."""
    sandbox.inject_fault(r"/users$", "500", count=1)
    with pytest.raises(GitLabError) as error:
        client.user("model-migration-bot")
    assert error.value.type == ErrorType.GITLAB_TRANSIENT and error.value.retry_after is None
