"""Project (Unleash) feature flags, in GitLab REST v4's shapes, and ``FlagsApi``, the one
``MODULES`` entry that also brings instance features, user lists and the projects list.

``/projects/:id/feature_flags`` (GET, POST) and ``/feature_flags/:name`` (GET, PUT, DELETE):
every flag is a ``new_version_flag`` whose strategies carry environment scopes; a
``gitlabUserList`` strategy names a user list by ``user_list_id``.

Validation is GitLab's ``Operations::FeatureFlags::Strategy``: parameter keys exactly as the
strategy needs them, percentages strings "0".."100", ``groupId`` ``[a-z]{1,32}``, stickiness
one of four. Model errors answer 400 ``{"message": ["Strategies parameters ..."]}``; a
missing flag is ``{"message": "404 Not found"}``. PUT strategies with an ``id`` update that
strategy (``_destroy: true`` removes it); without one they are added.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from gitlab_sandbox.features import FeaturesApi
from gitlab_sandbox.flag_user_lists import NOT_FOUND, USER_XIDS_RULE, UserListsApi, user_xids_valid
from gitlab_sandbox.gitlab_api import PROJECT, GitLabApi
from gitlab_sandbox.projects import ProjectListApi
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response, paged_json
from gitlab_sandbox.store import ID_BASES, Store, now_iso

ID_BASES.setdefault("feature_flags", 610_000)

FLAGS = f"{PROJECT}/feature_flags"
FLAG = rf"{FLAGS}/(?P<name>[^/]+)"
STRATEGIES: dict[str, tuple[str, ...]] = {
    "default": (),
    "gitlabUserList": (),
    "gradualRolloutUserId": ("groupId", "percentage"),
    "flexibleRollout": ("groupId", "rollout", "stickiness"),
    "userWithId": ("userIds",),
}
STICKINESS = ("default", "userId", "sessionId", "random")
_NAME = re.compile(r"^[a-z]([-_a-z0-9]*[a-z0-9])?$")
_GROUP_ID = re.compile(r"^[a-z]{1,32}$")
_NAME_RULE = ("can contain only lowercase letters, digits, '_' and '-'. "
              "Must start with a letter, and cannot end with '-' or '_'")  # fmt: skip


class FlagsApi:
    """The sandbox's one MODULES entry for rollouts: instance features, project flags and user
    lists, plus the projects list (the endpoint GitLab offers keyset pagination on)."""

    SCHEMA = FeaturesApi.SCHEMA + UserListsApi.SCHEMA + """
    CREATE TABLE IF NOT EXISTS feature_flags (
        id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, name TEXT NOT NULL,
        data TEXT NOT NULL, UNIQUE (project_id, name));
    CREATE TABLE IF NOT EXISTS feature_flag_ids (id INTEGER PRIMARY KEY, data TEXT NOT NULL);
    """  # fmt: skip

    def __init__(self, store: Store) -> None:
        self.parts = [
            FeaturesApi(store), ProjectFlagsApi(store), UserListsApi(store), ProjectListApi(store)
        ]  # fmt: skip

    def register(self, router: Router) -> None:
        for part in self.parts:
            part.register(router)


class ProjectFlagsApi:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.api = GitLabApi(store)  # for its project lookup

    def register(self, router: Router) -> None:
        add = router.add
        add("GET", FLAGS, self.list_flags)
        add("POST", FLAGS, self.create_flag)
        add("GET", FLAG, self.get_flag)
        add("PUT", FLAG, self.update_flag)
        add("DELETE", FLAG, self.delete_flag)

    def list_flags(self, req: Request) -> Response:
        project = self.api.project(req)
        scope = req.get("scope")
        if scope is not None and scope not in ("enabled", "disabled"):
            raise ApiError.not_valid_value("scope")
        flags = self.store.select("feature_flags", project_id=project["id"])
        if scope:
            flags = [f for f in flags if f["active"] == (scope == "enabled")]
        return paged_json(req, flags, self.render)

    def get_flag(self, req: Request) -> Response:
        return json_response(self.render(self._flag(req, self.api.project(req))))

    def create_flag(self, req: Request) -> Response:
        project = self.api.project(req)
        if not req.has("name"):
            raise ApiError.missing("name")
        version = req.get("version", "new_version_flag")
        if version != "new_version_flag":
            raise ApiError(400, {"message": "Version is invalid"})
        active = req.get_bool("active")
        strategies = _array(req, "strategies")
        for i, item in enumerate(strategies):
            for required in ("name", "parameters"):
                if required not in item:
                    raise ApiError.missing(f"strategies[{i}][{required}]")
            for j, scope in enumerate(_array_of(item, "scopes", f"strategies[{i}][scopes]")):
                if "environment_scope" not in scope:
                    raise ApiError.missing(f"strategies[{i}][scopes][{j}][environment_scope]")
        now = now_iso()
        flag = {
            "name": str(req.get("name") or ""),
            "description": req.get("description"),
            "active": True if active is None else active,
            "version": version,
            "created_at": now,
            "updated_at": now,
            "strategies": [],
        }
        with self.store.lock:
            flag["strategies"] = [
                self._apply_strategy(None, item, i) for i, item in enumerate(strategies)
            ]
            self._validate(project, flag)
            flag = self.store.insert(
                "feature_flags", flag, project_id=project["id"], name=flag["name"]
            )
        return json_response(self.render(flag), 201)

    def update_flag(self, req: Request) -> Response:
        project = self.api.project(req)
        active = req.get_bool("active")
        strategies = _array(req, "strategies") if req.has("strategies") else None
        with self.store.lock:
            current = self._flag(req, project)
            flag = copy.deepcopy(current)
            if req.has("name"):
                flag["name"] = str(req.get("name") or "")
            if req.has("description"):
                flag["description"] = req.get("description")
            if active is not None:
                flag["active"] = active
            for i, item in enumerate(strategies or []):
                found = None
                if item.get("id") is not None:
                    found = next((s for s in flag["strategies"] if s["id"] == item["id"]), None)
                    if found is None:
                        raise ApiError(404, NOT_FOUND)
                    if _truthy(item.get("_destroy")):
                        flag["strategies"].remove(found)
                        continue
                updated = self._apply_strategy(found, item, i)
                if found is None:
                    flag["strategies"].append(updated)
                else:
                    flag["strategies"][flag["strategies"].index(found)] = updated
            self._validate(project, flag, current=current)
            flag["updated_at"] = now_iso()
            with self.store.transaction() as conn:
                conn.execute(
                    "UPDATE feature_flags SET name = ?, data = ? WHERE id = ?",
                    (flag["name"], json.dumps(flag), flag["id"]),
                )
        return json_response(self.render(flag))

    def delete_flag(self, req: Request) -> Response:
        with self.store.lock:
            flag = self._flag(req, self.api.project(req))
            with self.store.transaction() as conn:
                conn.execute("DELETE FROM feature_flags WHERE id = ?", (flag["id"],))
        return json_response(self.render(flag))

    def _flag(self, req: Request, project: dict[str, Any]) -> dict[str, Any]:
        found = self.store.find("feature_flags", project_id=project["id"], name=req.match["name"])
        if found is None:
            raise ApiError(404, NOT_FOUND)
        return found

    def _apply_strategy(
        self, current: dict[str, Any] | None, item: dict[str, Any], i: int
    ) -> dict[str, Any]:
        strategy = copy.deepcopy(current) if current else {"id": self._next_id(), "scopes": []}
        if "name" in item:
            if current and item["name"] != current["name"] and current["name"] == "gitlabUserList":
                strategy["user_list_id"] = None  # as GitLab's UpdateService does
            strategy["name"] = item["name"]
        strategy.setdefault("name", None)
        if "parameters" in item:
            strategy["parameters"] = _json_param(item["parameters"])
        strategy.setdefault("parameters", None)
        if item.get("user_list_id") is not None:
            if not str(item["user_list_id"]).isdigit():
                raise ApiError.invalid(f"strategies[{i}][user_list_id]")
            strategy["user_list_id"] = int(item["user_list_id"])
        for scope in _array_of(item, "scopes", f"strategies[{i}][scopes]"):
            found = next((s for s in strategy["scopes"] if s["id"] == scope.get("id")), None)
            if scope.get("id") is not None and found is None:
                raise ApiError(404, NOT_FOUND)
            if found is not None and _truthy(scope.get("_destroy")):
                strategy["scopes"].remove(found)
            elif found is not None:
                found["environment_scope"] = scope.get(
                    "environment_scope", found["environment_scope"]
                )
            else:
                strategy["scopes"].append(
                    {"id": self._next_id(), "environment_scope": scope.get("environment_scope")}
                )
        return strategy

    def _validate(
        self, project: dict[str, Any], flag: dict[str, Any], current: dict[str, Any] | None = None
    ) -> None:
        errors: list[str] = []
        name = flag["name"]
        if not name:
            errors.append("Name can't be blank")
        elif not _NAME.match(name):
            errors.append(f"Name {_NAME_RULE}")
        elif not 2 <= len(name) <= 63:
            errors.append("Name is too long (maximum is 63 characters)" if len(name) > 63
                          else "Name is too short (minimum is 2 characters)")  # fmt: skip
        other = self.store.find("feature_flags", project_id=project["id"], name=name)
        if other and (current is None or other["id"] != current["id"]):
            errors.append("Name has already been taken")
        for strategy in flag["strategies"]:
            errors += self._strategy_errors(project, strategy)
        if errors:
            raise ApiError(400, {"message": list(dict.fromkeys(errors))})

    def _strategy_errors(self, project: dict[str, Any], strategy: dict[str, Any]) -> list[str]:
        name, params = strategy["name"], strategy["parameters"]
        errors: list[str] = []
        user_list_id = strategy.get("user_list_id")
        if user_list_id is not None:
            found = self.store.find("feature_flag_user_lists", id=int(user_list_id))
            if found is None:
                raise ApiError(404, NOT_FOUND)
            if found["project_id"] != project["id"]:
                errors.append("Strategies user list must belong to the same project")
        if name == "gitlabUserList" and user_list_id is None:
            errors.append("Strategies user list can't be blank")
        elif name != "gitlabUserList" and user_list_id is not None:
            errors.append("Strategies user list must be blank")
        for scope in strategy["scopes"]:
            if not scope.get("environment_scope"):
                errors.append("Strategies scopes environment scope can't be blank")
        if name not in STRATEGIES:
            return ["Strategies name strategy name is invalid", *errors]
        if not isinstance(params, dict) or sorted(params) != sorted(STRATEGIES[name]):
            return ["Strategies parameters are invalid", *errors]
        problems: list[str] = []
        if name == "gradualRolloutUserId":
            if not _in_range(params["percentage"]):
                problems.append("percentage must be a string between 0 and 100 inclusive")
            if not _group_id(params["groupId"]):
                problems.append("groupId parameter is invalid")
        elif name == "flexibleRollout":
            if params["stickiness"] not in STICKINESS:
                problems.append(
                    "stickiness parameter must be default, userId, sessionId, or random"
                )
            if not _group_id(params["groupId"]):
                problems.append("groupId parameter is invalid")
            if not _in_range(params["rollout"]):
                problems.append("rollout must be a string between 0 and 100 inclusive")
        elif name == "userWithId" and not user_xids_valid(params["userIds"]):
            problems.append(f"userIds {USER_XIDS_RULE}")
        return [f"Strategies parameters {problem}" for problem in problems] + errors

    def _next_id(self) -> int:
        """Strategy and scope ids, from one sequence."""
        return int(self.store.insert("feature_flag_ids", {})["id"])

    def render(self, flag: dict[str, Any]) -> dict[str, Any]:
        def strategy(s: dict[str, Any]) -> dict[str, Any]:
            user_list = None
            if s.get("user_list_id") is not None:
                found = self.store.find("feature_flag_user_lists", id=int(s["user_list_id"]))
                user_list = found and {k: found[k] for k in ("id", "iid", "name", "user_xids")}
            scopes = [
                {"id": c["id"], "environment_scope": c["environment_scope"]} for c in s["scopes"]
            ]
            return {"id": s["id"], "name": s["name"], "parameters": s["parameters"],
                    "scopes": scopes, "user_list": user_list}  # fmt: skip

        keys = ("name", "description", "active", "version", "created_at", "updated_at")
        strategies = sorted(flag["strategies"], key=lambda s: s["id"])
        return {
            **{k: flag[k] for k in keys},
            "scopes": [],
            "strategies": [strategy(s) for s in strategies],
        }


def _array(req: Request, name: str) -> list[dict[str, Any]]:
    value = req.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ApiError.invalid(name)
    return value


def _array_of(item: dict[str, Any], key: str, label: str) -> list[dict[str, Any]]:
    value = item.get(key) or []
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise ApiError.invalid(label)
    return value


def _json_param(value: Any) -> Any:
    """Grape's JSON type: an object, or a string holding one."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _in_range(value: Any) -> bool:
    return isinstance(value, str) and value.isdigit() and value.isascii() and 0 <= int(value) <= 100


def _group_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_GROUP_ID.match(value))
