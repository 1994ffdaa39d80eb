"""The GitLab REST v4 subset the sandbox serves: projects, groups, users, labels, issues, notes.

Status codes and error bodies mirror GitLab's: Grape parameter errors are ``{"error": ...}``,
model validation errors are ``{"message": {field: [...]}}``, missing objects are
``{"message": "404 <Thing> Not Found"}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gitlab_sandbox import quick_actions
from gitlab_sandbox.gitlab_json import Renderer
from gitlab_sandbox.hooks import issue_event, note_event
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response, paged_json
from gitlab_sandbox.store import Store, now_iso

API = "/api/v4"
PROJECT = rf"{API}/projects/(?P<project>[^/]+)"
ISSUE = rf"{PROJECT}/issues/(?P<iid>\d+)"

BOT_USERNAME = "model-migration-bot"
DEFAULT_LABEL_COLOR = "#6699cc"  # what GitLab gives labels it creates on the fly
_COLOR = re.compile(r"^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|[a-zA-Z]+)$")
_ISSUE_ORDER = (
    "created_at", "updated_at", "priority", "due_date", "relative_position",
    "label_priority", "milestone_due", "popularity", "weight", "title",
)  # fmt: skip
_ISSUE_UPDATE_KEYS = (
    "title", "description", "labels", "add_labels", "remove_labels", "state_event",
    "assignee_id", "assignee_ids", "due_date", "confidential",
)  # fmt: skip


def relabel(current: Iterable[str], add: Iterable[str] = (), remove: Iterable[str] = ()) -> list[str]:
    """GitLab's label arithmetic, as on Premium: a scoped label (``scope::value``) replaces any
    other label of its scope (``priority::1`` takes ``priority::2`` off), then removals apply."""
    labels = list(dict.fromkeys(current))
    for name in add:
        if "::" in name:
            scope = name.rsplit("::", 1)[0]
            labels = [have for have in labels if have == name or "::" not in have or have.rsplit("::", 1)[0] != scope]
        if name not in labels:
            labels.append(name)
    gone = set(remove)
    return sorted(name for name in labels if name not in gone)


class GitLabApi:
    """Request handlers over a ``Store``; the token's user is ``current_username``."""

    def __init__(self, store: Store, current_username: str = BOT_USERNAME) -> None:
        self.store = store
        self.current_username = current_username

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", f"{API}/version", self.version)
        add("GET", f"{API}/user", self.current_user)
        add("GET", f"{API}/users", self.list_users)
        add("GET", rf"{API}/users/(?P<user_id>\d+)", self.get_user)
        add("GET", rf"{API}/groups/(?P<group>[^/]+)", self.get_group)
        add("GET", PROJECT, self.get_project)
        add("GET", f"{PROJECT}/labels", self.list_labels)
        add("POST", f"{PROJECT}/labels", self.create_label)
        add("GET", f"{PROJECT}/issues", self.list_issues)
        add("POST", f"{PROJECT}/issues", self.create_issue)
        add("GET", ISSUE, self.get_issue)
        add("PUT", ISSUE, self.update_issue)
        add("GET", f"{ISSUE}/notes", self.list_notes)
        add("POST", f"{ISSUE}/notes", self.create_note)
        add("GET", rf"{ISSUE}/notes/(?P<note_id>\d+)", self.get_note)

    # -- lookups shared by handlers ----------------------------------------------------------

    def project(self, req: Request) -> dict[str, Any]:
        key = req.match["project"]
        found = (
            self.store.find("projects", id=int(key))
            if key.isdigit()
            else self.store.find("projects", path_with_namespace=key)
        )
        if found is None:
            raise ApiError.not_found("Project")
        return found

    def issue(self, req: Request, project: dict[str, Any]) -> dict[str, Any]:
        found = self.store.find("issues", project_id=project["id"], iid=int(req.match["iid"]))
        if found is None:
            raise ApiError.not_found("Issue")
        return found

    def me(self) -> dict[str, Any]:
        user = self.store.find("users", username=self.current_username)
        assert user is not None, "the token user is seeded at start"
        return user

    # -- instance, users, groups, projects ---------------------------------------------------

    def version(self, req: Request) -> Response:
        return json_response({"version": "17.11.0-sandbox", "revision": "sandbox"})

    def current_user(self, req: Request) -> Response:
        return json_response(Renderer(self.store, req.base_url).current_user(self.me()))

    def list_users(self, req: Request) -> Response:
        username = req.get("username")
        users = self.store.select("users", **({"username": username} if username else {}))
        return paged_json(req, users, Renderer(self.store, req.base_url).user)

    def get_user(self, req: Request) -> Response:
        user = self.store.find("users", id=int(req.match["user_id"]))
        if user is None:
            raise ApiError.not_found("User")
        return json_response(Renderer(self.store, req.base_url).user(user))

    def get_group(self, req: Request) -> Response:
        key = req.match["group"]
        group = (
            self.store.find("groups", id=int(key))
            if key.isdigit()
            else self.store.find("groups", full_path=key)
        )
        if group is None:
            raise ApiError.not_found("Group")
        return json_response(Renderer(self.store, req.base_url).group(group))

    def get_project(self, req: Request) -> Response:
        return json_response(Renderer(self.store, req.base_url).project(self.project(req)))

    # -- labels ------------------------------------------------------------------------------

    def list_labels(self, req: Request) -> Response:
        labels = self.store.select("labels", project_id=self.project(req)["id"])
        search = str(req.get("search") or "")
        if search:  # GitLab's fuzzy match over title and description, as for issues
            labels = [x for x in labels if _search_matches(search, [x["name"], x.get("description") or ""])]
        labels.sort(key=lambda label: label["name"].lower())
        return paged_json(req, labels, Renderer(self.store, req.base_url).label)

    def create_label(self, req: Request) -> Response:
        project = self.project(req)
        for required in ("name", "color"):
            if not req.has(required):
                raise ApiError.missing(required)
        name, color = str(req.get("name")).strip(), str(req.get("color")).strip()
        if not name:
            raise ApiError.validation({"title": ["can't be blank"]})
        if not _COLOR.match(color):
            raise ApiError.validation({"color": ["must be a valid color code"]})
        with self.store.lock:
            if self.store.find("labels", project_id=project["id"], name=name):
                raise ApiError(409, {"message": "Label already exists"})
            data = {"name": name, "color": color, "description": req.get("description") or ""}
            label = self.store.insert("labels", data, project_id=project["id"], name=name)
        return json_response(Renderer(self.store, req.base_url).label(label), 201)

    def ensure_labels(self, project: dict[str, Any], names: list[str]) -> list[str]:
        """GitLab creates the labels that the REST API is told to set (an issue's or merge
        request's ``labels``/``add_labels``) but the project lacks. Quick actions never do."""
        for name in names:
            data = {"name": name, "color": DEFAULT_LABEL_COLOR, "description": ""}
            self.store.insert_if_absent("labels", data, project_id=project["id"], name=name)
        return sorted(set(names))

    # -- issues ------------------------------------------------------------------------------

    def list_issues(self, req: Request) -> Response:
        project = self.project(req)
        state = req.get_choice("state", ("opened", "closed", "all"), "all")
        order_by = req.get_choice("order_by", _ISSUE_ORDER, "created_at")
        descending = req.get_choice("sort", ("asc", "desc"), "desc") == "desc"
        labels = req.get_list("labels")
        search = str(req.get("search") or "")
        columns = _search_columns(req)
        assignee_names = {n.lower() for n in req.get_list("assignee_username") or []}
        assignee_id = req.get("assignee_id")
        iids = set(req.get_int_list("iids") or [])

        def keep(issue: dict[str, Any]) -> bool:
            if state != "all" and issue["state"] != state:
                return False
            if iids and issue["iid"] not in iids:
                return False
            if labels and not _labels_match(labels, issue["labels"]):
                return False
            if search and not _search_matches(search, [issue.get(c) or "" for c in columns]):
                return False
            if assignee_id is not None and not _assignee_id_matches(
                str(assignee_id), issue["assignee_ids"]
            ):
                return False
            if assignee_names:
                users = (self.store.find("users", id=i) for i in issue["assignee_ids"])
                if not any(u and u["username"].lower() in assignee_names for u in users):
                    return False
            return True

        rows = self.store.select_containing("issues", _prefilter(search), tuple(columns), project_id=project["id"])
        issues = [i for i in rows if keep(i)]
        field = order_by if order_by in ("updated_at", "due_date", "title") else "created_at"
        present = [i for i in issues if i.get(field) is not None]
        missing = [i for i in issues if i.get(field) is None]  # GitLab sorts nulls last
        present.sort(key=lambda i: (i[field], i["id"]), reverse=descending)
        render = Renderer(self.store, req.base_url)
        return paged_json(req, present + missing, lambda issue: render.issue(project, issue))

    def get_issue(self, req: Request) -> Response:
        project = self.project(req)
        issue = self.issue(req, project)
        return json_response(Renderer(self.store, req.base_url).issue(project, issue))

    def create_issue(self, req: Request) -> Response:
        project = self.project(req)
        if not req.has("title"):
            raise ApiError.missing("title")
        title = str(req.get("title") or "")
        description = req.get("description")
        _validate_issue_text(title, description)
        due_date = req.get_date("due_date")
        confidential = bool(req.get_bool("confidential"))
        assignee_ids = self._assignee_ids(req) or []
        wanted = req.get_list("labels") or []
        # Every named label is created, even one that a later label of its scope displaces.
        self.ensure_labels(project, wanted)
        now = now_iso()
        data = {
            "project_id": project["id"],
            "title": title,
            "description": None if description is None else str(description),
            "state": "opened",
            "labels": relabel((), wanted),
            "assignee_ids": assignee_ids,
            "author_id": self.me()["id"],
            "due_date": due_date.isoformat() if due_date else None,
            "confidential": confidential,
            "created_at": now,
            "updated_at": now,
            "closed_at": None,
            "closed_by_id": None,
        }
        issue = self.store.insert_issue(project["id"], data)
        render = Renderer(self.store, req.base_url)
        if self.store.events.wanted(project["id"]):
            self.store.events.emit("issue", project["id"], issue_event(render, project, issue, self.me()))
        return json_response(Renderer(self.store, req.base_url).issue(project, issue), 201)

    def update_issue(self, req: Request) -> Response:
        project = self.project(req)
        state_event = check_update(req, _ISSUE_UPDATE_KEYS)
        with self.store.lock:
            previous = self.issue(req, project)
            issue = dict(previous)
            if req.has("title"):
                issue["title"] = str(req.get("title") or "")
            if req.has("description"):
                issue["description"] = str(req.get("description") or "")
            _validate_issue_text(issue["title"], issue["description"])
            given, added = req.get_list("labels") or [], req.get_list("add_labels") or []
            self.ensure_labels(project, given + added)
            labels = relabel((), given) if req.has("labels") else issue["labels"]
            issue["labels"] = relabel(labels, added, req.get_list("remove_labels") or [])
            if req.has("due_date"):
                due_date = req.get_date("due_date")
                issue["due_date"] = due_date.isoformat() if due_date else None
            if req.has("confidential"):
                issue["confidential"] = bool(req.get_bool("confidential"))
            assignee_ids = self._assignee_ids(req)
            if assignee_ids is not None:
                issue["assignee_ids"] = assignee_ids
            now = now_iso()
            if state_event == "close" and issue["state"] != "closed":
                issue.update(state="closed", closed_at=now, closed_by_id=self.me()["id"])
            elif state_event == "reopen" and issue["state"] != "opened":
                issue.update(state="opened", closed_at=None, closed_by_id=None)
            issue["updated_at"] = now
            self.store.update("issues", issue)
        render = Renderer(self.store, req.base_url)
        if self.store.events.wanted(project["id"]):
            payload = issue_event(render, project, issue, self.me(), previous=previous)
            self.store.events.emit("issue", project["id"], payload)
        return json_response(Renderer(self.store, req.base_url).issue(project, issue))

    def _assignee_ids(self, req: Request) -> list[int] | None:
        """Known users only, in order; ``[]``, ``0`` or ``[0]`` unassign."""
        if req.has("assignee_ids"):
            wanted = req.get_int_list("assignee_ids") or []
        elif req.has("assignee_id"):
            wanted = [req.get_int("assignee_id") or 0]
        else:
            return None
        known = [i for i in wanted if i and self.store.find("users", id=i)]
        return list(dict.fromkeys(known))

    # -- notes -------------------------------------------------------------------------------

    def list_notes(self, req: Request) -> Response:
        project = self.project(req)
        issue = self.issue(req, project)
        order_by = req.get_choice("order_by", ("created_at", "updated_at"), "created_at")
        descending = req.get_choice("sort", ("asc", "desc"), "desc") == "desc"
        notes = self.store.select("notes", project_id=project["id"], issue_iid=issue["iid"])
        notes.sort(key=lambda note: (note[order_by], note["id"]), reverse=descending)
        render = Renderer(self.store, req.base_url)
        return paged_json(req, notes, lambda note: render.note(issue, note))

    def create_note(self, req: Request) -> Response:
        project = self.project(req)
        issue = self.issue(req, project)
        if not req.has("body"):
            raise ApiError.missing("body")
        body = str(req.get("body") or "")
        if not body.strip():
            raise ApiError.validation({"note": ["can't be blank"]})
        now = now_iso()
        with self.store.lock:  # a note touches its issue, as in GitLab
            current = self.store.find("issues", id=issue["id"]) or issue
            body, commands = quick_actions.parse(body, self._quick_action_target(project, current))
            current = self._apply_commands(current, commands, now)
            self.store.update("issues", {**current, "updated_at": now})
            if not body.strip():
                return json_response({"commands_changes": {}, "summary": commands.summary()}, 202)
            data = {"body": body, "author_id": self.me()["id"], "created_at": now, "updated_at": now}
            note = self.store.insert("notes", data, project_id=project["id"], issue_iid=issue["iid"])
        render = Renderer(self.store, req.base_url)
        if self.store.events.wanted(project["id"]):
            self.store.events.emit("note", project["id"], note_event(render, project, current, note, self.me()))
        return json_response(Renderer(self.store, req.base_url).note(issue, note), 201)

    def _quick_action_target(self, project: dict[str, Any], issue: dict[str, Any]) -> quick_actions.Target:
        return quick_actions.Target(
            project_labels={label["name"] for label in self.store.select("labels", project_id=project["id"])},
            labels=issue["labels"], state=issue["state"], due_date=issue["due_date"],
        )  # fmt: skip

    def _apply_commands(self, issue: dict[str, Any], commands: quick_actions.Commands, now: str) -> dict[str, Any]:
        """The issue after the note's commands; their labels exist already (``parse`` kept only those)."""
        if not commands.any:
            return issue
        issue = dict(issue)
        current = () if commands.remove_all_labels else issue["labels"]
        issue["labels"] = relabel(current, commands.add_labels, commands.remove_labels)
        if commands.due_date or commands.remove_due_date:
            issue["due_date"] = commands.due_date.isoformat() if commands.due_date else None
        if commands.state_event == "close" and issue["state"] != "closed":
            issue.update(state="closed", closed_at=now, closed_by_id=self.me()["id"])
        elif commands.state_event == "reopen" and issue["state"] != "opened":
            issue.update(state="opened", closed_at=None, closed_by_id=None)
        return issue

    def get_note(self, req: Request) -> Response:
        project = self.project(req)
        issue = self.issue(req, project)
        note = self.store.find(
            "notes", id=int(req.match["note_id"]), project_id=project["id"], issue_iid=issue["iid"]
        )
        if note is None:
            raise ApiError.not_found("Note")
        return json_response(Renderer(self.store, req.base_url).note(issue, note))


