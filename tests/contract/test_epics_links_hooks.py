"""Epics, issue links, scoped labels, users and project webhooks, through python-gitlab only.

Against a real GitLab these need a Premium group (epics, ``blocks`` links; child epics need Ultimate) and Maintainer
rights on the project (hooks). Tests that need a receiver on this machine run on the sandbox
only: a real GitLab cannot reach this machine's loopback address.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import gitlab
import pytest

from tests.contract.conftest import Target

NEEDS_RECEIVER = "a real GitLab cannot deliver webhooks to this machine's loopback address"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _issue(target: Target, **extra: Any) -> Any:
    return target.project.issues.create({"title": _name("contract-issue"), **extra})


# -- epics -----------------------------------------------------------------------------------


def test_epic_create_update_close_with_fixed_due_date(target: Target) -> None:
    """An epic keeps labels and its fixed due date, updates, closes and reopens."""
    title = _name("Replace discontinued model")
    epic = target.group.epics.create({
        "title": title, "description": "cutoff soon", "labels": ["AI Model Migration"],
        "due_date_is_fixed": True, "due_date_fixed": "2026-01-20",
    })  # fmt: skip
    assert (epic.title, epic.state, epic.labels) == (title, "opened", ["AI Model Migration"])
    assert (epic.due_date_is_fixed, epic.due_date_fixed, epic.due_date) == (
        True, "2026-01-20", "2026-01-20",
    )  # fmt: skip
    assert epic.web_url.endswith(f"/groups/{target.group.full_path}/-/epics/{epic.iid}")

    epic.description = "cutoff moved"
    epic.due_date_fixed = "2026-02-01"
    epic.save()
    fresh = target.group.epics.get(epic.iid)
    assert (fresh.description, fresh.due_date) == ("cutoff moved", "2026-02-01")

    target.group.epics.update(epic.iid, {"add_labels": "group::ai framework"})
    assert sorted(target.group.epics.get(epic.iid).labels) == [
        "AI Model Migration", "group::ai framework",
    ]  # fmt: skip
    target.group.epics.update(epic.iid, {"state_event": "close"})
    closed = target.group.epics.get(epic.iid)
    assert closed.state == "closed" and closed.closed_at
    found = target.group.epics.list(search=title, state="closed", get_all=True)
    assert [e.iid for e in found] == [epic.iid]
    assert target.group.epics.list(search=title, state="opened", get_all=True) == []
    target.group.epics.update(epic.iid, {"state_event": "reopen"})
    assert target.group.epics.get(epic.iid).state == "opened"


def test_epic_issues_use_the_global_issue_id(target: Target) -> None:
    """An issue joins an epic by its global id; a second add is a 409; removal empties it."""
    epic = target.group.epics.create({"title": _name("epic")})
    issue = _issue(target)
    added = epic.issues.create({"issue_id": issue.id})
    assert added.epic_issue_id == added.id and added.epic_issue_id != issue.id
    assert added.issue["id"] == issue.id and added.epic["iid"] == epic.iid
    listed = epic.issues.list(get_all=True)
    assert [(i.id, i.iid, i.epic_issue_id) for i in listed] == [
        (issue.id, issue.iid, added.epic_issue_id),
    ]  # fmt: skip
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as duplicate:
        epic.issues.create({"issue_id": issue.id})
    assert duplicate.value.response_code == 409
    epic.issues.delete(added.epic_issue_id)
    assert epic.issues.list(get_all=True) == []


# -- epic notes and child epics --------------------------------------------------------------


def _epics(target: Target, count: int) -> list[Any]:
    return [target.group.epics.create({"title": _name("epic")}) for _ in range(count)]


def _refused(call: Callable[[], Any]) -> gitlab.exceptions.GitlabHttpError:
    with pytest.raises(gitlab.exceptions.GitlabHttpError) as refused:
        call()
    return refused.value


def test_epic_notes_take_the_epics_global_id(target: Target) -> None:
    """Notes on a closed epic, addressed by its global id; newest first unless sort=asc; a blank,
    missing or unknown-epic note is refused."""
    [epic] = _epics(target, 1)
    target.group.epics.update(epic.iid, {"state_event": "close"})
    first = epic.notes.create({"body": "cutoff moved"})  # python-gitlab sends epic.id, not the iid
    second = epic.notes.create({"body": "replacement chosen"})
    assert (first.noteable_type, first.noteable_id, first.noteable_iid, first.system) == ("Epic", epic.id, epic.iid, False)
    assert first.author["username"] and first.created_at
    comments = [n for n in epic.notes.list(get_all=True) if not n.system]  # GitLab adds "closed"
    assert [n.id for n in comments] == [second.id, first.id]
    assert [n.id for n in epic.notes.list(sort="asc", get_all=True) if not n.system] == [first.id, second.id]
    assert epic.notes.get(first.id).body == "cutoff moved"
    notes = f"/groups/{target.group.id}/epics/{epic.id}/notes"
    assert _refused(lambda: target.gl.http_post(notes, post_data={"body": " "})).response_code == 400
    assert _refused(lambda: target.gl.http_post(notes, post_data={})).response_code == 400
    unknown = f"/groups/{target.group.id}/epics/0/notes"
    assert _refused(lambda: target.gl.http_post(unknown, post_data={"body": "x"})).response_code == 404
    assert len([n for n in epic.notes.list(get_all=True) if not n.system]) == 2


def test_child_epics_link_move_and_show_their_parent(target: Target) -> None:
    """The Epic Links API files a child (by its global id) under a parent (by iid); the child shows
    parent_id, parent_iid and a parent link; filing it elsewhere moves it; parent_id on update and create too."""
    top, child, other = _epics(target, 3)
    base = f"/groups/{target.group.id}/epics"
    linked = target.gl.http_post(f"{base}/{top.iid}/epics/{child.id}")
    assert (linked["id"], linked["parent_id"], linked["parent_iid"]) == (child.id, top.id, top.iid)
    fresh = target.group.epics.get(child.iid)
    assert (fresh.parent_id, fresh.parent_iid) == (top.id, top.iid)
    assert fresh._links["parent"].endswith(f"/groups/{target.group.id}/epics/{top.iid}")
    assert [e["iid"] for e in target.gl.http_get(f"{base}/{top.iid}/epics")] == [child.iid]
    target.gl.http_post(f"{base}/{other.iid}/epics/{child.id}")
    assert target.gl.http_get(f"{base}/{top.iid}/epics") == []
    assert target.group.epics.get(child.iid).parent_iid == other.iid
    target.group.epics.update(child.iid, {"parent_id": top.id})
    assert target.group.epics.get(child.iid).parent_iid == top.iid
    born = target.group.epics.create({"title": _name("epic"), "parent_id": other.id})
    assert (born.parent_id, born.parent_iid) == (other.id, other.iid)
    assert target.group.epics.get(top.iid).parent_id is None


def test_child_epic_refusals(target: Target) -> None:
    """An epic under itself, under its parent again or under its descendant is a 409; an unknown
    child or parent a 404; nothing changes."""
    top, middle, bottom = _epics(target, 3)
    base = f"/groups/{target.group.id}/epics"
    target.gl.http_post(f"{base}/{top.iid}/epics/{middle.id}")
    target.gl.http_post(f"{base}/{middle.iid}/epics/{bottom.id}")
    cases = [(top, top, "cannot be added to itself"), (top, middle, "already assigned"), (bottom, top, "already an ancestor")]
    for parent, child, reason in cases:
        refused = _refused(lambda: target.gl.http_post(f"{base}/{parent.iid}/epics/{child.id}"))  # noqa: B023
        assert refused.response_code == 409 and reason in str(refused.error_message)
    assert _refused(lambda: target.gl.http_post(f"{base}/{top.iid}/epics/0")).response_code == 404
    assert _refused(lambda: target.gl.http_post(f"{base}/999999/epics/{top.id}")).response_code == 404
    assert [e["iid"] for e in target.gl.http_get(f"{base}/{top.iid}/epics")] == [middle.iid]
    assert target.group.epics.get(top.iid).parent_id is None


def test_confidential_epics_keep_public_epics_out(target: Target) -> None:
    """A public epic cannot go under a confidential one (409), nor can a parent of a public epic become confidential (400)."""
    secret = target.group.epics.create({"title": _name("epic"), "confidential": True})
    top, public = _epics(target, 2)
    base = f"/groups/{target.group.id}/epics"
    refused = _refused(lambda: target.gl.http_post(f"{base}/{secret.iid}/epics/{public.id}"))
    assert refused.response_code == 409 and "confidential parent epic" in str(refused.error_message)
    target.gl.http_post(f"{base}/{top.iid}/epics/{public.id}")
    with pytest.raises(gitlab.exceptions.GitlabUpdateError) as hidden:
        target.group.epics.update(top.iid, {"confidential": True})
    assert hidden.value.response_code == 400 and "non-confidential child epics" in str(hidden.value.error_message)
    assert target.group.epics.get(top.iid).confidential is False


def test_epic_trees_stop_at_seven_levels(target: Target) -> None:
    """Seven levels of epics are fine; an eighth is refused with a 409 naming the maximum depth."""
    chain = _epics(target, 8)
    base = f"/groups/{target.group.id}/epics"
    for parent, child in zip(chain[:6], chain[1:7], strict=True):
        target.gl.http_post(f"{base}/{parent.iid}/epics/{child.id}")
    refused = _refused(lambda: target.gl.http_post(f"{base}/{chain[6].iid}/epics/{chain[7].id}"))
    assert refused.response_code == 409 and "maximum depth (7)" in str(refused.error_message)
    assert target.group.epics.get(chain[7].iid).parent_id is None


def test_sandbox_refuses_a_bad_parent_on_the_epics_api(target: Target) -> None:
    """parent_id on update gets the Epic Links rules as a 400; an unknown parent is a 404 (GitLab
    ignores it, which no caller should take for success); the 101st child is refused."""
    if target.name == "real":
        pytest.skip("sandbox rules: GitLab answers a refused parent_id on update differently across versions, "
                    "and a real run of the child limit would leave 101 epics behind")  # fmt: skip
    top, child = _epics(target, 2)
    target.group.epics.update(child.iid, {"parent_id": top.id})
    with pytest.raises(gitlab.exceptions.GitlabUpdateError) as cycle:
        target.group.epics.update(top.iid, {"parent_id": child.id})
    assert cycle.value.response_code == 400 and "already an ancestor" in str(cycle.value.error_message)
    with pytest.raises(gitlab.exceptions.GitlabUpdateError) as unknown:
        target.group.epics.update(top.iid, {"parent_id": 1})
    assert unknown.value.response_code == 404
    base = f"/groups/{target.group.id}/epics"
    for extra in _epics(target, 99):
        target.gl.http_post(f"{base}/{top.iid}/epics/{extra.id}")
    [late] = _epics(target, 1)
    refused = _refused(lambda: target.gl.http_post(f"{base}/{top.iid}/epics/{late.id}"))
    assert refused.response_code == 409 and "maximum number of child epics" in str(refused.error_message)


# -- issue links -----------------------------------------------------------------------------


def test_issue_links_create_list_delete_and_refuse_duplicates(target: Target) -> None:
    """A link shows on both issues from each side's view; a repeat either way is a 409."""
    first, second = _issue(target), _issue(target)
    pid = target.project.id
    source, linked = first.links.create(
        {"target_project_id": pid, "target_issue_iid": second.iid, "link_type": "blocks"}
    )
    assert (source.iid, linked.iid) == (first.iid, second.iid)
    [mine] = first.links.list(get_all=True)
    [theirs] = second.links.list(get_all=True)
    assert (mine.iid, mine.link_type) == (second.iid, "blocks")
    assert (theirs.iid, theirs.link_type) == (first.iid, "is_blocked_by")
    assert mine.issue_link_id == theirs.issue_link_id
    for issue, other in ((first, second), (second, first)):
        with pytest.raises(gitlab.exceptions.GitlabCreateError) as duplicate:
            issue.links.create({"target_project_id": pid, "target_issue_iid": other.iid})
        assert duplicate.value.response_code == 409
        assert "already assigned" in str(duplicate.value.error_message)
    first.links.delete(mine.issue_link_id)
    assert first.links.list(get_all=True) == second.links.list(get_all=True) == []


