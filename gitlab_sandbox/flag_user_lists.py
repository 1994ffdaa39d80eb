"""Feature flag user lists (``/projects/:id/feature_flags_user_lists``), for the
``gitlabUserList`` strategy of project feature flags. Addressed by ``iid``, as in GitLab."""

from __future__ import annotations

import re
from typing import Any

from gitlab_sandbox.gitlab_api import PROJECT, GitLabApi
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response, paged_json
from gitlab_sandbox.store import ID_BASES, Store, now_iso

ID_BASES.setdefault("feature_flag_user_lists", 72_000)

LISTS = f"{PROJECT}/feature_flags_user_lists"
LIST = rf"{LISTS}/(?P<list_iid>\d+)"
NOT_FOUND = {"message": "404 Not found"}  # what ActiveRecord::RecordNotFound becomes
USER_XIDS_RULE = "must be a string of unique comma separated values each 256 characters or less"


def user_xids_valid(value: Any) -> bool:
    """GitLab's ``FeatureFlagUserXidsValidator``: unique, trimmed, non-empty, <= 256 chars."""
    if not isinstance(value, str) or re.search(r"[\n\r\t]|,,", value):
        return False
    xids = value.split(",")
    return len(set(xids)) == len(xids) and all(x and x.strip() == x and len(x) <= 256 for x in xids)


class UserListsApi:
    SCHEMA = """
    CREATE TABLE IF NOT EXISTS feature_flag_user_lists (
        id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, iid INTEGER NOT NULL,
        data TEXT NOT NULL, UNIQUE (project_id, iid));
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.api = GitLabApi(store)  # for its project lookup

    def register(self, router: Router) -> None:
        router.add("GET", LISTS, self.list_user_lists)
        router.add("POST", LISTS, self.create_user_list)
        router.add("GET", LIST, self.get_user_list)
        router.add("DELETE", LIST, self.delete_user_list)

    def list_user_lists(self, req: Request) -> Response:
        lists = self.store.select("feature_flag_user_lists", project_id=self.api.project(req)["id"])
        search = str(req.get("search") or "")
        return paged_json(req, [x for x in lists if search in x["name"]], render_list)

    def get_user_list(self, req: Request) -> Response:
        return json_response(render_list(self._user_list(req)))

    def create_user_list(self, req: Request) -> Response:
        project = self.api.project(req)
        for required in ("name", "user_xids"):
            if not req.has(required):
                raise ApiError.missing(required)
        xids = req.get("user_xids")
        xids = ",".join(str(x) for x in xids) if isinstance(xids, list) else str(xids)
        if not user_xids_valid(xids):
            raise ApiError.validation({"user_xids": [f"user_xids {USER_XIDS_RULE}"]})
        name = str(req.get("name") or "")
        if not name.strip():
            raise ApiError.validation({"name": ["can't be blank"]})
        with self.store.lock:
            lists = self.store.select("feature_flag_user_lists", project_id=project["id"])
            if any(x["name"] == name for x in lists):
                raise ApiError.validation({"name": ["has already been taken"]})
            iid = max((x["iid"] for x in lists), default=0) + 1
            now = now_iso()
            data = {"iid": iid, "project_id": project["id"], "name": name, "user_xids": xids,
                    "created_at": now, "updated_at": now}  # fmt: skip
            found = self.store.insert(
                "feature_flag_user_lists", data, project_id=project["id"], iid=iid
            )
        return json_response(render_list(found), 201)

    def delete_user_list(self, req: Request) -> Response:
        """A list that a flag's strategy names is kept: 409, as ``ensure_no_associated_strategies`` answers."""
        with self.store.lock:
            found = self._user_list(req)
            flags = self.store.select("feature_flags", project_id=found["project_id"])
            if any(s.get("user_list_id") == found["id"] for f in flags for s in f.get("strategies", [])):
                raise ApiError(409, {"message": ["User list is associated with a strategy"]})
            with self.store.transaction() as conn:
                conn.execute("DELETE FROM feature_flag_user_lists WHERE id = ?", (found["id"],))
        return Response(204)

    def _user_list(self, req: Request) -> dict[str, Any]:
        project = self.api.project(req)
        found = self.store.find(
            "feature_flag_user_lists", project_id=project["id"], iid=int(req.match["list_iid"])
        )
        if found is None:
            raise ApiError(404, NOT_FOUND)
        return found


def render_list(found: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "iid", "project_id", "name", "user_xids", "created_at", "updated_at")
    return {k: found[k] for k in keys}
