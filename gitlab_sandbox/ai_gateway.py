"""The AI gateway's model definitions, served from the shipped catalog, with overrides for tests.

- ``GET /ai-gateway/v1/models/definitions`` answers as GitLab's AI gateway does
  (``ai_gateway/api/v1/models/get_definitions.py``): ``{"models": [{name, identifier, provider,
  deprecation, description, cost_indicator}], "unit_primitives": [...]}``. A model's ``deprecation``
  is ``{deprecation_date, removal_version}`` or null: the gateway knows no retirement date. Its
  ``name`` carries `` - <provider>`` and ``provider`` is a display name ("Vertex"), as there.
- No token: the real gateway skips authentication on this path (its ``_SKIP_ENDPOINTS``); the
  Rails monolith reads it to list models. GitLab's rate limit does not apply either (another
  service), but injected faults do, so a client's error mapping can be tried.
- ``GET`` / ``PUT /-/sandbox/ai-gateway/models`` (the sandbox token): the overrides. A ``PUT`` body
  ``{"models": {"<identifier>": {field: value, ...} | null}}`` replaces the previous overrides:
  the fields are laid over the served entry (``deprecation`` null un-deprecates), an identifier
  the catalog lacks adds a model (``name`` required), and null leaves a model out. ``{}`` restores
  the catalog's answer.

The models are the entries of the ``catalog`` package's ``models.yml``, read as data (the sandbox
imports nothing of the product); the unit primitives come from its ``features.yml``.
"""

from __future__ import annotations

import copy
import functools
from datetime import date
from importlib import resources
from typing import Any

import yaml

from gitlab_sandbox.faults import ADMIN
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response
from gitlab_sandbox.store import Store

PREFIX = "/ai-gateway"
DEFINITIONS = f"{PREFIX}/v1/models/definitions"
OVERRIDES = f"{ADMIN}/ai-gateway/models"
#: The gateway's display names for the catalog's provider keys.
PROVIDER_NAMES = {
    "anthropic": "Anthropic", "vertex_ai": "Vertex", "fireworks_ai": "Fireworks", "openai": "OpenAI",
    "mistral": "Mistral", "bedrock": "Bedrock",
}
FIELDS = ("name", "provider", "description", "cost_indicator", "deprecation")

SCHEMA = """
CREATE TABLE IF NOT EXISTS ai_gateway_config (id INTEGER PRIMARY KEY, data TEXT NOT NULL);
"""


@functools.cache
def _shipped(name: str) -> list[dict[str, Any]]:
    text = resources.files("catalog").joinpath(name).read_text(encoding="utf-8")
    return list(yaml.safe_load(text) or [])


def shipped_models() -> list[dict[str, Any]]:
    """The catalog's models as the gateway serves them, in the catalog's order."""
    return [_served(entry) for entry in _shipped("models.yml")]


def _served(entry: dict[str, Any]) -> dict[str, Any]:
    provider = PROVIDER_NAMES.get(entry["provider"], entry["provider"])
    deprecation = entry.get("deprecation") or {}
    served = None
    if deprecation.get("deprecation_date") and deprecation.get("removal_version"):  # the gateway requires both
        served = {"deprecation_date": _iso(deprecation["deprecation_date"]), "removal_version": str(deprecation["removal_version"])}
    return {
        "name": f"{entry['name']} - {provider}", "identifier": entry["gitlab_identifier"], "provider": provider,
        "deprecation": served, "description": entry.get("description") or None, "cost_indicator": entry.get("cost_indicator"),
    }


def _unit_primitive(feature: dict[str, Any]) -> dict[str, Any]:
    model = feature["current_model"]
    return {
        "feature_setting": feature["feature_setting"], "default_model": model, "default_models": [model],
        "models_for_tags": {}, "models_for_size_preference": {}, "selectable_models": [model], "beta_models": [],
        "deprecated_models": [], "dev": None, "unit_primitives": [feature["name"]],
    }


