"""Group epics, their notes and child epics, epic issues and issue links, in GitLab REST v4's shapes.

An issue belongs to at most one epic: adding it to another epic moves it, adding it to the same
epic again is a 409, as in GitLab. An issue link is stored once per pair of issues, and
``is_blocked_by`` is stored as the reverse ``blocks``, so each side lists the link from its own
point of view. Epic labels are plain names: the sandbox has no group labels.

Epic notes are addressed by the epic's global id, not its iid, as in GitLab; quick actions in
them are not carried out, and stay in the note as text. A parent epic may be in any group (as
since GitLab 15.10); GitLab's refusals are kept: the epic itself, its current parent again, one
of its descendants, a tree deeper than 7 levels, a parent with 100 children already, a public
epic under a confidential one (nor does a confidential epic keep public child epics or issues).
"""

from __future__ import annotations

import json
from typing import Any

from gitlab_sandbox.gitlab_api import API, ISSUE, GitLabApi, _labels_match, _search_matches, _validate_issue_text, check_update, relabel
from gitlab_sandbox.gitlab_json import Renderer
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response, paged_json
from gitlab_sandbox.store import ID_BASES, Store, now_iso

# Ids that look like no other kind of id, so that passing an iid or an issue id fails loudly.
ID_BASES.setdefault("epics", 5_300_000)
ID_BASES.setdefault("epic_issues", 8_100_000)
ID_BASES.setdefault("issue_links", 4_700_000)
ID_BASES.setdefault("epic_notes", 2_700_000_000)  # GitLab's notes share one sequence: well above issue notes'

GROUP = rf"{API}/groups/(?P<group>[^/]+)"
EPIC = rf"{GROUP}/(?:-/)?epics/(?P<epic_iid>\d+)"
EPIC_NOTES = rf"{GROUP}/epics/(?P<epic_id>\d+)/notes"  # the epic's global id
_EPIC_UPDATE_KEYS = (
    "add_labels", "confidential", "description", "due_date_fixed", "due_date_is_fixed", "labels",
    "parent_id", "remove_labels", "start_date_fixed", "start_date_is_fixed", "state_event", "title",
)  # fmt: skip
MAX_DEPTH, MAX_CHILDREN, MAX_NOTE = 7, 100, 1_000_000
_LINK_TYPES = ("relates_to", "blocks", "is_blocked_by")
_ALREADY_ASSIGNED = {"message": "Issue(s) already assigned"}


def delete_row(store: Store, table: str, row_id: int) -> None:
    with store.transaction() as conn:
        conn.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))  # table names come from code


