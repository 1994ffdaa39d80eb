"""Project webhooks: GitLab's hooks API, GitLab's issue and note event payloads, and delivery.

Modules announce changes on ``store.events``; this module posts them to every hook of the
project that enables that kind of event. Delivery runs on a background thread fed by a queue,
so an API request never waits for a receiver and events arrive in the order they happened.
The sandbox is a test tool: hooks may only point at loopback addresses. As in GitLab, a hook's
token is write-only, and events of confidential issues go only to hooks that enable the
``confidential_*_events``.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import logging
import queue
import ssl
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

from gitlab_sandbox.gitlab_json import Renderer
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response, paged_json
from gitlab_sandbox.store import ID_BASES, Store, now_iso

log = logging.getLogger(__name__)

ID_BASES.setdefault("hooks", 61_000_000)

PROJECT = r"/api/v4/projects/(?P<project>[^/]+)"
HOOK = rf"{PROJECT}/hooks/(?P<hook_id>\d+)"
#: Event switches GitLab accepts, with GitLab's defaults (only push events are on by default).
FLAGS: dict[str, bool] = {
    "push_events": True, "issues_events": False, "confidential_issues_events": False,
    "merge_requests_events": False, "tag_push_events": False, "note_events": False,
    "confidential_note_events": False, "job_events": False, "pipeline_events": False,
    "wiki_page_events": False, "deployment_events": False, "releases_events": False,
    "feature_flag_events": False, "milestone_events": False,
    "resource_access_token_events": False, "enable_ssl_verification": True,
}  # fmt: skip
#: ``event_type`` (or ``object_kind``) → the switch that enables it and its ``X-Gitlab-Event``.
ROUTES: dict[str, tuple[str, str]] = {
    "issue": ("issues_events", "Issue Hook"),
    "confidential_issue": ("confidential_issues_events", "Confidential Issue Hook"),
    "note": ("note_events", "Note Hook"),
    "confidential_note": ("confidential_note_events", "Confidential Note Hook"),
    "merge_request": ("merge_requests_events", "Merge Request Hook"),
    "pipeline": ("pipeline_events", "Pipeline Hook"),
    "push": ("push_events", "Push Hook"),
}
DELIVERY_TIMEOUT = 5.0  # seconds; GitLab itself gives up after 10
_IDLE_EXIT = 5.0  # the delivery thread ends when idle this long, and restarts on demand


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class GitLabHooks:
    """``/projects/:id/hooks`` and the delivery of events to them."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS hooks (
        id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, data TEXT NOT NULL);
    """

    def __init__(self, store: Store) -> None:
        # Imported here: gitlab_api imports this module's payload builders.
        from gitlab_sandbox.gitlab_api import GitLabApi

        self.store = store
        self.api = GitLabApi(store)
        self._queue: queue.Queue[tuple[str, str, str, bytes, bool]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        store.events.subscribe(self.on_event)
        store.events.interested(lambda project_id: store.count("hooks", project_id=project_id) > 0)

    def register(self, router: Router) -> None:
        router.add("GET", f"{PROJECT}/hooks", self.list_hooks)
        router.add("POST", f"{PROJECT}/hooks", self.create_hook)
        router.add("GET", HOOK, self.get_hook)
        router.add("PUT", HOOK, self.update_hook)
        router.add("DELETE", HOOK, self.delete_hook)

    # -- API ---------------------------------------------------------------------------------

    def list_hooks(self, req: Request) -> Response:
        hooks = self.store.select("hooks", project_id=self.api.project(req)["id"])
        return paged_json(req, hooks, _render)

    def get_hook(self, req: Request) -> Response:
        return json_response(_render(self._hook(req)))

    def create_hook(self, req: Request) -> Response:
        project = self.api.project(req)
        if not req.has("url"):
            raise ApiError.missing("url")
        data: dict[str, Any] = {"project_id": project["id"], "created_at": now_iso(), **FLAGS}
        data.update(url="", token="", name="", description="")
        self._apply(req, data)
        hook = self.store.insert("hooks", data, project_id=project["id"])
        return json_response(_render(hook), 201)

    def update_hook(self, req: Request) -> Response:
        with self.store.lock:
            hook = dict(self._hook(req))
            self._apply(req, hook)
            self.store.update("hooks", hook)
        return json_response(_render(hook))

    def delete_hook(self, req: Request) -> Response:
        hook_id = self._hook(req)["id"]
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM hooks WHERE id = ?", (hook_id,))
        return Response(204, b"")

    def _hook(self, req: Request) -> dict[str, Any]:
        project = self.api.project(req)
        hook = self.store.find("hooks", id=int(req.match["hook_id"]), project_id=project["id"])
        if hook is None:
            raise ApiError.not_found("Hook")
        return hook

    def _apply(self, req: Request, hook: dict[str, Any]) -> None:
        if req.has("url"):
            url = str(req.get("url") or "").strip()
            if not is_loopback(url):
                problem = "is blocked: the sandbox delivers only to http(s) loopback addresses"
                raise ApiError.validation({"url": [problem]})
            hook["url"] = url
        for name in ("token", "name", "description"):
            if req.has(name):
                hook[name] = str(req.get(name) or "")
        for flag in FLAGS:
            if req.has(flag):
                hook[flag] = bool(req.get_bool(flag))

    # -- delivery ----------------------------------------------------------------------------

    def on_event(self, kind: str, project_id: int, payload: dict[str, Any]) -> None:
        """Runs inside the API request: look the hooks up, queue the posts, return."""
        route = ROUTES.get(str(payload.get("event_type") or kind)) or ROUTES.get(kind)
        if route is None:
            return
        flag, event = route
        body = json.dumps(payload).encode()
        for hook in self.store.select("hooks", project_id=project_id):
            if hook.get(flag):
                verify = bool(hook.get("enable_ssl_verification", True))
                self._enqueue((hook["url"], hook.get("token") or "", event, body, verify))

    def _enqueue(self, delivery: tuple[str, str, str, bytes, bool]) -> None:
        with self._worker_lock:
            self._queue.put(delivery)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._deliver_all, name="gitlab-sandbox-webhooks", daemon=True
                )
                self._worker.start()

    def _deliver_all(self) -> None:
        while True:
            try:
                delivery = self._queue.get(timeout=_IDLE_EXIT)
            except queue.Empty:
                with self._worker_lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            deliver(*delivery)


def deliver(url: str, token: str, event: str, body: bytes, verify: bool = True) -> int | None:
    """POST one event; the HTTP status, or None when it could not be delivered (logged).

    http.client rather than urllib: no proxy from the environment, and GitLab's header case."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}"  # no query
    if not is_loopback(url) or parts.hostname is None:
        log.warning("webhook %s to %s refused: not a loopback address", event, shown)
        return None
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.11.0-sandbox",
        "X-Gitlab-Event": event,
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
    }
    if token:
        headers["X-Gitlab-Token"] = token
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if not verify:  # the hook's enable_ssl_verification, e.g. a self-signed receiver
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=DELIVERY_TIMEOUT, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DELIVERY_TIMEOUT)
    target = parts.path or "/"
    target += f"?{parts.query}" if parts.query else ""
    try:
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status >= 400:
            log.warning("webhook %s to %s answered %d", event, shown, response.status)
        return response.status
    except (OSError, http.client.HTTPException) as exc:  # a broken receiver is not our failure
        log.warning("webhook %s to %s failed: %s", event, shown, type(exc).__name__)
        return None
    finally:
        conn.close()


