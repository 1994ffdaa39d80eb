"""The repository REST endpoints: branches, commits (with GitLab's actions), files and the tree.

Errors mirror GitLab's, e.g. a create action on an existing file is a 400 "A file with this
name already exists". The objects themselves live in ``git_objects``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from gitlab_sandbox.git_objects import DEFAULT_BRANCH, SCHEMA, Repository, valid_branch_name
from gitlab_sandbox.gitlab_api import PROJECT, GitLabApi
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response, paged_json
from gitlab_sandbox.store import Store

BRANCH = rf"{PROJECT}/repository/branches/(?P<branch>[^/]+)"
FILE = rf"{PROJECT}/repository/files/(?P<file_path>[^/]+)"


class RepositoryApi:
    """Branches, commits, files and the tree of every project."""

    SCHEMA = SCHEMA

    def __init__(self, store: Store) -> None:
        self.store = store
        self.repo = Repository(store)
        self.api = GitLabApi(store)

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", f"{PROJECT}/repository/branches", self.list_branches)
        add("POST", f"{PROJECT}/repository/branches", self.create_branch)
        add("GET", BRANCH, self.get_branch)
        add("DELETE", BRANCH, self.delete_branch)
        add("GET", f"{PROJECT}/repository/commits", self.list_commits)
        add("POST", f"{PROJECT}/repository/commits", self.create_commit)
        add("GET", rf"{PROJECT}/repository/commits/(?P<sha>[0-9a-f]{{7,40}})", self.get_commit)
        add("GET", f"{FILE}/raw", self.raw_file)
        add("GET", FILE, self.get_file)
        add("GET", f"{PROJECT}/repository/tree", self.tree)

    def project(self, req: Request) -> dict[str, Any]:
        project = self.api.project(req)
        self.repo.init(project)
        return project

    # -- rendering ---------------------------------------------------------------------------

    def commit_json(
        self, project: dict[str, Any], commit: dict[str, Any], base: str
    ) -> dict[str, Any]:
        sha, when = commit["sha"], commit["created_at"]
        return {
            "id": sha, "short_id": sha[:8], "created_at": when, "parent_ids": commit["parent_ids"],
            "title": commit["title"], "message": commit["message"],
            "author_name": commit["author_name"], "author_email": commit["author_email"],
            "authored_date": when, "committer_name": commit["author_name"],
            "committer_email": commit["author_email"], "committed_date": when,
            "trailers": {}, "extended_trailers": {},
            "web_url": f"{base}/{project['path_with_namespace']}/-/commit/{sha}",
        }  # fmt: skip

    def branch_json(
        self, project: dict[str, Any], branch: dict[str, Any], base: str
    ) -> dict[str, Any]:
        commit = self.repo.commit(project["id"], branch["commit"]) or {}
        name = branch["name"]
        return {
            "name": name, "commit": self.commit_json(project, commit, base), "merged": False,
            "protected": name == DEFAULT_BRANCH, "developers_can_push": False,
            "developers_can_merge": False, "can_push": True, "default": name == DEFAULT_BRANCH,
            "web_url": f"{base}/{project['path_with_namespace']}/-/tree/{name}",
        }  # fmt: skip

    # -- branches ----------------------------------------------------------------------------

    def list_branches(self, req: Request) -> Response:
        project = self.project(req)
        search = str(req.get("search") or "").lower()
        branches = [b for b in self.store.select("repo_branches", project_id=project["id"])
                    if search in b["name"].lower()]  # fmt: skip
        branches.sort(key=lambda b: b["name"])
        return paged_json(req, branches, lambda b: self.branch_json(project, b, req.base_url))

    def create_branch(self, req: Request) -> Response:
        project = self.project(req)
        for required in ("branch", "ref"):
            if not req.get(required):
                raise ApiError.missing(required)
        name, ref = str(req.get("branch")), str(req.get("ref"))
        if not valid_branch_name(name):
            raise ApiError(400, {"message": "Branch name is invalid"})
        with self.store.lock:
            if self.repo.branch(project["id"], name) is not None:
                raise ApiError(400, {"message": "Branch already exists"})
            start = self.repo.resolve(project["id"], ref)
            if start is None:
                raise ApiError(400, {"message": f"Invalid reference name: {ref}"})
            branch = self.repo.set_branch(project["id"], name, start["sha"])
        return json_response(self.branch_json(project, branch, req.base_url), 201)

    def get_branch(self, req: Request) -> Response:
        project = self.project(req)
        branch = self.repo.branch(project["id"], req.match["branch"])
        if branch is None:
            raise ApiError.not_found("Branch")
        return json_response(self.branch_json(project, branch, req.base_url))

    def delete_branch(self, req: Request) -> Response:
        project = self.project(req)
        name = req.match["branch"]
        if self.repo.branch(project["id"], name) is None:
            raise ApiError.not_found("Branch")
        if name == DEFAULT_BRANCH:
            raise ApiError(405, {"message": "Cannot remove HEAD branch"})
        self.repo.delete_branch(project["id"], name)
        return Response(204)

    # -- commits -----------------------------------------------------------------------------

    def list_commits(self, req: Request) -> Response:
        project = self.project(req)
        ref = str(req.get("ref_name") or DEFAULT_BRANCH)
        head = self.repo.resolve(project["id"], ref)
        if head is None:
            raise ApiError.not_found("Reference")
        commits = self.repo.ancestors(project["id"], head["sha"])
        if req.get("path"):
            commits = [c for c in commits if self._touches(project["id"], c, str(req.get("path")))]
        return paged_json(req, commits, lambda c: self.commit_json(project, c, req.base_url))

    def _touches(self, project_id: int, commit: dict[str, Any], path: str) -> bool:
        parent = (
            self.repo.commit(project_id, commit["parent_ids"][0]) if commit["parent_ids"] else None
        )
        before = parent["tree"] if parent else {}
        after, folder = commit["tree"], path.rstrip("/") + "/"
        changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
        return any(p == path or p.startswith(folder) for p in changed)

    def get_commit(self, req: Request) -> Response:
        project = self.project(req)
        commit = self.repo.resolve(project["id"], req.match["sha"])
        if commit is None:
            raise ApiError.not_found("Commit")
        return json_response(self.commit_json(project, commit, req.base_url))

    def create_commit(self, req: Request) -> Response:
        project = self.project(req)
        pid = project["id"]
        for required in ("branch", "commit_message", "actions"):
            if not req.has(required):
                raise ApiError.missing(required)
        actions = req.get("actions")
        if not isinstance(actions, list) or not actions:
            raise ApiError(400, {"error": "actions is empty"})
        name, start_name = str(req.get("branch")), req.get("start_branch") or req.get("start_sha")
        if not valid_branch_name(name):
            raise ApiError(400, {"message": "Branch name is invalid"})
        with self.store.lock:
            branch = self.repo.branch(pid, name)
            if (
                branch is not None
                and start_name
                and start_name != name
                and not req.get_bool("force")
            ):
                message = (
                    f"A branch called '{name}' already exists. "
                    "Switch to that branch in order to make changes"
                )
                raise ApiError(400, {"message": message})
            start = self.repo.resolve(pid, str(start_name or name))
            if start is None:
                message = (
                    f"Invalid reference name: {start_name}"
                    if start_name
                    else "You can only create or edit files when you are on a branch"
                )
                raise ApiError(400, {"message": message})
            tree = self._apply(pid, dict(start["tree"]), actions)
            commit = self.repo.write_commit(
                pid, name, [start["sha"]], tree, str(req.get("commit_message"))
            )
        body = self.commit_json(project, commit, req.base_url)
        diff = "".join(c["diff"] for c in self.repo.changes(pid, start["tree"], tree)).splitlines()
        added = sum(1 for line in diff if line.startswith("+"))
        deleted = sum(1 for line in diff if line.startswith("-"))
        body.update(stats={"additions": added, "deletions": deleted, "total": added + deleted},
                    status=None, project_id=pid, last_pipeline=None)  # fmt: skip
        return json_response(body, 201)

    def _apply(self, project_id: int, tree: dict[str, str], actions: list[Any]) -> dict[str, str]:
        exists = "A file with this name already exists"
        missing = "A file with this name doesn't exist"
        for i, action in enumerate(actions):
            kind = action.get("action") if isinstance(action, dict) else None
            if kind not in ("create", "update", "delete", "move", "chmod"):
                raise ApiError.not_valid_value(f"actions[{i}][action]")
            if not action.get("file_path"):
                raise ApiError.missing(f"actions[{i}][file_path]")
            path = _clean_path(str(action["file_path"]))
            content = _decode(action, i)
            if kind == "create" and path in tree:
                raise ApiError(400, {"message": exists})
            if kind in ("update", "delete", "chmod") and path not in tree:
                raise ApiError(400, {"message": missing})
            if kind == "move":
                previous = _clean_path(str(action.get("previous_path") or ""))
                if previous not in tree:
                    raise ApiError(400, {"message": missing})
                if path in tree:
                    raise ApiError(400, {"message": exists})
                moved = tree.pop(previous)
                tree[path] = moved if content is None else self.repo.put_blob(project_id, content)
            elif kind == "delete":
                del tree[path]
            elif kind in ("create", "update"):
                tree[path] = self.repo.put_blob(project_id, content or b"")
        return tree

    # -- files and tree ----------------------------------------------------------------------

    def _file(self, req: Request, ref: str) -> tuple[dict[str, Any], dict[str, Any], str, str]:
        project = self.project(req)
        commit = self.repo.resolve(project["id"], ref)
        if commit is None:
            raise ApiError.not_found("Commit")
        path = req.match["file_path"]
        if path not in commit["tree"]:
            raise ApiError.not_found("File")
        return project, commit, path, commit["tree"][path]

    def get_file(self, req: Request) -> Response:
        if not req.get("ref"):
            raise ApiError.missing("ref")
        project, commit, path, sha = self._file(req, str(req.get("ref")))
        content = self.repo.blob(project["id"], sha)
        return json_response({
            "file_name": path.rpartition("/")[2], "file_path": path, "size": len(content),
            "encoding": "base64", "content_sha256": hashlib.sha256(content).hexdigest(),
            "ref": req.get("ref"), "blob_id": sha, "commit_id": commit["sha"],
            "last_commit_id": self.repo.last_commit_for(project["id"], commit, path),
            "execute_filemode": False, "content": base64.b64encode(content).decode(),
        })  # fmt: skip

    def raw_file(self, req: Request) -> Response:
        project, _, _, sha = self._file(req, str(req.get("ref") or DEFAULT_BRANCH))
        return Response(200, self.repo.blob(project["id"], sha), "text/plain; charset=utf-8")

    def tree(self, req: Request) -> Response:
        project = self.project(req)
        commit = self.repo.resolve(project["id"], str(req.get("ref") or DEFAULT_BRANCH))
        if commit is None:
            raise ApiError.not_found("Tree")
        prefix = str(req.get("path") or "").strip("/")
        recursive = bool(req.get_bool("recursive"))
        entries: dict[str, dict[str, Any]] = {}
        for path, sha in commit["tree"].items():
            if prefix and not path.startswith(prefix + "/"):
                continue
            parts = path.split("/")
            depth = prefix.count("/") + 1 if prefix else 0
            for level in range(depth, len(parts)):
                sub = "/".join(parts[: level + 1])
                is_blob = level == len(parts) - 1
                entries.setdefault(sub, {
                    "id": sha if is_blob else hashlib.sha1(sub.encode()).hexdigest(),
                    "name": parts[level], "type": "blob" if is_blob else "tree", "path": sub,
                    "mode": "100644" if is_blob else "040000",
                })  # fmt: skip
                if not recursive:
                    break
        if prefix and not entries:
            raise ApiError.not_found("Tree")
        ordered = sorted(entries.values(), key=lambda e: (e["type"] != "tree", e["path"]))
        return paged_json(req, ordered, lambda entry: entry)


def _clean_path(path: str) -> str:
    cleaned = path.strip("/")
    if not cleaned or any(part in ("", ".", "..") for part in cleaned.split("/")):
        raise ApiError(
            400,
            {"message": "Your changes could not be committed, because the file path is invalid"},
        )
    return cleaned


def _decode(action: dict[str, Any], index: int) -> bytes | None:
    content = action.get("content")
    if content is None:
        return None
    encoding = action.get("encoding") or "text"
    if encoding == "text":
        return str(content).encode()
    if encoding != "base64":
        raise ApiError.not_valid_value(f"actions[{index}][encoding]")
    try:
        return base64.b64decode(str(content), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, {"message": "Content is not valid base64"}) from None
