"""Who a feature flag lets in, as the application asks it: gates for the simulated AI gateway.

A *gate* answers ``gate(user_id) -> bool`` (true: this user gets the candidate model) and is
plugged into ``GatewaySim.set_gate(feature, gate)``, so the simulated traffic follows the flag a
rollout writes, one gate per kind of flag target:

- ``UnleashGate``: a flag on an Unleash server, through the real Unleash Python SDK
  (``UnleashClient``, polling the client API with a backend token every ``refresh_seconds``). The
  context is ``{"userId": <user id>, "properties": {"gitlabTeamMember": "true" | "false"}}``.
- ``ProjectFlagGate``: a GitLab project feature flag, read from the sandbox's REST API every
  ``refresh`` seconds and evaluated as an Unleash SDK evaluates what GitLab's Unleash API serves
  for one environment (``project_flag_enabled``): ``default``, ``flexibleRollout`` and
  ``gradualRolloutUserId`` with Unleash's normalized hash (MurmurHash3 x86 32-bit of
  ``"<groupId>:<userId>"``, modulo 100, plus 1, at most the percentage), ``userWithId`` and
  ``gitlabUserList`` (GitLab serves a user list as ``userWithId``).
- ``InstanceFlagGate``: a GitLab instance flag, read from ``GET /features``, evaluated by
  ``features_api.enabled_for`` (Flipper's crc32 percentage of actors, team members as the
  ``gitlab_team_members`` group).

User ids are the gateway's own (``User:<n>``); ``team_members`` lists the ids that are GitLab
team members. A gate never raises while routing: a failed poll keeps the last flag it read.
"""

from __future__ import annotations

import fnmatch
import json
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import quote

from UnleashClient import UnleashClient
from UnleashClient.cache import BaseCache
from UnleashClient.utils import InstanceAllowType

from gitlab_sandbox.features_api import enabled_for

TEAM_MEMBER_FIELD = "gitlabTeamMember"
TEAM_MEMBERS_GROUP = "gitlab_team_members"
_MASK = 0xFFFFFFFF


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit, unsigned: the hash every Unleash SDK buckets users with."""

    def mix(k: int) -> int:
        k = (k * 0xCC9E2D51) & _MASK
        k = ((k << 15) | (k >> 17)) & _MASK
        return (k * 0x1B873593) & _MASK

    h = seed & _MASK
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        h ^= mix(int.from_bytes(data[i : i + 4], "little"))
        h = ((h << 13) | (h >> 19)) & _MASK
        h = (h * 5 + 0xE6546B64) & _MASK
    if len(data) > whole:
        h ^= mix(int.from_bytes(data[whole:], "little"))
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    return h ^ (h >> 16)


def normalized_hash(identifier: str, group_id: str, normalizer: int = 100) -> int:
    """Unleash's bucket for ``identifier`` in ``group_id``: 1..``normalizer``; in at p % when it is at most p."""
    return murmur3_32(f"{group_id}:{identifier}".encode()) % normalizer + 1


def _in_rollout(identifier: str | None, group_id: str, percentage: str | None) -> bool:
    try:
        wanted = int(percentage or 0)
    except ValueError:
        return False
    return bool(identifier) and wanted > 0 and normalized_hash(str(identifier), group_id) <= wanted


def _strategy_on(strategy: Mapping[str, Any], user_id: str) -> bool:
    name, params = strategy.get("name"), strategy.get("parameters") or {}
    if name == "default":
        return True
    if name == "gradualRolloutUserId":
        return _in_rollout(user_id, str(params.get("groupId", "")), params.get("percentage"))
    if name == "flexibleRollout":
        stickiness = params.get("stickiness", "default")
        if stickiness == "random":
            return random.randint(1, 100) <= int(params.get("rollout") or 0)
        sticky = user_id if stickiness in ("default", "userId") else None  # the gateway has no sessions
        return _in_rollout(sticky, str(params.get("groupId", "")), params.get("rollout"))
    if name == "userWithId":
        return user_id in [u.strip() for u in str(params.get("userIds", "")).split(",")]
    if name == "gitlabUserList":
        listed = (strategy.get("user_list") or {}).get("user_xids", "")
        return user_id in [u.strip() for u in str(listed).split(",")]
    return False  # a strategy GitLab would not serve