# -- labels and users ------------------------------------------------------------------------


def test_scoped_label_is_created_with_its_colour_and_applies(target: Target) -> None:
    """A ``scope::value`` label keeps its name and colour and can label an issue."""
    name = f"{_name('priority')}::1"
    target.project.labels.create({"name": name, "color": "#d9534f"})
    [label] = [x for x in target.project.labels.list(get_all=True) if x.name == name]
    assert label.color.lower() == "#d9534f"
    assert _issue(target, labels=[name]).labels == [name]


def test_user_lookup_by_username(target: Target) -> None:
    """``users.list(username=)`` finds a known user and returns [] for an unknown one."""
    target.gl.auth()
    me = target.gl.user
    assert me is not None
    [found] = target.gl.users.list(username=me.username, get_all=True)
    assert (found.id, found.username) == (me.id, me.username)
    assert target.gl.users.list(username=_name("nobody"), get_all=True) == []


# -- project webhooks ------------------------------------------------------------------------


def _hook_url(target: Target) -> str:
    # A real GitLab blocks local hook URLs by default; the sandbox accepts only loopback ones.
    host = "https://example.com" if target.name == "real" else "http://127.0.0.1:9"
    return f"{host}/hooks/{uuid.uuid4().hex}"


def test_hooks_create_list_get_update_delete_never_echo_the_token(target: Target) -> None:
    """Hook CRUD works, its switches stick, and no response ever carries its token."""
    url = _hook_url(target)
    hook = target.project.hooks.create({
        "url": url, "token": "s3cret-hook-token", "issues_events": True, "note_events": True,
        "push_events": False,
    })  # fmt: skip
    try:
        assert (hook.url, hook.issues_events, hook.note_events) == (url, True, True)
        assert (hook.push_events, hook.merge_requests_events) == (False, False)
        assert "token" not in hook.attributes
        assert hook.id in [h.id for h in target.project.hooks.list(get_all=True)]
        fetched = target.project.hooks.get(hook.id)
        assert fetched.url == url and "token" not in fetched.attributes
        fetched.note_events = False
        fetched.pipeline_events = True
        fetched.save()
        again = target.project.hooks.get(hook.id)
        assert (again.note_events, again.pipeline_events, again.issues_events) == (
            False, True, True,
        )  # fmt: skip
        assert "s3cret-hook-token" not in json.dumps(again.attributes)
    finally:
        target.project.hooks.delete(hook.id)
    with pytest.raises(gitlab.exceptions.GitlabGetError) as gone:
        target.project.hooks.get(hook.id)
    assert gone.value.response_code == 404


