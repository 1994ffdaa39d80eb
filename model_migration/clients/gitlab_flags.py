"""Feature flags through python-gitlab: GitLab's instance flags (admin) and project flags.

Mixed into ``GitLabClient``; methods use its ``_gl`` and ``_project`` and map every failure to
``GitLabError`` with ``gitlab_call``.

python-gitlab's ``FeatureManager.set`` has no ``key`` parameter, but its ``**kwargs`` reach
``http_request``, which sends them as query parameters; GitLab (Grape) reads query and body
parameters alike, so ``key`` arrives. ``tests/clients/test_gitlab_flags.py`` proves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gitlab.exceptions
from pydantic import BaseModel, ConfigDict

from model_migration.clients.gitlab_errors import gitlab_call
from model_migration.domain.errors import ErrorType, GitLabError
from model_migration.domain.models import FlagGate, FlagStrategy, InstanceFlag, ProjectFlag

#: One actor path (username, group or project path) or several.
Actors = str | Sequence[str] | None


class FlagUserList(BaseModel):
    """A project's feature flag user list, for ``gitlabUserList`` strategies."""

    model_config = ConfigDict(frozen=True)
    id: int
    iid: int
    name: str
    user_xids: list[str]


class FlagsMixin:
    """GitLab's instance feature flags (an admin token) and the project's Unleash flags."""

    _gl: Any
    _project: Any

    # -- instance feature flags (admin) ------------------------------------------------------

    @gitlab_call("set feature flag {name!r}")
    def set_feature(
        self,
        name: str,
        value: bool | int | float,
        *,
        key: str | None = "percentage_of_actors",
        feature_group: str | None = None,
        user: Actors = None,
        group: Actors = None,
        project: Actors = None,
        namespace: Actors = None,
        force: bool = False,
    ) -> InstanceFlag:
        """One POST. ``value`` True/False switches the flag (or, with an actor, the actor) on or
        off; a number is a percentage of ``key``. GitLab refuses a percentage on a fully
        enabled flag: roll back with ``False`` first.

        ``user``, ``group``, ``project`` and ``namespace`` take one path or several (sent
        comma-separated; GitLab refuses all of them, changing nothing, if one is unknown).
        ``feature_group`` is one Flipper group name: GitLab does not split it. ``force`` skips
        GitLab's name checks (a licensed feature's name is refused without it)."""
        extra: dict[str, Any] = {}
        if key is not None and not isinstance(value, bool):
            extra["key"] = key
        if force:
            extra["force"] = "true"
        if namespace is not None:
            extra["namespace"] = _joined(namespace)
        try:
            found = self._gl.features.set(
                name, value, feature_group=feature_group, user=_joined(user), group=_joined(group),
                project=_joined(project), **extra,
            )  # fmt: skip
        except gitlab.exceptions.GitlabError as exc:
            if exc.response_code == 403:
                raise _admin_only(f"set feature flag {name!r}") from exc
            raise
        return _instance_flag(found.attributes)

    @gitlab_call("read feature flag {name!r}")
    def get_feature(self, name: str) -> InstanceFlag | None:
        """GitLab has no ``GET /features/:name``: this lists and picks (``None`` if unset)."""
        return next((flag for flag in self.list_features() if flag.name == name), None)

    @gitlab_call("list feature flags")
    def list_features(self) -> list[InstanceFlag]:
        try:
            return [_instance_flag(f.attributes) for f in self._gl.features.list(get_all=True)]
        except gitlab.exceptions.GitlabError as exc:
            if exc.response_code == 403:
                raise _admin_only("list feature flags") from exc
            raise

    @gitlab_call("delete feature flag {name!r}")
    def delete_feature(self, name: str) -> None:
        """Idempotent: GitLab answers 204 whether or not the flag exists."""
        try:
            self._gl.features.delete(name)
        except gitlab.exceptions.GitlabError as exc:
            if exc.response_code == 403:
                raise _admin_only(f"delete feature flag {name!r}") from exc
            raise

    # -- project (Unleash) feature flags -----------------------------------------------------

    @gitlab_call("read project feature flag {name!r}")
    def get_project_flag(self, name: str) -> ProjectFlag | None:
        try:
            return _project_flag(self._project.feature_flags.get(name).attributes)
        except gitlab.exceptions.GitlabGetError as exc:
            if exc.response_code == 404:
                return None
            raise

    @gitlab_call("ensure project feature flag {name!r}")
    def ensure_project_flag(
        self, name: str, description: str, strategies: list[FlagStrategy]
    ) -> ProjectFlag:
        """The flag as it is, or created with these strategies: safe to call again."""
        found = self.get_project_flag(name)
        if found is not None:
            return found
        data = {
            "name": name,
            "description": description,
            "version": "new_version_flag",
            "active": True,
            "strategies": [_strategy_payload(s) for s in strategies],
        }
        try:
            return _project_flag(self._project.feature_flags.create(data).attributes)
        except gitlab.exceptions.GitlabCreateError as exc:
            # Created by someone else in the meantime (or by our own lost answer): take it.
            if exc.response_code == 400 and "has already been taken" in str(exc.error_message):
                again = self.get_project_flag(name)
                if again is not None:
                    return again
            raise

    @gitlab_call("update project feature flag {name!r}")
    def update_project_flag(
        self, name: str, *, active: bool | None = None, strategies: list[FlagStrategy] | None = None
    ) -> ProjectFlag:
        """``strategies`` replace the flag's: one PUT updates those with a known ``id`` and
        removes the rest. Without ``strategies`` nothing is read first."""
        changes: dict[str, Any] = {}
        if active is not None:
            changes["active"] = active
        if strategies is not None:
            current = self._require_flag(name)
            changes["strategies"] = _replacing(current, strategies)
        if not changes:
            return self._require_flag(name)
        return _project_flag(self._project.feature_flags.update(name, changes))

    @gitlab_call("set project feature flag {name!r} to {percentage}%")
    def set_project_flag_percentage(
        self, name: str, percentage: int, strategy: str = "gradualRolloutUserId"
    ) -> ProjectFlag:
        """The flag rolled out to ``percentage`` (0..100) of users, percentages as strings.

        GitLab's PUT can change a strategy in place only by its id, so this reads the flag
        once and then makes the whole change in one PUT: the first strategy of that kind is
        updated (keeping its id, scopes, groupId and stickiness), any other is removed; with
        none of that kind, a new one covers every environment ("*")."""
        if not 0 <= percentage <= 100:
            raise GitLabError(
                f"A rollout percentage is 0..100, not {percentage}", type=ErrorType.GITLAB_INVALID
            )
        if strategy == "gradualRolloutUserId":
            wanted = FlagStrategy.percent_of_users(percentage)
        elif strategy == "flexibleRollout":
            wanted = FlagStrategy.percent_rollout(percentage)
        else:
            raise GitLabError(
                f"Unknown percentage strategy {strategy!r}", type=ErrorType.GITLAB_INVALID
            )
        current = self._require_flag(name)
        same = next((s for s in current.strategies if s.name == strategy), None)
        if same is not None:
            params = {**wanted.parameters, **same.parameters}
            params["percentage" if strategy == "gradualRolloutUserId" else "rollout"] = str(
                percentage
            )
            wanted = wanted.model_copy(
                update={"id": same.id, "scopes": same.scopes, "parameters": params}
            )
        payload = {"strategies": _replacing(current, [wanted])}
        return _project_flag(self._project.feature_flags.update(name, payload))

    @gitlab_call("delete project feature flag {name!r}")
    def delete_project_flag(self, name: str) -> None:
        """Idempotent: a flag that is already gone is fine."""
        try:
            self._project.feature_flags.delete(name)
        except gitlab.exceptions.GitlabDeleteError as exc:
            if exc.response_code != 404:
                raise

    # -- feature flag user lists -------------------------------------------------------------

    @gitlab_call("read feature flag user list {name!r}")
    def get_flag_user_list(self, name: str) -> FlagUserList | None:
        found = self._project.feature_flags_user_lists.list(search=name, get_all=True)
        return next((_user_list(x.attributes) for x in found if x.name == name), None)

    @gitlab_call("ensure feature flag user list {name!r}")
    def ensure_flag_user_list(self, name: str, user_xids: Sequence[str]) -> FlagUserList:
        """The list as it is, or created with these user ids: safe to call again. A list of that
        name with other ids is refused (INVALID) rather than changed behind a running rollout."""
        wanted = [str(x) for x in user_xids]
        found = self.get_flag_user_list(name)
        if found is None:
            data = {"name": name, "user_xids": ",".join(wanted)}
            try:
                return _user_list(self._project.feature_flags_user_lists.create(data).attributes)
            except gitlab.exceptions.GitlabCreateError as exc:
                # Created meanwhile (or by our own lost answer): compare it below.
                if "has already been taken" not in str(exc.error_message):
                    raise
                found = self.get_flag_user_list(name)
                if found is None:
                    raise
        if found.user_xids != wanted:
            raise GitLabError(
                f"Feature flag user list {name!r} exists with other users ({','.join(found.user_xids)})",
                type=ErrorType.GITLAB_INVALID,
            )
        return found

    @gitlab_call("delete feature flag user list {name!r}")
    def delete_flag_user_list(self, name: str) -> None:
        """Idempotent. GitLab refuses (409) to delete a list a strategy still uses."""
        found = self.get_flag_user_list(name)
        if found is None:
            return
        try:
            self._project.feature_flags_user_lists.delete(found.iid)
        except gitlab.exceptions.GitlabDeleteError as exc:
            if exc.response_code != 404:
                raise

    def _require_flag(self, name: str) -> ProjectFlag:
        return _project_flag(self._project.feature_flags.get(name).attributes)


