"""GitLab's instance feature flags (Flipper), admin only: ``GET /features``,
``POST /features/:name`` and ``DELETE /features/:name``.

Semantics follow GitLab's ``Admin::SetFeatureFlagService`` and Flipper:
- ``value`` true/"100" enables fully (clearing other gates), false/"0" disables (clearing all);
  other numbers set ``percentage_of_actors`` when ``key`` says so, else ``percentage_of_time``.
  An unknown ``key`` with a percentage is a 400, as is a percentage on a fully-enabled flag.
- ``user``/``group``/``namespace``/``project``/``repository`` (comma lists) and ``feature_group``
  (one name, commas and all, as ``Feature::Target`` takes it) enable or disable for those actors
  only; an unknown actor is 400 ``"<name> is not found!"``, any group name is a group.
- Errors are ``{"message": "400 Bad request - <reason>"}``; Grape parameter errors
  ``{"error": ...}``. There is no ``GET /features/:name``: clients list and filter.

Sandbox choice: a percentage above 100 is a 400 here; GitLab lets Flipper's ArgumentError
through (a 500) for that one.
"""

from __future__ import annotations

import re
from typing import Any

from gitlab_sandbox.gitlab_api import API
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response
from gitlab_sandbox.store import Store, now_iso

FEATURE = rf"{API}/features/(?P<name>[^/]+)"
_NUMERIC = re.compile(r"^\d+(\.\d+)?$")
_TARGETS = ("feature_group", "user", "group", "namespace", "project", "repository")
_ENABLE, _DISABLE = ("100", "100.0", "true"), ("0", "0.0", "false")


def _bad_request(reason: str) -> ApiError:
    return ApiError(400, {"message": f"400 Bad request - {reason}"})


class FeaturesApi:
    SCHEMA = """
    CREATE TABLE IF NOT EXISTS features (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def register(self, router: Router) -> None:
        router.add("GET", f"{API}/features", self.list_features)
        router.add("POST", FEATURE, self.set_feature)
        router.add("DELETE", FEATURE, self.delete_feature)

    def list_features(self, req: Request) -> Response:
        features = sorted(self.store.select("features"), key=lambda f: f["name"])
        return json_response([render(feature) for feature in features])

    def delete_feature(self, req: Request) -> Response:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM features WHERE name = ?", (req.match["name"],))
        return Response(204)

    def set_feature(self, req: Request) -> Response:
        name = req.match["name"]
        if not req.has("value"):
            raise ApiError.missing("value")
        value = _text(req.get("value"))
        key = req.get("key")
        given = [target for target in _TARGETS if req.has(target)]
        if key is not None and given:
            raise ApiError(400, {"error": f"key, {given[0]} are mutually exclusive"})
        actors = [actor for target in given for actor in self._actors(target, req.get(target))]
        with self.store.lock:
            found = self.store.find("features", name=name)
            feature = found or {"name": name, "created_at": now_iso(), **_cleared()}
            if given:
                _set_actors(feature, name, value, actors)
            elif value in _ENABLE:
                feature.update(_cleared(), boolean=True)
            elif value in _DISABLE:
                feature.update(_cleared())
            else:
                gate = _percentage_gate(name, value, key)
                if _state(feature) == "on":
                    kind = gate.removeprefix("percentage_of_")
                    raise _bad_request(
                        f"Cannot enable percentage of {kind} for a fully-enabled flag"
                    )
                feature[gate] = _percentage(value)
            if found:
                self.store.update("features", feature)
            else:
                feature = self.store.insert("features", feature, name=name)
        return json_response(render(feature), 201)

    def _actors(self, target: str, raw: Any) -> list[tuple[str, str]]:
        """``(gate, flipper id or group name)`` for each comma-separated name in ``raw``; a
        ``feature_group`` is one name, commas and all."""
        if target == "feature_group":
            group = str(raw or "")
            return [("groups", group)] if group else []
        names = [n.strip() for n in str(raw or "").split(",") if n.strip()]
        return [("actors", self._flipper_id(target, n)) for n in names]

    def _flipper_id(self, target: str, name: str) -> str:
        if target == "user":
            user = self.store.find("users", username=name.removeprefix("@"))
            if user:
                return f"User:{user['id']}"
        elif target in ("group", "namespace"):
            group = self.store.find("groups", full_path=name)
            if group:
                return f"Group:{group['id']}"
        elif target == "project":
            project = self.store.find("projects", path_with_namespace=name)
            if project:
                return f"Project:{project['id']}"
        elif target == "repository" and name.endswith(".git"):
            project = self.store.find("projects", path_with_namespace=name.removesuffix(".git"))
            if project:
                return f"Repository:{project['path_with_namespace']}.git"
        raise _bad_request(f"{name} is not found!")


def _text(value: Any) -> str:
    """The value as Grape hands it over: JSON true/25 arrive as "true"/"25"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _cleared() -> dict[str, Any]:
    return {"boolean": False, "actors": [], "groups": [], "percentage_of_actors": 0,
            "percentage_of_time": 0}  # fmt: skip


def _set_actors(
    feature: dict[str, Any], name: str, value: str, actors: list[tuple[str, str]]
) -> None:
    for gate, actor in actors:
        members = set(feature[gate])
        if value in _ENABLE:
            members.add(actor)
        elif value in _DISABLE:
            members.discard(actor)
        else:
            raise _bad_request(f"Cannot set '{name}' to \"{value}\" for {actor}")
        feature[gate] = sorted(members)


def _percentage_gate(name: str, value: str, key: Any) -> str:
    if key == "percentage_of_actors":
        if not _NUMERIC.match(value):
            raise _bad_request("Not a percentage")
        return "percentage_of_actors"
    if key == "percentage_of_time" or (key is None and _NUMERIC.match(value)):
        if not _NUMERIC.match(value):
            raise _bad_request("Not a percentage")
        return "percentage_of_time"
    shown = f' ("{key}")' if key is not None else ""
    raise _bad_request(f"Cannot set '{name}'{shown} to \"{value}\"")


def _percentage(value: str) -> int | float:
    number = float(value)
    if number > 100:
        raise _bad_request(
            f"value must be a positive number less than or equal to 100, but was {value}"
        )
    return int(number) if number.is_integer() else number


def _state(feature: dict[str, Any]) -> str:
    """Flipper's state: on, conditional when some gate lets some actors in, else off."""
    if feature["boolean"] or feature["percentage_of_time"] == 100:
        return "on"
    if feature["actors"] or feature["groups"] or feature["percentage_of_actors"]:
        return "conditional"
    return "conditional" if feature["percentage_of_time"] else "off"


def render(feature: dict[str, Any]) -> dict[str, Any]:
    """GitLab's Feature entity: gates in Flipper's order, empty and zero gates left out."""
    gates: list[dict[str, Any]] = [{"key": "boolean", "value": bool(feature["boolean"])}]
    for key in ("actors", "percentage_of_actors", "percentage_of_time", "groups"):
        if feature[key]:
            gates.append({"key": key, "value": feature[key]})
    return {"name": feature["name"], "state": _state(feature), "gates": gates, "definition": None}