class GitLabEpics:
    """Epics of a group, the issues in them, and links between issues."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS epics (
        id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL, iid INTEGER NOT NULL,
        data TEXT NOT NULL, UNIQUE (group_id, iid));
    CREATE TABLE IF NOT EXISTS epic_issues (
        id INTEGER PRIMARY KEY, epic_id INTEGER NOT NULL, issue_id INTEGER NOT NULL UNIQUE,
        data TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS issue_links (
        id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL, target_id INTEGER NOT NULL,
        data TEXT NOT NULL, UNIQUE (source_id, target_id));
    CREATE TABLE IF NOT EXISTS epic_notes (
        id INTEGER PRIMARY KEY, epic_id INTEGER NOT NULL, data TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS epic_notes_by_epic ON epic_notes (epic_id);
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.api = GitLabApi(store)  # for its project, issue and user lookups

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", f"{GROUP}/(?:-/)?epics", self.list_epics)
        add("POST", f"{GROUP}/(?:-/)?epics", self.create_epic)
        add("GET", EPIC, self.get_epic)
        add("PUT", EPIC, self.update_epic)
        add("GET", f"{EPIC}/epics", self.list_child_epics)
        add("POST", rf"{EPIC}/epics/(?P<child_epic_id>\d+)", self.assign_child_epic)
        add("GET", EPIC_NOTES, self.list_epic_notes)
        add("POST", EPIC_NOTES, self.create_epic_note)
        add("GET", rf"{EPIC_NOTES}/(?P<note_id>\d+)", self.get_epic_note)
        add("GET", f"{EPIC}/issues", self.list_epic_issues)
        add("POST", f"{EPIC}/issues", self.add_epic_issue)  # issue_id in the body
        add("POST", rf"{EPIC}/issues/(?P<issue_id>\d+)", self.add_epic_issue)  # python-gitlab's
        add("DELETE", rf"{EPIC}/issues/(?P<epic_issue_id>\d+)", self.remove_epic_issue)
        add("GET", f"{ISSUE}/links", self.list_links)
        add("POST", f"{ISSUE}/links", self.create_link)
        add("GET", rf"{ISSUE}/links/(?P<link_id>\d+)", self.get_link)
        add("DELETE", rf"{ISSUE}/links/(?P<link_id>\d+)", self.delete_link)

    # -- lookups and rendering ---------------------------------------------------------------

    def group(self, req: Request) -> dict[str, Any]:
        key = req.match["group"]
        column = {"id": int(key)} if key.isdigit() else {"full_path": key}
        found = self.store.find("groups", **column)
        if found is None:
            raise ApiError.not_found("Group")
        return found

    def epic(self, req: Request, group: dict[str, Any]) -> dict[str, Any]:
        found = self.store.find("epics", group_id=group["id"], iid=int(req.match["epic_iid"]))
        if found is None:
            raise ApiError.not_found("Epic")
        return found

    def render_epic(
        self, req: Request, group: dict[str, Any], epic: dict[str, Any]
    ) -> dict[str, Any]:
        iid, path = epic["iid"], group["full_path"]
        api = f"{req.base_url}{API}/groups/{group['id']}"
        parent = self.store.find("epics", id=epic["parent_id"]) if epic.get("parent_id") else None
        due = epic["due_date_fixed"] if epic["due_date_is_fixed"] else None
        start = epic["start_date_fixed"] if epic["start_date_is_fixed"] else None
        return {
            "id": epic["id"], "iid": iid, "group_id": group["id"],
            "parent_id": parent and parent["id"], "parent_iid": parent and parent["iid"],
            "title": epic["title"], "description": epic["description"], "state": epic["state"],
            "confidential": epic["confidential"],
            "web_url": f"{req.base_url}/groups/{path}/-/epics/{iid}",
            "reference": f"&{iid}",
            "references": {"short": f"&{iid}", "relative": f"&{iid}", "full": f"{path}&{iid}"},
            "author": Renderer(self.store, req.base_url).user_by_id(epic["author_id"]),
            "start_date": start, "start_date_is_fixed": epic["start_date_is_fixed"],
            "start_date_fixed": epic["start_date_fixed"], "start_date_from_milestones": None,
            "start_date_from_inherited_source": None,
            "end_date": due, "due_date": due, "due_date_is_fixed": epic["due_date_is_fixed"],
            "due_date_fixed": epic["due_date_fixed"], "due_date_from_milestones": None,
            "due_date_from_inherited_source": None,
            "created_at": epic["created_at"], "updated_at": epic["updated_at"],
            "closed_at": epic["closed_at"], "labels": epic["labels"],
            "upvotes": 0, "downvotes": 0, "color": "#1068bf",
            "_links": {
                "self": f"{api}/epics/{iid}", "epic_issues": f"{api}/epics/{iid}/issues",
                "group": api,
                "parent": parent and f"{req.base_url}{API}/groups/{parent['group_id']}/epics/{parent['iid']}",
            },
        }  # fmt: skip

    def render_issue(self, req: Request, issue: dict[str, Any]) -> dict[str, Any]:
        project = self.store.find("projects", id=issue["project_id"])
        assert project is not None, "issues belong to a stored project"
        return Renderer(self.store, req.base_url).issue(project, issue)

    # -- epics -------------------------------------------------------------------------------

    def list_epics(self, req: Request) -> Response:
        group = self.group(req)
        state = req.get_choice("state", ("opened", "closed", "all"), "all")
        order_by = req.get_choice("order_by", ("created_at", "updated_at", "title"), "created_at")
        descending = req.get_choice("sort", ("asc", "desc"), "desc") == "desc"
        labels = req.get_list("labels")
        search = str(req.get("search") or "")
        author_id = req.get_int("author_id")

        def keep(epic: dict[str, Any]) -> bool:
            return (
                (state == "all" or epic["state"] == state)
                and (not labels or _labels_match(labels, epic["labels"]))
                and (not search or _search_matches(search, [epic["title"], epic["description"]]))
                and (author_id is None or epic["author_id"] == author_id)
            )

        epics = [e for e in self.store.select("epics", group_id=group["id"]) if keep(e)]
        epics.sort(key=lambda epic: (epic[order_by], epic["id"]), reverse=descending)
        return paged_json(req, epics, lambda epic: self.render_epic(req, group, epic))

    def create_epic(self, req: Request) -> Response:
        group = self.group(req)
        if not req.has("title"):
            raise ApiError.missing("title")
        title, description = str(req.get("title") or ""), str(req.get("description") or "")
        _validate_issue_text(title, description)
        now = now_iso()
        data: dict[str, Any] = {
            "group_id": group["id"], "title": title, "description": description,
            "state": "opened", "labels": relabel((), req.get_list("labels") or []),
            "confidential": bool(req.get_bool("confidential")),
            "author_id": self.api.me()["id"], "created_at": now, "updated_at": now,
            "closed_at": None, "start_date_is_fixed": False, "start_date_fixed": None,
            "due_date_is_fixed": False, "due_date_fixed": None,
        }  # fmt: skip
        _apply_dates(req, data)
        with self.store.lock:  # the next iid, atomically
            data.update(self._parent_from(req, data))
            taken = [e["iid"] for e in self.store.select("epics", group_id=group["id"])]
            iid = max(taken, default=0) + 1
            epic = self.store.insert("epics", {**data, "iid": iid}, group_id=group["id"], iid=iid)
        return json_response(self.render_epic(req, group, epic), 201)

    def get_epic(self, req: Request) -> Response:
        group = self.group(req)
        return json_response(self.render_epic(req, group, self.epic(req, group)))

    def update_epic(self, req: Request) -> Response:
        group = self.group(req)
        state_event = check_update(req, _EPIC_UPDATE_KEYS)
        with self.store.lock:
            epic = dict(self.epic(req, group))
            for key in ("title", "description"):
                if req.has(key):
                    epic[key] = str(req.get(key) or "")
            _validate_issue_text(epic["title"], epic["description"])
            labels = relabel((), req.get_list("labels") or []) if req.has("labels") else epic["labels"]
            epic["labels"] = relabel(labels, req.get_list("add_labels") or [], req.get_list("remove_labels") or [])
            if req.has("confidential"):
                epic["confidential"] = bool(req.get_bool("confidential"))
                self._check_confidential(epic)
            _apply_dates(req, epic)
            epic.update(self._parent_from(req, epic))
            now = now_iso()
            if state_event == "close" and epic["state"] != "closed":
                epic.update(state="closed", closed_at=now)
            elif state_event == "reopen" and epic["state"] != "opened":
                epic.update(state="opened", closed_at=None)
            epic["updated_at"] = now
            self.store.update("epics", epic)
        return json_response(self.render_epic(req, group, epic))

    # -- child epics -------------------------------------------------------------------------

    def list_child_epics(self, req: Request) -> Response:
        parent = self.epic(req, self.group(req))
        children = [e for e in self.store.select("epics") if e.get("parent_id") == parent["id"]]
        children.sort(key=lambda child: (child["relative_position"], -child["id"]))
        return json_response([self.render_epic(req, self._group_of(child), child) for child in children])

    def assign_child_epic(self, req: Request) -> Response:
        """The Epic Links API: the parent by its group and iid, the child by its global id."""
        parent = self.epic(req, self.group(req))
        with self.store.lock:
            child = self.store.find("epics", id=int(req.match["child_epic_id"]))
            if child is None:
                raise ApiError(404, {"message": "No matching epic found. Make sure that you are adding a valid epic URL."})
            child.update(self._placed_under(child, parent), updated_at=now_iso())
            self.store.update("epics", child)
        return json_response(self.render_epic(req, self._group_of(child), child), 201)

    def _parent_from(self, req: Request, child: dict[str, Any]) -> dict[str, Any]:
        """The epics API's ``parent_id`` (a global id) for ``child`` (without an id: a new epic), as
        fields to store; none given, none. GitLab ignores an unknown parent; refused here,
        so that no caller believes it was set."""
        parent_id = req.get_int("parent_id")
        if parent_id is None:
            return {}
        parent = self.store.find("epics", id=parent_id)
        if parent is None:
            raise ApiError.not_found("Parent epic")
        try:
            return self._placed_under(child, parent)
        except ApiError as refused:  # the epics API says it as a validation error (GitLab 17: on base)
            raise ApiError.validation({"base": [refused.body["message"]]}) from None

    def _placed_under(self, child: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
        """``parent_id`` and the first place among the parent's children, or the Epic Links API's 409."""
        epics = {epic["id"]: epic for epic in self.store.select("epics")}
        reason = parent_refusal(epics, child, parent)
        if reason:
            raise ApiError(409, {"message": reason})
        siblings = [e["relative_position"] for e in epics.values() if e.get("parent_id") == parent["id"]]
        return {"parent_id": parent["id"], "relative_position": min(siblings, default=1 << 30) - 513}

    def _check_confidential(self, epic: dict[str, Any]) -> None:
        """GitLab keeps what is in a confidential epic confidential: its child epics and issues."""
        if not epic["confidential"]:
            return
        issues = [self.store.find("issues", id=link["issue_id"]) for link in self.store.select("epic_issues", epic_id=epic["id"])]
        children = [e for e in self.store.select("epics") if e.get("parent_id") == epic["id"]]
        problems = [
            f"Cannot make the epic confidential if it contains non-confidential {what}"
            for what, items in (("issues", issues), ("child epics", children)) if any(x and not x["confidential"] for x in items)
        ]  # fmt: skip
        if problems:
            raise ApiError.validation({"confidential": problems})

    def _group_of(self, epic: dict[str, Any]) -> dict[str, Any]:
        group = self.store.find("groups", id=epic["group_id"])
        assert group is not None, "epics belong to a stored group"
        return group

    # -- epic notes --------------------------------------------------------------------------

    def epic_by_id(self, req: Request, group: dict[str, Any]) -> dict[str, Any]:
        found = self.store.find("epics", id=int(req.match["epic_id"]), group_id=group["id"])
        if found is None:
            raise ApiError.not_found("Epic")
        return found

    def list_epic_notes(self, req: Request) -> Response:
        epic = self.epic_by_id(req, self.group(req))
        order_by = req.get_choice("order_by", ("created_at", "updated_at"), "created_at")
        descending = req.get_choice("sort", ("asc", "desc"), "desc") == "desc"
        notes = sorted(self.store.select("epic_notes", epic_id=epic["id"]), key=lambda n: (n[order_by], n["id"]), reverse=descending)
        return paged_json(req, notes, lambda note: self.render_note(req, epic, note))

    def create_epic_note(self, req: Request) -> Response:
        epic = self.epic_by_id(req, self.group(req))
        if not req.has("body"):
            raise ApiError.missing("body")
        body = str(req.get("body") or "")
        if not body.strip() or len(body) > MAX_NOTE:  # GitLab's words: bad_request!("Note #{note.errors.messages}")
            problem = f"is too long (maximum is {MAX_NOTE} characters)" if body.strip() else "can't be blank"
            raise ApiError(400, {"message": f'400 Bad request - Note {{:note=>["{problem}"]}}'})
        now = now_iso()
        with self.store.lock:  # a note touches its epic, as in GitLab
            self.store.update("epics", {**(self.store.find("epics", id=epic["id"]) or epic), "updated_at": now})
            data = {"body": body, "author_id": self.api.me()["id"], "created_at": now, "updated_at": now}
            note = self.store.insert("epic_notes", data, epic_id=epic["id"])
        return json_response(self.render_note(req, epic, note), 201)

    def get_epic_note(self, req: Request) -> Response:
        epic = self.epic_by_id(req, self.group(req))
        note = self.store.find("epic_notes", id=int(req.match["note_id"]), epic_id=epic["id"])
        if note is None:
            raise ApiError.not_found("Note")
        return json_response(self.render_note(req, epic, note))

    def render_note(self, req: Request, epic: dict[str, Any], note: dict[str, Any]) -> dict[str, Any]:
        return Renderer(self.store, req.base_url).note(epic, note, "Epic")

    # -- issues in an epic -------------------------------------------------------------------

    def list_epic_issues(self, req: Request) -> Response:
        epic = self.epic(req, self.group(req))
        links = self.store.select("epic_issues", epic_id=epic["id"])
        links.sort(key=lambda link: (link["relative_position"], link["id"]))
        pairs = [(link, self.store.find("issues", id=link["issue_id"])) for link in links]

        def render(pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
            link, issue = pair
            extra = {"epic_issue_id": link["id"], "relative_position": link["relative_position"]}
            return {**self.render_issue(req, issue), **extra}

        return paged_json(req, [(link, issue) for link, issue in pairs if issue], render)

    def add_epic_issue(self, req: Request) -> Response:
        group = self.group(req)
        epic = self.epic(req, group)
        if "issue_id" in req.match:
            issue_id = int(req.match["issue_id"])
        elif req.has("issue_id"):
            issue_id = req.get_int("issue_id") or 0
        else:
            raise ApiError.missing("issue_id")
        issue = self.store.find("issues", id=issue_id)
        if issue is None:
            raise ApiError.not_found("Issue")
        now = now_iso()
        with self.store.lock:
            link = self.store.find("epic_issues", issue_id=issue_id)
            if link is not None and link["epic_id"] == epic["id"]:
                raise ApiError(409, _ALREADY_ASSIGNED)
            # GitLab puts a newly added issue first; an issue in another epic moves here.
            siblings = self.store.select("epic_issues", epic_id=epic["id"])
            position = min((x["relative_position"] for x in siblings), default=1 << 30) - 513
            data = {"epic_id": epic["id"], "issue_id": issue_id, "relative_position": position}
            if link is None:
                columns = {"epic_id": epic["id"], "issue_id": issue_id}
                link = self.store.insert("epic_issues", {**data, "created_at": now}, **columns)
            else:
                link = {**link, **data}
                with self.store.transaction() as conn:
                    conn.execute(
                        "UPDATE epic_issues SET epic_id = ?, data = ? WHERE id = ?",
                        (epic["id"], json.dumps(link), link["id"]),
                    )
        return json_response(self.render_epic_issue(req, group, epic, link, issue), 201)

    def remove_epic_issue(self, req: Request) -> Response:
        group = self.group(req)
        epic = self.epic(req, group)
        link = self.store.find("epic_issues", id=int(req.match["epic_issue_id"]))
        if link is None or link["epic_id"] != epic["id"]:
            raise ApiError.not_found()
        issue = self.store.find("issues", id=link["issue_id"]) or {}
        delete_row(self.store, "epic_issues", link["id"])
        return json_response(self.render_epic_issue(req, group, epic, link, issue))

    def render_epic_issue(
        self, req: Request, group: dict, epic: dict, link: dict, issue: dict
    ) -> dict[str, Any]:
        return {
            "id": link["id"],
            "relative_position": link["relative_position"],
            "epic": self.render_epic(req, group, epic),
            "issue": self.render_issue(req, issue) if issue else None,
        }

    # -- issue links -------------------------------------------------------------------------

    def list_links(self, req: Request) -> Response:
        issue = self.api.issue(req, self.api.project(req))
        links = self.store.select("issue_links", source_id=issue["id"])
        links += self.store.select("issue_links", target_id=issue["id"])
        links.sort(key=lambda link: link["id"])
        related = []
        for link in links:
            mine = link["source_id"] == issue["id"]
            other = self.store.find("issues", id=link["target_id" if mine else "source_id"])
            if other is None:
                continue
            link_type = link["link_type"]
            if link_type == "blocks" and not mine:
                link_type = "is_blocked_by"
            related.append({
                **self.render_issue(req, other), "issue_link_id": link["id"],
                "link_type": link_type, "link_created_at": link["created_at"],
                "link_updated_at": link["updated_at"],
            })  # fmt: skip
        return json_response(related)

    def create_link(self, req: Request) -> Response:
        source = self.api.issue(req, self.api.project(req))
        for required in ("target_project_id", "target_issue_iid"):
            if not req.has(required):
                raise ApiError.missing(required)
        link_type = req.get_choice("link_type", _LINK_TYPES, "relates_to")
        key = str(req.get("target_project_id"))
        column = {"id": int(key)} if key.isdigit() else {"path_with_namespace": key}
        target_project = self.store.find("projects", **column)
        if target_project is None:
            raise ApiError.not_found("Project")
        target_iid = req.get_int("target_issue_iid") or 0
        target = self.store.find("issues", project_id=target_project["id"], iid=target_iid)
        if target is None or target["id"] == source["id"]:
            message = "No matching issue found. Make sure that you are adding a valid issue URL."
            raise ApiError(404, {"message": message})
        first, second = (target, source) if link_type == "is_blocked_by" else (source, target)
        stored_type = "blocks" if link_type == "is_blocked_by" else link_type
        now = now_iso()
        with self.store.lock:
            pair = {(source["id"], target["id"]), (target["id"], source["id"])}
            for source_id, target_id in pair:
                if self.store.find("issue_links", source_id=source_id, target_id=target_id):
                    raise ApiError(409, _ALREADY_ASSIGNED)
            data = {"link_type": stored_type, "created_at": now, "updated_at": now}
            self.store.insert(
                "issue_links",
                {**data, "source_id": first["id"], "target_id": second["id"]},
                source_id=first["id"],
                target_id=second["id"],
            )
        body = {
            "source_issue": self.render_issue(req, source),
            "target_issue": self.render_issue(req, target),
            "link_type": link_type,
        }
        return json_response(body, 201)

    def get_link(self, req: Request) -> Response:
        return json_response(self._render_link(req, self._link(req)))

    def delete_link(self, req: Request) -> Response:
        link = self._link(req)
        delete_row(self.store, "issue_links", link["id"])
        return json_response(self._render_link(req, link))

    def _link(self, req: Request) -> dict[str, Any]:
        issue = self.api.issue(req, self.api.project(req))
        link = self.store.find("issue_links", id=int(req.match["link_id"]))
        if link is None or issue["id"] not in (link["source_id"], link["target_id"]):
            raise ApiError.not_found()
        return link

    def _render_link(self, req: Request, link: dict[str, Any]) -> dict[str, Any]:
        source = self.store.find("issues", id=link["source_id"])
        target = self.store.find("issues", id=link["target_id"])
        return {
            "source_issue": self.render_issue(req, source) if source else None,
            "target_issue": self.render_issue(req, target) if target else None,
            "link_type": link["link_type"],
        }


def _apply_dates(req: Request, epic: dict[str, Any]) -> None:
    for which in ("start", "due"):
        if req.has(f"{which}_date_is_fixed"):
            epic[f"{which}_date_is_fixed"] = bool(req.get_bool(f"{which}_date_is_fixed"))
        if req.has(f"{which}_date_fixed"):
            fixed = req.get_date(f"{which}_date_fixed")
            epic[f"{which}_date_fixed"] = fixed.isoformat() if fixed else None


def parent_refusal(epics: dict[int, dict[str, Any]], child: dict[str, Any], parent: dict[str, Any]) -> str | None:
    """Why GitLab refuses ``parent`` for ``child`` (without an id: an epic being created), in its words."""
    ancestors = [parent]
    while ancestors[-1].get("parent_id") in epics and len(ancestors) <= len(epics):
        ancestors.append(epics[ancestors[-1]["parent_id"]])
    if child.get("id") == parent["id"]:
        reason = "An epic cannot be added to itself."
    elif child.get("id") and child.get("parent_id") == parent["id"]:
        reason = "It is already assigned to the parent epic."
    elif any(epic["id"] == child.get("id") for epic in ancestors):
        reason = "It is already an ancestor of the parent epic."
    elif len(ancestors) + _levels(epics, child) > MAX_DEPTH:
        reason = f"One or more epics would exceed the maximum depth ({MAX_DEPTH}) from its most distant ancestor."
    elif sum(epic.get("parent_id") == parent["id"] for epic in epics.values()) >= MAX_CHILDREN:
        return "You cannot add any more epics. This epic already has maximum number of child epics."
    elif parent["confidential"] and not child["confidential"]:
        return "A non-confidential epic cannot be assigned to a confidential parent epic"
    else:
        return None
    return f"This epic cannot be added. {reason}"


def _levels(epics: dict[int, dict[str, Any]], epic: dict[str, Any]) -> int:
    """How many levels the tree under ``epic`` has, ``epic`` included."""
    if not epic.get("id"):
        return 1
    children = [other for other in epics.values() if other.get("parent_id") == epic["id"]]
    return 1 + max((_levels(epics, child) for child in children), default=0)
