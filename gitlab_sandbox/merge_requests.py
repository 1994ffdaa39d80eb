"""Merge requests between branches of the sandbox repository, and their webhook events.

Errors mirror GitLab's: a second open merge request for a source branch is a 409, merging one
that is not open is a 405, conflicting changes are a 406.
"""

from __future__ import annotations

from typing import Any

from gitlab_sandbox.git_objects import DEFAULT_BRANCH, Repository, three_way_merge
from gitlab_sandbox.gitlab_api import PROJECT, GitLabApi, check_update
from gitlab_sandbox.gitlab_json import Renderer
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response, paged_json
from gitlab_sandbox.store import ID_BASES, Store, now_iso

# Ids apart from iids, like every other sandbox table (see ``store.ID_BASES``).
ID_BASES.setdefault("merge_requests", 380_000_000)

MR = rf"{PROJECT}/merge_requests/(?P<iid>\d+)"
_UPDATE_KEYS = (
    "title", "description", "labels", "add_labels", "remove_labels", "state_event",
    "target_branch", "remove_source_branch",
)  # fmt: skip

SCHEMA = """
CREATE TABLE IF NOT EXISTS merge_requests (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, iid INTEGER NOT NULL, data TEXT NOT NULL,
    UNIQUE (project_id, iid));
"""


