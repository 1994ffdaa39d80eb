"""ensure_labels, and state that belongs to a client (or the worker's clients), not to the process."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gitlab_sandbox.gitlab import GitLabSandbox
from model_migration.clients.gitlab import GitLabClient, WaitGate
from model_migration.clients.gitlab_labels import LABEL_COLORS, UserDirectory
from model_migration.domain.errors import ErrorType, GitLabError
from tests.clients.gitlab_helpers import api, unique

if TYPE_CHECKING:
    from tests.conftest import SandboxInfo


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[GitLabSandbox, str]]:
    """A sandbox of its own: no labels yet, and faults that reach no other test."""
    token = secrets.token_urlsafe(16)
    with GitLabSandbox(tmp_path / "gitlab.sqlite", token=token, usernames=["bot"]) as box:
        yield box, token


def _posts(box: GitLabSandbox, since: int) -> list[str]:
    return [path for _, method, path, _, _ in box.requests.entries()[since:] if method == "POST"]


def test_ensure_labels_creates_exactly_the_missing_ones(gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo) -> None:
    """One existing and two missing names (one given twice): the two are created, once; again, nothing."""
    have, new_a, new_b = unique("have"), unique("workflow::a"), unique("new")
    gitlab_client.ensure_label(have, "#123456")
    assert gitlab_client.ensure_labels([have, new_a, new_b, new_a]) == [new_a, new_b]
    before = len(gitlab_sandbox.server.requests.entries())
    assert gitlab_client.ensure_labels([have, new_a, new_b]) == []
    assert _posts(gitlab_sandbox.server, before) == []  # looked up, nothing created
    labels = api(gitlab_sandbox, "/labels", per_page=100).json()
    mine = sorted((x["name"], x["color"]) for x in labels if x["name"] in (have, new_a, new_b))
    assert mine == sorted([(have, "#123456"), (new_a, "#428bca"), (new_b, "#6699cc")])


def test_ensure_labels_takes_a_label_created_meanwhile_as_done(gitlab_client: GitLabClient) -> None:
    """Another worker creates the label between the look-up and the create: the 409 is success."""
    name = unique("race")
    gitlab_client.ensure_label(name, "#123456")

    class LateClient(GitLabClient):
        def label_exists(self, name: str) -> bool:
            return False  # the look-up ran before the other worker's create

    with LateClient(gitlab_client.url, gitlab_client._gl.private_token, gitlab_client.project_path) as late:  # noqa: SLF001
        assert late.ensure_labels([name]) == []
    assert gitlab_client.label_exists(name)


def test_escalation_labels_get_their_fixed_colours(fresh: tuple[GitLabSandbox, str]) -> None:
    """``priority::1`` is red and ``priority::2`` orange, whoever creates them first."""
    box, token = fresh
    with GitLabClient(box.url, token, box.project_path) as client:
        assert client.ensure_labels(["priority::1", "priority::2", "AI Model Migration"]) == [
            "priority::1", "priority::2", "AI Model Migration",
        ]
        labels = {x["name"]: x["color"] for x in client._gl.http_list(f"/projects/{client._project.encoded_id}/labels")}  # noqa: SLF001
    assert labels == {name: LABEL_COLORS[name] for name in ("priority::1", "priority::2", "AI Model Migration")}
    assert labels["priority::1"] == "#dd2b0e" and labels["priority::2"] == "#e9730c"


def test_a_429_told_to_one_client_holds_every_client_of_its_gate(fresh: tuple[GitLabSandbox, str]) -> None:
    """Clients sharing a gate (the worker's threads) stop sending; a client with its own gate does not."""
    box, token = fresh
    gate = WaitGate()
    with (
        GitLabClient(box.url, token, box.project_path, gate=gate) as one,
        GitLabClient(box.url, token, box.project_path, gate=gate) as two,
        GitLabClient(box.url, token, box.project_path) as elsewhere,
    ):
        box.inject_fault(r"/users$", "429", count=1, retry_after=30)
        with pytest.raises(GitLabError) as told:
            one.user("bot")
        assert told.value.retry_after == 30
        with pytest.raises(GitLabError) as held:
            two.user("bot")
        assert (held.value.type, held.value.status) == (ErrorType.GITLAB_TRANSIENT, 429)
        assert held.value.retry_after is not None and 25 < held.value.retry_after <= 30
        assert two.calls == 0  # nothing was sent
        assert elsewhere.user("bot").username == "bot"


def test_found_users_are_remembered_by_each_client(fresh: tuple[GitLabSandbox, str]) -> None:
    """A client asks for a known user once; a new client starts with nothing remembered."""
    box, token = fresh
    with GitLabClient(box.url, token, box.project_path) as first, GitLabClient(box.url, token, box.project_path) as second:
        first.user("bot")
        first.user("@bot")
        second.user("bot")
        assert (first.calls, second.calls) == (1, 1)
    shared = UserDirectory()
    with GitLabClient(box.url, token, box.project_path, users=shared) as one, \
            GitLabClient(box.url, token, box.project_path, users=shared) as other:
        one.user("bot")
        other.user("bot")
        assert (one.calls, other.calls) == (1, 0)  # clients given one directory share what they found
        first.forget_users()
        first.user("bot")
        assert first.calls == 2
