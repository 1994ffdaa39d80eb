"""A feature flag in Unleash (8.x), through its admin API: create, roll out to a percentage, switch, archive, read.

Every write sets a value, so calling it again leaves the same state; nothing here retries (Temporal
does). The rollout is one ``flexibleRollout`` strategy per environment: ``set_rollout`` updates the
first one in place, keeping its constraints, segments and variants, and adds one only when there is
none. ``environments`` reads every strategy of every environment, and ``add_strategy``,
``remove_strategy`` and ``ensure_context_field`` serve a flag target that keeps more than the one
rollout (``UnleashFlag``'s team members). Two behaviours of Unleash shape this:

- switching on an environment that has no strategy makes Unleash add a 100 % ``flexibleRollout``
  (stickiness ``default``), so set the rollout before ``enable`` to start lower;
- the open-source edition cannot add environments (``POST /api/admin/environments`` is not served):
  flags live in the built-in ``development`` and ``production``.

Errors are one ``UnleashError`` line, the token never shown: a wrong or underpowered token (401,
403), a missing flag or environment (404), a name taken (409) or any other 4xx is refused, never
retried; 429, 5xx, a connection problem or an answer that is not JSON is retried.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field

from model_migration.domain.errors import ErrorType, ServiceError

#: ErrorType has no flag-service members yet: a refusal maps to one that is never retried, an outage to one that is.
REFUSED = ErrorType.INVALID_INPUT
UNAVAILABLE = ErrorType.GITLAB_TRANSIENT
ROLLOUT = "flexibleRollout"
#: What an update keeps of the strategy it replaces: a person may have narrowed the rollout to some users.
_KEPT = ("constraints", "variants", "segments", "title", "sortOrder")
_AUTH_HINTS = {401: "the token is wrong or revoked", 403: "the token is not an admin token (or lacks the permission)"}


class UnleashError(ServiceError):
    """An Unleash call failed."""


class EnvironmentState(BaseModel):
    """One environment of a flag: switched on or not, and the managed rollout's percentage (None: no such strategy)."""

    model_config = ConfigDict(frozen=True)
    enabled: bool
    percentage: int | None = None
    stickiness: str | None = None
    strategies: int = 0