def _render(hook: dict[str, Any]) -> dict[str, Any]:
    """GitLab's hook JSON. The token is write-only: GitLab never returns it."""
    shown = {k: hook[k] for k in ("id", "url", "name", "description", "project_id")}
    return {
        **shown, **{flag: hook[flag] for flag in FLAGS}, "push_events_branch_filter": "",
        "repository_update_events": False, "alert_status": "executable",
        "disabled_until": None, "url_variables": [], "custom_headers": [],
        "created_at": hook["created_at"],
    }  # fmt: skip


# -- event payloads (emitted by the issue and note handlers) ---------------------------------


def issue_event(
    render: Renderer,
    project: dict[str, Any],
    issue: dict[str, Any],
    user: dict[str, Any],
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """GitLab's issue hook payload; ``previous`` is the issue before an update."""
    current = _issue_attributes(render, project, issue)
    if previous is None:
        action = "open"
        before: dict[str, Any] = {}
    else:
        before = _issue_attributes(render, project, previous)
        closed, was_closed = issue["state"] == "closed", previous["state"] == "closed"
        action = "update" if closed == was_closed else ("close" if closed else "reopen")
        current["updated_by_id"] = user["id"]
    watched = ("title", "description", "labels", "due_date", "confidential", "assignee_ids",
               "state_id", "closed_at", "updated_at", "updated_by_id")  # fmt: skip
    changes = {
        name: {"previous": before.get(name), "current": current.get(name)}
        for name in watched  # a new issue lists only what was set
        if before.get(name) != current.get(name) and (previous or current.get(name))
    }
    if previous and previous["updated_at"] != issue["updated_at"]:  # hook times drop the ms
        changes["updated_at"] = {"previous": before["updated_at"], "current": current["updated_at"]}
    event_type = "confidential_issue" if issue["confidential"] else "issue"
    return {
        "object_kind": "issue", "event_type": event_type, "user": _user(render, user),
        "project": _project(render, project), "object_attributes": {**current, "action": action},
        "repository": _repository(render, project), "labels": current["labels"],
        "assignees": [_user(render, u) for u in _assignees(render, issue)],
        "changes": changes,
    }  # fmt: skip


def note_event(
    render: Renderer,
    project: dict[str, Any],
    issue: dict[str, Any],
    note: dict[str, Any],
    user: dict[str, Any],
) -> dict[str, Any]:
    """GitLab's note hook payload for a new comment on an issue."""
    issue_url = render.issue(project, issue)["web_url"]
    discussion = hashlib.sha1(f"note-{note['id']}".encode()).hexdigest()
    attributes = {
        "id": note["id"], "note": note["body"], "description": note["body"],
        "noteable_type": "Issue", "noteable_id": issue["id"], "author_id": note["author_id"],
        "project_id": project["id"], "created_at": _hook_time(note["created_at"]),
        "updated_at": _hook_time(note["updated_at"]), "updated_by_id": None,
        "system": bool(note.get("system")), "type": None, "attachment": None, "line_code": None,
        "commit_id": None, "st_diff": None, "position": None, "original_position": None,
        "discussion_id": discussion, "internal": False, "confidential": False,
        "action": "create", "url": f"{issue_url}#note_{note['id']}",
    }  # fmt: skip
    # GitLab sends notes on confidential issues only to confidential note hooks.
    event_type = "confidential_note" if issue["confidential"] else "note"
    return {
        "object_kind": "note", "event_type": event_type, "user": _user(render, user),
        "project_id": project["id"], "project": _project(render, project),
        "object_attributes": attributes, "repository": _repository(render, project),
        "issue": _issue_attributes(render, project, issue),
    }  # fmt: skip


def _issue_attributes(
    render: Renderer, project: dict[str, Any], issue: dict[str, Any]
) -> dict[str, Any]:
    labels = [render.store.find("labels", project_id=project["id"], name=n) for n in issue["labels"]]
    assignee_ids = list(issue["assignee_ids"])
    return {
        "id": issue["id"], "iid": issue["iid"], "project_id": project["id"],
        "title": issue["title"], "description": issue["description"],
        "state": issue["state"], "state_id": 2 if issue["state"] == "closed" else 1,
        "author_id": issue["author_id"], "assignee_ids": assignee_ids,
        "assignee_id": assignee_ids[0] if assignee_ids else None,
        "created_at": _hook_time(issue["created_at"]),
        "updated_at": _hook_time(issue["updated_at"]), "updated_by_id": None,
        "closed_at": _hook_time(issue["closed_at"]), "due_date": issue["due_date"],
        "confidential": issue["confidential"], "discussion_locked": None, "milestone_id": None,
        "moved_to_id": None, "duplicated_to_id": None, "relative_position": None,
        "last_edited_at": None, "last_edited_by_id": None, "time_estimate": 0,
        "total_time_spent": 0, "time_change": 0, "human_time_estimate": None,
        "human_total_time_spent": None, "human_time_change": None, "weight": None,
        "type": "Issue", "severity": "unknown",
        "url": render.issue(project, issue)["web_url"],
        "labels": [_label(project, label) for label in labels if label],
    }  # fmt: skip


def _label(project: dict[str, Any], label: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": label["id"], "title": label["name"], "color": label["color"],
        "project_id": project["id"], "created_at": None, "updated_at": None, "template": False,
        "description": label.get("description") or None, "type": "ProjectLabel",
        "group_id": None,
    }  # fmt: skip


def _assignees(render: Renderer, issue: dict[str, Any]) -> list[dict[str, Any]]:
    found = (render.store.find("users", id=user_id) for user_id in issue["assignee_ids"])
    return [user for user in found if user]


def _user(render: Renderer, user: dict[str, Any]) -> dict[str, Any]:
    shown = render.user(user) or {}
    keys = ("id", "name", "username", "avatar_url")
    return {**{k: shown.get(k) for k in keys}, "email": "[REDACTED]"}


def _project(render: Renderer, project: dict[str, Any]) -> dict[str, Any]:
    full = render.project(project)
    host = urlsplit(render.base).netloc
    ssh = f"git@{host}:{full['path_with_namespace']}.git"
    return {
        "id": full["id"], "name": full["name"], "description": full["description"],
        "web_url": full["web_url"], "avatar_url": None, "git_ssh_url": ssh,
        "git_http_url": full["http_url_to_repo"], "namespace": full["namespace"]["name"],
        "visibility_level": 20, "path_with_namespace": full["path_with_namespace"],
        "default_branch": full["default_branch"], "ci_config_path": None,
        "homepage": full["web_url"], "url": ssh, "ssh_url": ssh,
        "http_url": full["http_url_to_repo"],
    }  # fmt: skip


def _repository(render: Renderer, project: dict[str, Any]) -> dict[str, Any]:
    full = render.project(project)
    return {
        "name": full["name"], "url": full["http_url_to_repo"],
        "description": full["description"], "homepage": full["web_url"],
    }  # fmt: skip


def _hook_time(iso: str | None) -> str | None:
    """Hook payloads use ``2025-01-21 09:30:00 UTC``, not the REST API's ISO 8601."""
    return f"{iso[:10]} {iso[11:19]} UTC" if iso else None