class MergeRequestsApi:
    SCHEMA = SCHEMA

    def __init__(self, store: Store) -> None:
        self.store = store
        self.repo = Repository(store)
        self.api = GitLabApi(store)

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", f"{PROJECT}/merge_requests", self.list)
        add("POST", f"{PROJECT}/merge_requests", self.create)
        add("GET", MR, self.get)
        add("PUT", MR, self.update)
        add("PUT", f"{MR}/merge", self.merge)
        add("GET", f"{MR}/changes", self.changes)
        add("GET", f"{MR}/diffs", self.diffs)

    def _project(self, req: Request) -> dict[str, Any]:
        project = self.api.project(req)
        self.repo.init(project)
        return project

    def _mr(self, req: Request, project: dict[str, Any]) -> dict[str, Any]:
        found = self.store.find(
            "merge_requests", project_id=project["id"], iid=int(req.match["iid"])
        )
        if found is None:
            raise ApiError.not_found("Merge Request")
        return found

    def _refuse_second_open(self, project_id: int, source: str, iid: int | None = None) -> None:
        for other in self.store.select("merge_requests", project_id=project_id):
            if (
                other["source_branch"] == source
                and other["state"] == "opened"
                and other["iid"] != iid
            ):
                message = (
                    "Another open merge request already exists for this source branch: "
                    f"!{other['iid']}"
                )
                raise ApiError(409, {"message": [message]})

    # -- diffs -------------------------------------------------------------------------------

    def _trees(
        self, project_id: int, mr: dict[str, Any]
    ) -> tuple[dict[str, str], dict[str, str], str | None]:
        """The base and head trees the merge request shows: what merging adds to the target
        (live while open; frozen at merge time)."""
        base_sha, head_sha = mr.get("diff_base_sha"), self._head_sha(project_id, mr)
        target = self.repo.branch(project_id, mr["target_branch"])
        if mr["state"] != "merged" and head_sha and target:
            base_sha = self.repo.merge_base(project_id, target["commit"], head_sha)
        base = self.repo.commit(project_id, base_sha) if base_sha else None
        head = self.repo.commit(project_id, head_sha) if head_sha else None
        return (base or {}).get("tree", {}), (head or base or {}).get("tree", {})

    def _head_sha(self, project_id: int, mr: dict[str, Any]) -> str | None:
        source = (
            None if mr["state"] == "merged" else self.repo.branch(project_id, mr["source_branch"])
        )
        return source["commit"] if source else mr.get("diff_head_sha")

    def file_changes(self, project_id: int, mr: dict[str, Any]) -> list[dict[str, Any]]:
        """GitLab's diff entries for the merge request (also shown on its web page)."""
        return self.repo.changes(project_id, *self._trees(project_id, mr))

    # -- rendering ---------------------------------------------------------------------------

    def render(
        self, project: dict[str, Any], mr: dict[str, Any], base_url: str, full: bool = False
    ) -> dict[str, Any]:
        """GitLab's merge request JSON; ``full`` adds what only single-MR responses carry."""
        out = Renderer(self.store, base_url)
        path, iid = project["path_with_namespace"], mr["iid"]
        extra = {"changes_count": str(len(self.file_changes(project["id"], mr)))} if full else {}
        return extra | {
            "id": mr["id"], "iid": iid, "project_id": project["id"], "title": mr["title"],
            "description": mr["description"], "state": mr["state"],
            "created_at": mr["created_at"], "updated_at": mr["updated_at"],
            "merged_by": out.user_by_id(mr.get("merged_by_id")),
            "merge_user": out.user_by_id(mr.get("merged_by_id")), "merged_at": mr.get("merged_at"),
            "closed_by": out.user_by_id(mr.get("closed_by_id")), "closed_at": mr.get("closed_at"),
            "target_branch": mr["target_branch"], "source_branch": mr["source_branch"],
            "source_project_id": project["id"], "target_project_id": project["id"],
            "user_notes_count": 0, "upvotes": 0, "downvotes": 0,
            "author": out.user_by_id(mr["author_id"]), "assignees": [], "assignee": None,
            "reviewers": [], "labels": mr["labels"], "draft": False, "work_in_progress": False,
            "milestone": None, "merge_when_pipeline_succeeds": False,
            "merge_status": "can_be_merged", "detailed_merge_status": "mergeable"
            if mr["state"] == "opened" else "not_open",
            "sha": self._head_sha(project["id"], mr),
            "merge_commit_sha": mr.get("merge_commit_sha"), "squash_commit_sha": None, "discussion_locked": None,
            "should_remove_source_branch": mr.get("should_remove_source_branch"),
            "force_remove_source_branch": mr["force_remove_source_branch"],
            "squash": False, "has_conflicts": False, "blocking_discussions_resolved": True,
            "web_url": f"{base_url}/{path}/-/merge_requests/{iid}",
            "references": {"short": f"!{iid}", "relative": f"!{iid}", "full": f"{path}!{iid}"},
            "time_stats": {"time_estimate": 0, "total_time_spent": 0,
                           "human_time_estimate": None, "human_total_time_spent": None},
        }  # fmt: skip

    def _emit(self, project: dict[str, Any], mr: dict[str, Any], action: str, base_url: str,
              changes: dict[str, Any] | None = None) -> None:  # fmt: skip
        """GitLab's merge request webhook payload."""
        out = Renderer(self.store, base_url)
        rendered = self.render(project, mr, base_url)
        labels = []
        for name in mr["labels"]:
            found = self.store.find("labels", project_id=project["id"], name=name) or {}
            labels.append({"id": found.get("id"), "title": name, "project_id": project["id"],
                           "type": "ProjectLabel"})  # fmt: skip
        web = f"{base_url}/{project['path_with_namespace']}"
        payload = {
            "object_kind": "merge_request", "event_type": "merge_request",
            "user": {**(out.user(self.api.me()) or {}), "email": "[REDACTED]"},
            "project": {"id": project["id"], "name": project["name"], "web_url": web,
                        "path_with_namespace": project["path_with_namespace"],
                        "default_branch": DEFAULT_BRANCH, "homepage": web,
                        "git_http_url": f"{web}.git"},
            "repository": {"name": project["name"], "url": f"{web}.git", "homepage": web},
            "object_attributes": {
                **{k: rendered[k] for k in ("id", "iid", "title", "description", "state",
                                            "created_at", "updated_at", "merged_at", "closed_at",
                                            "source_branch", "target_branch", "source_project_id",
                                            "target_project_id", "merge_status",
                                            "merge_commit_sha", "draft", "work_in_progress")},
                "author_id": mr["author_id"], "url": rendered["web_url"], "action": action,
                "labels": labels, "last_commit": {"id": rendered["sha"]},
            },
            "labels": labels,
            "changes": changes or {},
        }  # fmt: skip
        self.store.events.emit("merge_request", project["id"], payload)

    # -- handlers ----------------------------------------------------------------------------

    def list(self, req: Request) -> Response:
        project = self._project(req)
        state = req.get_choice("state", ("opened", "closed", "locked", "merged", "all"), "all")
        source, target = req.get("source_branch"), req.get("target_branch")
        labels = req.get_list("labels") or []
        search = str(req.get("search") or "").lower()
        iids = set(req.get_int_list("iids") or [])
        order_by = req.get_choice("order_by", ("created_at", "updated_at", "title"), "created_at")
        descending = req.get_choice("sort", ("asc", "desc"), "desc") == "desc"

        def keep(mr: dict[str, Any]) -> bool:
            return (
                (state == "all" or mr["state"] == state)
                and (not source or mr["source_branch"] == source)
                and (not target or mr["target_branch"] == target)
                and (not iids or mr["iid"] in iids)
                and (labels != ["None"] or not mr["labels"])
                and (labels != ["Any"] or bool(mr["labels"]))
                and (labels in (["None"], ["Any"]) or set(labels) <= set(mr["labels"]))
                and (not search or search in f"{mr['title']}\n{mr['description']}".lower())
            )

        found = [
            mr for mr in self.store.select("merge_requests", project_id=project["id"]) if keep(mr)
        ]
        found.sort(key=lambda mr: (mr[order_by], mr["id"]), reverse=descending)
        return paged_json(req, found, lambda mr: self.render(project, mr, req.base_url))

    def create(self, req: Request) -> Response:
        project = self._project(req)
        pid = project["id"]
        for required in ("source_branch", "target_branch", "title"):
            if not req.get(required):
                raise ApiError.missing(required)
        source, target = str(req.get("source_branch")), str(req.get("target_branch"))
        with self.store.lock:
            if source == target:
                raise ApiError(
                    422, {"message": ["You can't use same project/branch for source and target"]}
                )
            for kind, name in (("Source", source), ("Target", target)):
                if self.repo.branch(pid, name) is None:
                    raise ApiError(422, {"message": [f'{kind} branch "{name}" does not exist']})
            self._refuse_second_open(pid, source)
            now = now_iso()
            iid = self.store.count("merge_requests", project_id=pid) + 1
            data = {
                "title": str(req.get("title")), "description": str(req.get("description") or ""),
                "state": "opened", "source_branch": source, "target_branch": target,
                "labels": self.api.ensure_labels(project, req.get_list("labels") or []),
                "author_id": self.api.me()["id"], "created_at": now, "updated_at": now,
                "force_remove_source_branch": bool(req.get_bool("remove_source_branch")),
            }  # fmt: skip
            mr = self.store.insert("merge_requests", {**data, "iid": iid}, project_id=pid, iid=iid)
        self._emit(project, mr, "open", req.base_url)
        return json_response(self.render(project, mr, req.base_url, full=True), 201)

    def get(self, req: Request) -> Response:
        project = self._project(req)
        return json_response(self.render(project, self._mr(req, project), req.base_url, full=True))

    def update(self, req: Request) -> Response:
        project = self._project(req)
        state_event = check_update(req, _UPDATE_KEYS)
        with self.store.lock:
            before = self._mr(req, project)
            mr = dict(before)
            for key in ("title", "description", "target_branch"):
                if req.has(key):
                    mr[key] = str(req.get(key) or "")
            if not mr["title"].strip():
                raise ApiError.validation({"title": ["can't be blank"]})
            labels = set(req.get_list("labels") or []) if req.has("labels") else set(mr["labels"])
            labels = (labels | set(req.get_list("add_labels") or [])) - set(
                req.get_list("remove_labels") or []
            )
            mr["labels"] = self.api.ensure_labels(project, sorted(labels))
            if req.has("remove_source_branch"):
                mr["force_remove_source_branch"] = bool(req.get_bool("remove_source_branch"))
            action, now = "update", now_iso()
            if state_event == "close" and mr["state"] == "opened":
                mr.update(state="closed", closed_at=now, closed_by_id=self.api.me()["id"])
                action = "close"
            elif state_event == "reopen" and mr["state"] == "closed":
                self._refuse_second_open(project["id"], mr["source_branch"], mr["iid"])
                mr.update(state="opened", closed_at=None, closed_by_id=None)
                action = "reopen"
            mr["updated_at"] = now
            self.store.update("merge_requests", mr)
        changes = {k: {"previous": before.get(k), "current": mr.get(k)}
                   for k in ("title", "description", "target_branch", "labels", "state")
                   if before.get(k) != mr.get(k)}  # fmt: skip
        self._emit(project, mr, action, req.base_url, changes)
        return json_response(self.render(project, mr, req.base_url, full=True))

    def merge(self, req: Request) -> Response:
        project = self._project(req)
        pid = project["id"]
        with self.store.lock:
            mr = dict(self._mr(req, project))
            if mr["state"] != "opened":
                raise ApiError(405, {"message": "405 Method Not Allowed"})
            source = self.repo.branch(pid, mr["source_branch"])
            target = self.repo.branch(pid, mr["target_branch"])
            if source is None or target is None:
                raise ApiError(422, {"message": "Branch cannot be merged"})
            if req.get("sha") and req.get("sha") != source["commit"]:
                message = f"SHA does not match HEAD of source branch: {source['commit']}"
                raise ApiError(409, {"message": message})
            base_sha = self.repo.merge_base(pid, target["commit"], source["commit"])
            base = self.repo.commit(pid, base_sha) if base_sha else None
            ours = self.repo.commit(pid, target["commit"]) or {"tree": {}}
            theirs = self.repo.commit(pid, source["commit"]) or {"tree": {}}
            merged = three_way_merge((base or {}).get("tree", {}), ours["tree"], theirs["tree"])
            if merged is None:
                raise ApiError(406, {"message": "Branch cannot be merged"})
            message = str(req.get("merge_commit_message") or (
                f"Merge branch '{mr['source_branch']}' into '{mr['target_branch']}'\n\n"
                f"{mr['title']}\n\nSee merge request {project['path_with_namespace']}!{mr['iid']}"
            ))  # fmt: skip
            commit = self.repo.write_commit(
                pid, mr["target_branch"], [target["commit"], source["commit"]], merged, message
            )
            now = now_iso()
            remove = req.get_bool("should_remove_source_branch")
            mr.update(
                state="merged", merged_at=now, updated_at=now, merged_by_id=self.api.me()["id"],
                merge_commit_sha=commit["sha"], diff_base_sha=base_sha,
                diff_head_sha=source["commit"], should_remove_source_branch=remove,
            )  # fmt: skip
            self.store.update("merge_requests", mr)
            if remove or (remove is None and mr["force_remove_source_branch"]):
                self.repo.delete_branch(pid, mr["source_branch"])
        merged_state = {"state": {"previous": "opened", "current": "merged"}}
        self._emit(project, mr, "merge", req.base_url, merged_state)
        return json_response(self.render(project, mr, req.base_url, full=True))

    def changes(self, req: Request) -> Response:
        project = self._project(req)
        mr = self._mr(req, project)
        body = self.render(project, mr, req.base_url, full=True)
        return json_response(
            {**body, "changes": self.file_changes(project["id"], mr), "overflow": False}
        )

    def diffs(self, req: Request) -> Response:
        project = self._project(req)
        return paged_json(req, self.file_changes(project["id"], self._mr(req, project)), lambda d: d)