class FlagState(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    description: str = ""
    environments: dict[str, EnvironmentState]


class Constraint(BaseModel):
    """One condition on the context, e.g. ``gitlabTeamMember IN ["true"]``."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")
    context_name: str = Field(alias="contextName")
    operator: str
    values: tuple[str, ...] = ()
    inverted: bool = False
    case_insensitive: bool = Field(default=False, alias="caseInsensitive")

    def wire(self) -> dict[str, Any]:
        return {"contextName": self.context_name, "operator": self.operator, "values": list(self.values),
                "inverted": self.inverted, "caseInsensitive": self.case_insensitive}


class Strategy(BaseModel):
    """One activation strategy of a flag in an environment, as Unleash lists it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")
    id: str = ""
    name: str
    title: str | None = None
    parameters: dict[str, str] = {}
    constraints: tuple[Constraint, ...] = ()
    segments: tuple[int, ...] = ()
    disabled: bool = False
    sort_order: int = Field(default=0, alias="sortOrder")


class Environment(BaseModel):
    """One environment of a flag: its switch and every strategy, in Unleash's order."""

    model_config = ConfigDict(frozen=True)
    enabled: bool
    strategies: tuple[Strategy, ...] = ()


class UnleashAdmin:
    """One Unleash project through an admin token (``*:*.<secret>`` or a personal access token)."""

    def __init__(self, base_url: str, token: str, project: str = "default", timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.project = project
        self._token = token
        self._timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False  # no .netrc or proxies picked up from the environment
        self._session.headers.update({"Authorization": token, "Accept": "application/json"})

    def close(self) -> None:
        self._session.close()

    def ensure_flag(self, name: str, description: str = "") -> None:
        """The flag exists in the project with this description; an archived one of that name is refused."""
        found = self._call("GET", self._flag(name), f"read flag {name}", missing_ok=True)
        if found is None:
            self._call("POST", f"/api/admin/projects/{_q(self.project)}/features", f"create flag {name}",
                       json={"name": name, "description": description, "type": "release"})
        elif found.get("description", "") != description:
            patch = [{"op": "replace", "path": "/description", "value": description}]
            self._call("PATCH", self._flag(name), f"describe flag {name}", json=patch)

    def set_rollout(self, name: str, environment: str, percentage: int, stickiness: str = "userId", group_id: str | None = None) -> None:
        """The flag's rollout in ``environment`` is ``percentage`` % of ``stickiness`` values, hashed with ``group_id`` (the name)."""
        if isinstance(percentage, bool) or not isinstance(percentage, int) or not 0 <= percentage <= 100:
            raise UnleashError(f"a rollout percentage is a whole number from 0 to 100, not {percentage!r}", type=REFUSED)
        parameters = {"rollout": str(percentage), "stickiness": stickiness, "groupId": group_id or name}
        path = f"{self._flag(name)}/environments/{_q(environment)}/strategies"
        what = f"set flag {name} to {percentage} % in {environment}"
        current = _managed(self._call("GET", path, what) or [])
        if current is None:
            self._call("POST", path, what, json={"name": ROLLOUT, "parameters": parameters})
        elif current.get("parameters") != parameters or current.get("disabled"):
            kept = {key: current[key] for key in _KEPT if current.get(key) is not None}
            body = {**kept, "name": ROLLOUT, "parameters": parameters, "disabled": False}
            self._call("PUT", f"{path}/{_q(current['id'])}", what, json=body)

    def enable(self, name: str, environment: str) -> None:
        """Switch the flag on in ``environment`` (with no strategy yet, Unleash adds a 100 % rollout)."""
        self._call("POST", f"{self._flag(name)}/environments/{_q(environment)}/on", f"enable flag {name} in {environment}")

    def disable(self, name: str, environment: str) -> None:
        self._call("POST", f"{self._flag(name)}/environments/{_q(environment)}/off", f"disable flag {name} in {environment}")

    def archive(self, name: str) -> None:
        """Archive the flag; one already archived, or never made, is left as it is."""
        self._call("DELETE", self._flag(name), f"archive flag {name}", missing_ok=True)

    def state(self, name: str) -> FlagState:
        """Each environment's switch and managed rollout; an archived or unknown flag is a refused UnleashError."""
        body = self._call("GET", self._flag(name), f"read flag {name}")
        environments = {}
        for env in body.get("environments") or []:
            strategies = env.get("strategies") or []
            managed = _managed(strategies)
            parameters = (managed or {}).get("parameters") or {}
            environments[env["name"]] = EnvironmentState(
                enabled=bool(env.get("enabled")), percentage=_percentage(parameters.get("rollout")) if managed else None,
                stickiness=parameters.get("stickiness"), strategies=len(strategies),
            )  # fmt: skip
        return FlagState(name=body.get("name", name), description=body.get("description") or "", environments=environments)

    def environments(self, name: str) -> dict[str, Environment] | None:
        """Each environment's switch and strategies; None for a flag that is not there (never made, or archived)."""
        body = self._call("GET", self._flag(name), f"read flag {name}", missing_ok=True)
        if body is None:
            return None
        found = {}
        for env in body.get("environments") or []:
            strategies = sorted((Strategy.model_validate(_strings(s)) for s in env.get("strategies") or []), key=lambda s: s.sort_order)
            found[env["name"]] = Environment(enabled=bool(env.get("enabled")), strategies=tuple(strategies))
        return found

    def add_strategy(self, name: str, environment: str, strategy: Strategy) -> None:
        """Add ``strategy`` (its name, title, parameters and constraints) to the flag in ``environment``."""
        body = {"name": strategy.name, "parameters": strategy.parameters, "constraints": [c.wire() for c in strategy.constraints],
                "disabled": strategy.disabled, **({"title": strategy.title} if strategy.title else {})}
        path = f"{self._flag(name)}/environments/{_q(environment)}/strategies"
        self._call("POST", path, f"add a {strategy.name} strategy to flag {name} in {environment}", json=body)

    def remove_strategy(self, name: str, environment: str, strategy_id: str) -> None:
        """Remove one strategy; one already gone is fine."""
        path = f"{self._flag(name)}/environments/{_q(environment)}/strategies/{_q(strategy_id)}"
        self._call("DELETE", path, f"remove strategy {strategy_id} of flag {name} in {environment}", missing_ok=True)

    def ensure_context_field(self, field: str, description: str = "", legal_values: tuple[str, ...] = ()) -> None:
        """A custom context field exists (so constraints on it show in Unleash's UI); one already there is left as it is."""
        if self._call("GET", f"/api/admin/context/{_q(field)}", f"read context field {field}", missing_ok=True) is not None:
            return
        body = {"name": field, "description": description, "legalValues": [{"value": v} for v in legal_values], "stickiness": False}
        try:
            self._call("POST", "/api/admin/context", f"create context field {field}", json=body)
        except UnleashError as err:
            if err.status != 409:  # made meanwhile by another worker: there it is
                raise

    def _flag(self, name: str) -> str:
        return f"/api/admin/projects/{_q(self.project)}/features/{_q(name)}"

    def _call(self, method: str, path: str, operation: str, *, json: Any = None, missing_ok: bool = False) -> Any:
        """The answer's JSON (None for an empty one, or a 404 when ``missing_ok``), else one UnleashError."""
        try:
            answer = self._session.request(method, self.base_url + path, json=json, timeout=self._timeout)
        except requests.RequestException as err:
            raise UnleashError(self._scrub(f"could not reach Unleash at {self.base_url} to {operation}: {type(err).__name__}"),
                               type=UNAVAILABLE) from None
        status = answer.status_code
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            raise self._error(answer, operation)
        if not answer.content:
            return None
        try:
            return answer.json()
        except ValueError:
            kind = answer.headers.get("Content-Type", "no content type").split(";")[0]
            raise UnleashError(f"Unleash answered {operation} with {kind}, not JSON ({status})", type=UNAVAILABLE, status=status) from None

    def _error(self, answer: requests.Response, operation: str) -> UnleashError:
        status = answer.status_code
        said = _message(answer)
        where = f"in project {self.project}"
        if status in _AUTH_HINTS:
            text, kind = f"Unleash refused to {operation} ({status}): {_AUTH_HINTS[status]}; it said: {said}", REFUSED
        elif status == 404:
            text, kind = f"Unleash found nothing to {operation} {where} (404): {said}", REFUSED
        elif status == 429 or status >= 500:
            text, kind = f"Unleash failed to {operation} ({status}): {said}", UNAVAILABLE
        else:  # 400, 409 and other client errors: the same request will not do better
            text, kind = f"Unleash rejected {operation} {where} ({status}): {said}", REFUSED
        retry_after = _seconds(answer.headers.get("Retry-After")) if kind == UNAVAILABLE else None
        return UnleashError(self._scrub(text), type=kind, status=status, retry_after=retry_after)

    def _scrub(self, text: str) -> str:
        return " ".join(text.replace(self._token, "[REDACTED]").split()) if self._token else " ".join(text.split())


def _managed(strategies: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The rollout ``set_rollout`` manages: the first ``flexibleRollout`` in Unleash's order."""
    rollouts = [s for s in strategies if s.get("name") == ROLLOUT]
    return min(rollouts, key=lambda s: s.get("sortOrder") or 0) if rollouts else None


def _strings(strategy: dict[str, Any]) -> dict[str, Any]:
    """Unleash's parameters are strings, but an API client may have stored a number."""
    parameters = strategy.get("parameters") or {}
    return {**strategy, "parameters": {k: str(v) for k, v in parameters.items()}, "constraints": strategy.get("constraints") or [],
            "segments": strategy.get("segments") or []}


def _percentage(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _message(answer: requests.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.reason or "no message"
    text = body.get("message") if isinstance(body, dict) else None
    text = " ".join(str(text or answer.reason or "no message").split())
    return text if len(text) <= 300 else text[:297] + "..."


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def _q(part: str) -> str:
    return quote(part, safe="")