def _joined(actors: Actors) -> str | None:
    if actors is None or isinstance(actors, str):
        return actors
    return ",".join(actors)


def _admin_only(operation: str) -> GitLabError:
    """A 403 from the Features API means the token's user is no administrator."""
    return GitLabError(
        f"GitLab refused to {operation} (403): the Features API needs an administrator's token",
        type=ErrorType.GITLAB_AUTH,
        status=403,
    )


def _user_list(data: dict[str, Any]) -> FlagUserList:
    xids = data.get("user_xids") or ""
    return FlagUserList(
        id=data["id"], iid=data["iid"], name=data["name"], user_xids=[x for x in str(xids).split(",") if x]
    )


def _instance_flag(data: dict[str, Any]) -> InstanceFlag:
    gates = [FlagGate(key=g["key"], value=g.get("value")) for g in data.get("gates") or []]
    return InstanceFlag(name=data["name"], state=data.get("state") or "off", gates=gates)


def _project_flag(data: dict[str, Any]) -> ProjectFlag:
    strategies = [
        FlagStrategy(
            id=s.get("id"),
            name=s["name"],
            parameters={k: str(v) for k, v in (s.get("parameters") or {}).items()},
            scopes=[scope["environment_scope"] for scope in s.get("scopes") or []],
            user_list_id=(s.get("user_list") or {}).get("id"),
        )
        for s in data.get("strategies") or []
    ]
    return ProjectFlag(
        name=data["name"],
        description=data.get("description") or "",
        active=bool(data.get("active")),
        version=data.get("version") or "new_version_flag",
        strategies=strategies,
    )


def _strategy_payload(strategy: FlagStrategy) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": strategy.name,
        "parameters": dict(strategy.parameters),
        "scopes": [{"environment_scope": scope} for scope in strategy.scopes],
    }
    if strategy.user_list_id is not None:
        payload["user_list_id"] = strategy.user_list_id
    return payload


def _replacing(current: ProjectFlag, strategies: list[FlagStrategy]) -> list[dict[str, Any]]:
    """PUT strategies that turn ``current``'s into ``strategies``: keep by id, else add, and
    destroy the ones not kept. Scopes of a kept strategy are left as they are."""
    kept = {s.id for s in strategies if s.id is not None}
    payload = [{"id": s.id, "_destroy": True} for s in current.strategies if s.id not in kept]
    for strategy in strategies:
        item = _strategy_payload(strategy)
        if strategy.id is not None:
            item = {"id": strategy.id, "name": item["name"], "parameters": item["parameters"]}
            if strategy.user_list_id is not None:
                item["user_list_id"] = strategy.user_list_id
        payload.append(item)
    return payload