def definitions(overrides: dict[str, Any]) -> dict[str, Any]:
    """The answer of ``GET /v1/models/definitions`` under ``overrides`` (already checked)."""
    models = []
    shipped = shipped_models()
    for model in shipped:
        patch = overrides.get(model["identifier"], {})
        if patch is not None:
            models.append({**model, **copy.deepcopy(patch)})
    known = {m["identifier"] for m in shipped}
    for identifier in sorted(set(overrides) - known):
        patch = overrides[identifier]
        if patch is not None:
            added = {"provider": None, "deprecation": None, "description": None, "cost_indicator": None, **copy.deepcopy(patch)}
            models.append({"name": added.pop("name"), "identifier": identifier, **added})
    return {"models": models, "unit_primitives": [_unit_primitive(f) for f in _shipped("features.yml")]}


def check_overrides(body: dict[str, Any]) -> dict[str, Any]:
    """The overrides of a ``PUT`` body, or ``ApiError`` 400 naming the first problem."""
    unknown = sorted(set(body) - {"models"})
    if unknown:
        raise _bad(f"unknown key {unknown[0]!r}; the body is {{\"models\": {{\"<identifier>\": {{...}} | null}}}}")
    models = body.get("models", {})
    if not isinstance(models, dict):
        raise _bad("models must be an object keyed by model identifier")
    known = {m["identifier"] for m in shipped_models()}
    for identifier, patch in models.items():
        if patch is None:
            continue
        if not isinstance(patch, dict):
            raise _bad(f"models.{identifier} must be an object or null")
        extra = sorted(set(patch) - set(FIELDS))
        if extra:
            raise _bad(f"models.{identifier}.{extra[0]} is not a field; fields: {', '.join(FIELDS)}")
        if identifier not in known and "name" not in patch:
            raise _bad(f"models.{identifier}.name is missing (the catalog has no such model to override)")
        for name in ("name", "provider", "description", "cost_indicator"):
            value = patch.get(name)
            if name not in patch or (value is None and name != "name"):  # only the name cannot be null
                continue
            if not isinstance(value, str) or not value.strip():
                raise _bad(f"models.{identifier}.{name} must be a non-empty string" + ("" if name == "name" else " or null"))
        if "deprecation" in patch:
            _check_deprecation(identifier, patch["deprecation"])
    return models


def _check_deprecation(identifier: str, value: Any) -> None:
    where = f"models.{identifier}.deprecation"
    if value is None:
        return
    if not isinstance(value, dict) or set(value) != {"deprecation_date", "removal_version"}:
        raise _bad(f"{where} must be null or {{\"deprecation_date\": \"YYYY-MM-DD\", \"removal_version\": \"<major.minor>\"}}")
    try:
        date.fromisoformat(str(value["deprecation_date"]))
    except ValueError:
        raise _bad(f"{where}.deprecation_date is not a YYYY-MM-DD date") from None
    if not isinstance(value["removal_version"], str) or not value["removal_version"].strip():
        raise _bad(f"{where}.removal_version must be a non-empty string")


def _bad(message: str) -> ApiError:
    return ApiError(400, {"error": message})


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


class AiGatewayApi:
    SCHEMA = SCHEMA

    def __init__(self, store: Store) -> None:
        self.store = store

    def register(self, router: Router) -> None:
        router.add("GET", DEFINITIONS, self.get_definitions, auth=False)
        router.add("GET", OVERRIDES, self.get_overrides)
        router.add("PUT", OVERRIDES, self.put_overrides)

    def _overrides(self) -> dict[str, Any]:
        row = self.store.find("ai_gateway_config")
        return dict(row["models"]) if row else {}

    def get_definitions(self, req: Request) -> Response:
        return json_response(definitions(self._overrides()))

    def get_overrides(self, req: Request) -> Response:
        return json_response({"models": self._overrides()})

    def put_overrides(self, req: Request) -> Response:
        models = check_overrides(req.body)
        with self.store.lock:
            row = self.store.find("ai_gateway_config")
            if row is None:
                self.store.insert("ai_gateway_config", {"models": models})
            else:
                self.store.update("ai_gateway_config", {**row, "models": models})
        return json_response({"models": models})
