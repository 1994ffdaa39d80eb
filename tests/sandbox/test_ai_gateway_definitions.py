"""The sandbox's AI gateway over real HTTP: model definitions in the gateway's shape, from the catalog, with overrides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gitlab_sandbox.gitlab import GitLabSandbox
from model_migration.catalog import load_catalog

TOKEN, GUEST = "gateway-token", "gateway-guest"
CATALOG = load_catalog()
MODEL_KEYS = {"name", "identifier", "provider", "deprecation", "description", "cost_indicator"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitLabSandbox]:
    server = GitLabSandbox(tmp_path_factory.mktemp("ai-gateway") / "gitlab.sqlite", token=TOKEN, guest_token=GUEST)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_overrides(sandbox: GitLabSandbox) -> Iterator[None]:
    yield
    put(sandbox, {})
    sandbox.clear_faults()


def definitions(sandbox: GitLabSandbox) -> dict[str, Any]:
    answer = requests.get(f"{sandbox.url}/ai-gateway/v1/models/definitions", timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def models(sandbox: GitLabSandbox) -> dict[str, dict[str, Any]]:
    return {m["identifier"]: m for m in definitions(sandbox)["models"]}


def put(sandbox: GitLabSandbox, body: dict[str, Any], token: str | None = TOKEN) -> requests.Response:
    headers = {"PRIVATE-TOKEN": token} if token else {}
    return requests.put(f"{sandbox.url}/-/sandbox/ai-gateway/models", json=body, headers=headers, timeout=10)


def test_definitions_are_the_catalogs_models_in_the_gateways_shape(sandbox: GitLabSandbox) -> None:
    """Without a token, every catalog model is served with the gateway's fields; a deprecation has no retirement date."""
    body = definitions(sandbox)
    assert [m["identifier"] for m in body["models"]] == [m.gitlab_identifier for m in CATALOG.models]
    assert all(set(m) == MODEL_KEYS for m in body["models"])
    gecko = {m["identifier"]: m for m in body["models"]}["code_gecko_002"]
    assert gecko["name"] == "code-gecko@002 - Vertex" and gecko["provider"] == "Vertex"
    assert gecko["deprecation"] == {"deprecation_date": "2024-04-09", "removal_version": "17.11"}
    deprecated = {m["identifier"] for m in body["models"] if m["deprecation"]}
    assert deprecated == {m.gitlab_identifier for m in CATALOG.models if m.deprecation}
    settings = {u["feature_setting"]: u for u in body["unit_primitives"]}
    assert settings["duo_chat"]["default_model"] == CATALOG.feature("duo_chat").current_model


def test_overrides_need_the_sandbox_token(sandbox: GitLabSandbox) -> None:
    """Reading the definitions is open; changing them is not: 401 without the token, 403 for a Guest."""
    body = {"models": {"code_gecko_002": {"deprecation": None}}}
    assert put(sandbox, body, token=None).status_code == 401
    assert put(sandbox, body, token=GUEST).status_code == 403
    assert models(sandbox)["code_gecko_002"]["deprecation"] is not None


def test_overrides_move_drop_add_and_restore(sandbox: GitLabSandbox) -> None:
    """A PUT moves a removal, un-deprecates, leaves out and adds models; GET shows it; ``{}`` restores the catalog's answer."""
    shipped = definitions(sandbox)
    body = {"models": {
        "code_gecko_002": {"deprecation": {"deprecation_date": "2024-04-09", "removal_version": "17.5"}},
        "claude_3_7_sonnet_20250219": {"deprecation": None},
        "claude_sonnet_4_5_vertex": None,
        "gemini_2_5_flash_vertex": {"name": "Gemini 2.5 Flash - Vertex", "provider": "Vertex"},
    }}
    assert put(sandbox, body).json() == body
    served = models(sandbox)
    assert served["code_gecko_002"]["deprecation"]["removal_version"] == "17.5"
    assert served["claude_3_7_sonnet_20250219"]["deprecation"] is None
    assert "claude_sonnet_4_5_vertex" not in served
    assert served["gemini_2_5_flash_vertex"] == {
        "name": "Gemini 2.5 Flash - Vertex", "identifier": "gemini_2_5_flash_vertex", "provider": "Vertex",
        "deprecation": None, "description": None, "cost_indicator": None,
    }
    read = requests.get(f"{sandbox.url}/-/sandbox/ai-gateway/models", headers={"PRIVATE-TOKEN": TOKEN}, timeout=10)
    assert read.json() == body
    assert put(sandbox, {}).status_code == 200
    assert definitions(sandbox) == shipped


@pytest.mark.parametrize(("body", "problem"), [
    ({"model": {}}, "unknown key 'model'"),
    ({"models": []}, "models must be an object"),
    ({"models": {"new_model": {"provider": "Vertex"}}}, "models.new_model.name is missing"),
    ({"models": {"code_gecko_002": {"retirement_date": "2025-04-09"}}}, "models.code_gecko_002.retirement_date is not a field"),
    ({"models": {"code_gecko_002": {"deprecation": {"deprecation_date": "soon", "removal_version": "17.11"}}}}, "deprecation_date"),
    ({"models": {"code_gecko_002": {"deprecation": {"deprecation_date": "2024-04-09"}}}}, "must be null or"),
    ({"models": {"code_gecko_002": {"name": ""}}}, "name must be a non-empty string"),
])
def test_a_bad_override_is_refused_and_the_previous_one_kept(sandbox: GitLabSandbox, body: dict[str, Any], problem: str) -> None:
    """A malformed PUT is a 400 naming the field, and what was set before still holds."""
    kept = {"models": {"code_gecko_002": {"deprecation": None}}}
    assert put(sandbox, kept).status_code == 200
    refused = put(sandbox, body)
    assert refused.status_code == 400 and problem in refused.json()["error"]
    assert models(sandbox)["code_gecko_002"]["deprecation"] is None


def test_overrides_survive_a_restart(tmp_path: Path) -> None:
    """Overrides live in the sandbox's state file, as the rest of its state does."""
    state = tmp_path / "gitlab.sqlite"
    with GitLabSandbox(state, token=TOKEN) as first:
        assert put(first, {"models": {"code_gecko_002": {"deprecation": None}}}).status_code == 200
    with GitLabSandbox(state, token=TOKEN) as again:
        assert models(again)["code_gecko_002"]["deprecation"] is None


def test_faults_apply_to_the_gateway_and_gitlabs_rate_limit_does_not(sandbox: GitLabSandbox) -> None:
    """An injected fault answers the gateway's path; GitLab's per-token budget neither counts nor limits it."""
    sandbox.inject_fault(r"^/ai-gateway/", "502", count=1)
    url = f"{sandbox.url}/ai-gateway/v1/models/definitions"
    assert requests.get(url, timeout=10).status_code == 502
    sandbox.set_rate_limit(1)
    try:
        answers = [requests.get(url, timeout=10) for _ in range(3)]
    finally:
        sandbox.set_rate_limit(None)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert not any(name.lower().startswith("ratelimit") for name in answers[0].headers)