def project_flag_enabled(flag: Mapping[str, Any] | None, environment: str, user_id: str) -> bool:
    """Whether a project flag (as ``GET /projects/:id/feature_flags/:name`` shows it) lets ``user_id``
    in within ``environment``: the flag active and any strategy whose scopes match the environment on."""
    if not flag or not flag.get("active"):
        return False
    for strategy in flag.get("strategies") or []:
        scopes = [str(s.get("environment_scope", "")) for s in strategy.get("scopes") or []]
        if any(fnmatch.fnmatchcase(environment, scope) for scope in scopes) and _strategy_on(strategy, user_id):
            return True
    return False


class _Poller:
    """Reads one flag from the sandbox's REST API on a daemon thread; a failed read keeps the last one."""

    def __init__(self, url: str, token: str, path: str, refresh: float) -> None:
        self._request = urllib.request.Request(url.rstrip("/") + path, headers={"PRIVATE-TOKEN": token})
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.refresh = refresh
        self.found: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flag-gate", daemon=True)

    def poll(self) -> None:
        try:
            with self._opener.open(self._request, timeout=5) as answer:
                self.found = self.pick(json.loads(answer.read()))
        except urllib.error.HTTPError as err:
            if err.code == 404:
                self.found = None  # the flag was deleted: off
        except (OSError, ValueError):
            pass

    def pick(self, body: Any) -> Any:
        return body

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh):
            self.poll()

    def start(self) -> None:
        self.poll()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class ProjectFlagGate(_Poller):
    """A GitLab project feature flag in one environment (see the module docstring)."""

    def __init__(self, url: str, token: str, project: str, flag: str, *, environment: str = "production",
                 refresh: float = 0.25) -> None:  # fmt: skip
        super().__init__(url, token, f"/api/v4/projects/{quote(project, safe='')}/feature_flags/{quote(flag, safe='')}", refresh)
        self.environment = environment

    def __call__(self, user_id: str) -> bool:
        return project_flag_enabled(self.found, self.environment, user_id)

    def __enter__(self) -> ProjectFlagGate:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InstanceFlagGate(_Poller):
    """A GitLab instance flag, as ``Feature.enabled?(flag, user)`` answers on that instance."""

    def __init__(self, url: str, token: str, flag: str, *, team_members: Collection[str] = (), refresh: float = 0.25) -> None:
        super().__init__(url, token, "/api/v4/features", refresh)
        self.flag, self.team_members = flag, frozenset(team_members)

    def pick(self, body: Any) -> Any:
        return next((f for f in body if isinstance(f, dict) and f.get("name") == self.flag), None)

    def __call__(self, user_id: str) -> bool:
        return enabled_for(self.found, user_id, groups=[TEAM_MEMBERS_GROUP] if user_id in self.team_members else [], time_roll=0.0)

    def __enter__(self) -> InstanceFlagGate:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _MemoryCache(BaseCache):
    """The SDK's cache in memory: nothing written under the user's cache directory."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def mset(self, data: dict[str, Any]) -> None:
        self._data.update(data)

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def exists(self, key: str) -> bool:
        return key in self._data

    def destroy(self) -> None:
        self._data.clear()


class UnleashGate:
    """A flag on an Unleash server, through the Unleash Python SDK with a backend token (its
    environment is the token's). ``start`` fetches the flags once before it returns."""

    def __init__(self, url: str, token: str, flag: str, *, team_members: Collection[str] = (),
                 team_field: str = TEAM_MEMBER_FIELD, refresh_seconds: int = 1, app_name: str = "ai-gateway-sim") -> None:  # fmt: skip
        self.flag, self.team_members, self.team_field = flag, frozenset(team_members), team_field
        self.client = UnleashClient(
            url=f"{url.rstrip('/')}/api", app_name=app_name, custom_headers={"Authorization": token},
            refresh_interval=refresh_seconds, disable_metrics=True, cache=_MemoryCache(),
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
        )  # fmt: skip

    def context(self, user_id: str) -> dict[str, Any]:
        return {"userId": user_id, "properties": {self.team_field: "true" if user_id in self.team_members else "false"}}

    def __call__(self, user_id: str) -> bool:
        return bool(self.client.is_enabled(self.flag, self.context(user_id)))

    def start(self) -> None:
        self.client.initialize_client()

    def stop(self) -> None:
        self.client.destroy()

    def __enter__(self) -> UnleashGate:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