def check_update(req: Request, keys: Iterable[str]) -> str | None:
    """GitLab's checks before any update (issue, epic, merge request): at least one of ``keys``
    given, and a ``state_event`` GitLab knows. Returns the state event."""
    keys = list(keys)
    if not any(req.has(key) for key in keys):
        raise ApiError(400, {"error": f"{', '.join(keys)} are missing, at least one parameter must be provided"})
    state_event = req.get("state_event")
    if state_event is not None and state_event not in ("close", "reopen"):
        raise ApiError.not_valid_value("state_event")
    return state_event


def _validate_issue_text(title: str, description: Any) -> None:
    if not title.strip():
        raise ApiError.validation({"title": ["can't be blank"]})
    if len(title) > 255:
        raise ApiError.validation({"title": ["is too long (maximum is 255 characters)"]})
    if description is not None and len(str(description)) > 1_048_576:
        raise ApiError.validation(
            {"description": ["is too long (maximum is 1048576 characters)"]}
        )


def _search_columns(req: Request) -> list[str]:
    wanted = req.get_list("in") or ["title", "description"]
    if any(column not in ("title", "description") for column in wanted):
        raise ApiError.not_valid_value("in")
    return wanted


def _prefilter(query: str) -> list[str]:
    """Search terms that appear verbatim in any match: plain ASCII terms, which neither JSON
    nor SQLite's JSON functions change. Others are left to ``_search_matches``."""
    terms = [t.strip('"') for t in re.findall(r'"[^"]+"|\S+', " ".join(query.split()))]
    return [t for t in terms if len(t) >= 3 and t.isascii() and t.isprintable() and '"' not in t and "\\" not in t]


def _search_matches(query: str, texts: list[str]) -> bool:
    """GitLab's fuzzy match: every term of 3+ characters (quoted phrases kept whole) appears,
    case-insensitively, in one column; a query of only short terms must equal the column."""
    query = " ".join(query.split())
    terms = [t.strip('"').lower() for t in re.findall(r'"[^"]+"|\S+', query)]
    terms = [t for t in terms if len(t) >= 3]
    for text in texts:
        lowered = text.lower()
        if terms and all(term in lowered for term in terms):
            return True
        if not terms and lowered == query.lower():
            return True
    return False


def _labels_match(wanted: list[str], labels: list[str]) -> bool:
    if wanted == ["None"]:
        return not labels
    if wanted == ["Any"]:
        return bool(labels)
    return set(wanted) <= set(labels)


def _assignee_id_matches(wanted: str, assignee_ids: list[int]) -> bool:
    if wanted.lower() == "none":
        return not assignee_ids
    if wanted.lower() == "any":
        return bool(assignee_ids)
    try:
        return int(wanted) in assignee_ids
    except ValueError:
        raise ApiError.invalid("assignee_id") from None