def test_sandbox_refuses_hooks_to_other_hosts(target: Target) -> None:
    """The sandbox only delivers to loopback, so it refuses any other hook URL with a 400."""
    if target.name == "real":
        pytest.skip("a sandbox safety rule; a real GitLab accepts public hook URLs")
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as refused:
        target.project.hooks.create({"url": "https://example.com/hook", "issues_events": True})
    assert refused.value.response_code == 400


class _Receiver:
    """A webhook receiver on 127.0.0.1 that records (headers, payload) and can hold requests."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.answered = 0
        self.release = threading.Event()
        self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), json.loads(body)))
                receiver.release.wait(30)
                self.send_response(200)
                self.end_headers()
                receiver.answered += 1

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{uuid.uuid4().hex}"

    def about(self, iid: int) -> list[tuple[str, dict[str, Any]]]:
        """(X-Gitlab-Event, payload) of the events about issue ``iid`` (others may run too)."""
        return [
            (headers["X-Gitlab-Event"], payload)
            for headers, payload in self.calls
            if (payload.get("issue") or payload.get("object_attributes") or {}).get("iid") == iid
        ]

    def wait_for(self, ok: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            assert time.monotonic() < deadline, f"webhooks not delivered in time: {self.calls}"
            time.sleep(0.05)


@pytest.fixture
def receiver(target: Target) -> Iterator[_Receiver]:
    if target.name == "real":
        pytest.skip(NEEDS_RECEIVER)
    found = _Receiver()
    threading.Thread(target=found.server.serve_forever, daemon=True).start()
    yield found
    found.release.set()
    found.server.shutdown()
    found.server.server_close()


def _hook_to(target: Target, receiver: _Receiver, **events: bool) -> Any:
    return target.project.hooks.create({"url": receiver.url, "token": "tkn-42", **events})


def test_webhooks_deliver_issue_and_note_events(target: Target, receiver: _Receiver) -> None:
    """A new issue and a comment reach the hook as Issue Hook and Note Hook with token and UUID."""
    hook = _hook_to(target, receiver, issues_events=True, note_events=True)
    try:
        issue = _issue(target)
        issue.notes.create({"body": "evaluation passed"})
        receiver.wait_for(lambda: len(receiver.about(issue.iid)) >= 2)
    finally:
        hook.delete()
    (opened_event, opened), (note_event, note) = receiver.about(issue.iid)
    assert (opened_event, note_event) == ("Issue Hook", "Note Hook")
    for headers, _ in receiver.calls:
        assert headers["X-Gitlab-Token"] == "tkn-42"
        assert uuid.UUID(headers["X-Gitlab-Event-UUID"]).version == 4
        assert headers["Content-Type"] == "application/json"
    assert (opened["object_kind"], opened["event_type"]) == ("issue", "issue")
    assert opened["object_attributes"]["action"] == "open"
    assert opened["project"]["id"] == target.project.id and opened["user"]["username"]
    assert opened["changes"]["title"] == {"previous": None, "current": issue.title}
    assert (note["object_kind"], note["event_type"]) == ("note", "note")
    assert note["object_attributes"]["note"] == "evaluation passed"
    assert note["object_attributes"]["noteable_type"] == "Issue"


def test_webhook_update_payload_has_action_and_changes(
    target: Target, receiver: _Receiver
) -> None:
    """Closing an issue with a new label sends action "close" and the label change."""
    issue = _issue(target)
    hook = _hook_to(target, receiver, issues_events=True)
    try:
        target.project.issues.update(issue.iid, {"state_event": "close", "add_labels": "done"})
        receiver.wait_for(lambda: len(receiver.about(issue.iid)) >= 1)
    finally:
        hook.delete()
    [(_, closed)] = receiver.about(issue.iid)
    assert closed["object_attributes"]["action"] == "close"
    assert closed["object_attributes"]["state"] == "closed"
    assert closed["changes"]["state_id"] == {"previous": 1, "current": 2}
    assert [label["title"] for label in closed["changes"]["labels"]["current"]] == ["done"]


def test_confidential_issues_reach_only_confidential_hooks(
    target: Target, receiver: _Receiver
) -> None:
    """As in GitLab, a confidential issue goes to confidential_issues_events hooks only."""
    hook = _hook_to(target, receiver, issues_events=True)
    try:
        skipped = _issue(target, confidential=True)
        public = _issue(target)  # delivered in order: once it is here, the other was skipped
        receiver.wait_for(lambda: bool(receiver.about(public.iid)))
        assert receiver.about(skipped.iid) == []
        hook.issues_events, hook.confidential_issues_events = False, True
        hook.save()
        secret = _issue(target, confidential=True)
        receiver.wait_for(lambda: bool(receiver.about(secret.iid)))
    finally:
        hook.delete()
    [(event, payload)] = receiver.about(secret.iid)
    assert (event, payload["event_type"]) == ("Confidential Issue Hook", "confidential_issue")
    assert receiver.about(public.iid)[0][0] == "Issue Hook"


def test_webhook_delivery_never_blocks_the_api(target: Target, receiver: _Receiver) -> None:
    """An issue is created while the receiver still holds the webhook request unanswered."""
    receiver.release.clear()
    hook = _hook_to(target, receiver, issues_events=True)
    # Shorter than the sandbox's delivery timeout: a request that waited on delivery times out.
    impatient = gitlab.Gitlab(target.gl.url, private_token=target.gl.private_token, timeout=3)
    try:
        issue = impatient.projects.get(target.project.id, lazy=True).issues.create(
            {"title": _name("contract-issue")}
        )
        receiver.wait_for(lambda: bool(receiver.about(issue.iid)))
        assert receiver.answered == 0
    finally:
        receiver.release.set()
        hook.delete()
