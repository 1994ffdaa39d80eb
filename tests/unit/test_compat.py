"""Infrastructure compatibility: every reason a target model cannot serve the features moved to it."""

from __future__ import annotations

from typing import Any

import pytest

from model_migration.catalog import load_catalog
from model_migration.domain.catalog import Catalog
from model_migration.domain.compat import compatibility_problems
from model_migration.domain.models import FeatureSpec, Maturity, ModelDefinition, ModelParams

SOURCE = "claude_3_7_sonnet_20250219"
TARGET = "claude_sonnet_4_5_20250929"


def _model(**overrides: Any) -> ModelDefinition:
    fields: dict[str, Any] = {
        "name": "Claude Sonnet 4.5",
        "gitlab_identifier": TARGET,
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "version": "20250929",
        "max_context_tokens": 200_000,
        "params": ModelParams(model="claude-sonnet-4-5-20250929"),
    }
    fields.update(overrides)
    return ModelDefinition(**fields)


def _feature(name: str = "duo_chat", **overrides: Any) -> FeatureSpec:
    fields: dict[str, Any] = {
        "name": name,
        "title": name.replace("_", " ").title(),
        "feature_setting": name,
        "prompt_id": f"{name}/base",
        "maturity": Maturity.GA,
        "group": "group::duo chat",
        "dri": "achen",
        "manager": "mkowalski",
        "current_model": SOURCE,
        "dataset": f"{name}.questions.v1",
        "flag": f"{name}_claude_sonnet_4_5",
        "min_context_tokens": 100_000,
    }
    fields.update(overrides)
    return FeatureSpec(**fields)


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return load_catalog()


def test_compatible_model_has_no_problems() -> None:
    """A known provider, a params.model, enough context and a new model give no problems."""
    assert compatibility_problems(_model(), [_feature("duo_chat"), _feature("code_generation")]) == []


def test_unknown_provider() -> None:
    """An unknown provider is reported with the list of known ones."""
    problems = compatibility_problems(_model(provider="acme_ai"), [_feature()])
    assert problems == [
        "provider 'acme_ai' is not served by the AI gateway "
        "(known: anthropic, bedrock, fireworks_ai, mistral, openai, vertex_ai)"
    ]


@pytest.mark.parametrize("params_model", ["", "   ", "\t"], ids=["empty", "spaces", "tab"])
def test_empty_params_model(params_model: str) -> None:
    """An empty or blank params.model is reported."""
    problems = compatibility_problems(_model(params=ModelParams(model=params_model)), [_feature()])
    assert problems == [f"model definition {TARGET} has no params.model"]


@pytest.mark.parametrize("tokens", [0, -1])
def test_missing_max_context_tokens(tokens: int) -> None:
    """A model with no positive context window is reported (and then fits no feature)."""
    problems = compatibility_problems(_model(max_context_tokens=tokens), [_feature(min_context_tokens=1)])
    assert problems == [
        f"model definition {TARGET} has no max_context_tokens",
        f"Duo Chat needs 1 context tokens; {TARGET} offers {tokens}",
    ]


def test_context_window_too_small() -> None:
    """A feature needing more context than the model offers is reported with both numbers."""
    problems = compatibility_problems(
        _model(max_context_tokens=32_000),
        [_feature("duo_chat", min_context_tokens=100_000), _feature("code_generation", min_context_tokens=32_000)],
    )
    assert problems == [f"Duo Chat needs 100000 context tokens; {TARGET} offers 32000"]


def test_context_window_equal_is_enough() -> None:
    """A context window exactly the size a feature needs is enough."""
    assert compatibility_problems(_model(max_context_tokens=8192), [_feature(min_context_tokens=8192)]) == []


def test_feature_already_on_model() -> None:
    """A feature that already runs on the target model is reported."""
    problems = compatibility_problems(_model(), [_feature("duo_chat", current_model=TARGET)])
    assert problems == [f"Duo Chat already runs on {TARGET}"]


@pytest.mark.parametrize("features", [[], ()], ids=["list", "tuple"])
def test_no_features(features: list[FeatureSpec] | tuple[FeatureSpec, ...]) -> None:
    """Migrating no features is reported."""
    assert compatibility_problems(_model(), features) == ["no features to migrate"]


def test_every_problem_is_reported_in_order() -> None:
    """All problems are listed together: model problems first, then per feature in feature order."""
    model = _model(provider="acme_ai", params=ModelParams(model=""), max_context_tokens=10_000)
    features = [
        _feature("duo_chat", min_context_tokens=20_000, current_model=TARGET),
        _feature("code_generation", min_context_tokens=5_000),
        _feature("code_review", min_context_tokens=30_000),
    ]
    problems = compatibility_problems(model, features)
    assert problems == [
        "provider 'acme_ai' is not served by the AI gateway "
        "(known: anthropic, bedrock, fireworks_ai, mistral, openai, vertex_ai)",
        f"model definition {TARGET} has no params.model",
        f"Duo Chat needs 20000 context tokens; {TARGET} offers 10000",
        f"Duo Chat already runs on {TARGET}",
        f"Code Review needs 30000 context tokens; {TARGET} offers 10000",
    ]


def test_shipped_claude_3_7_features_move_to_sonnet_4_5(shipped: Catalog) -> None:
    """Every shipped feature on Claude 3.7 Sonnet is compatible with Claude Sonnet 4.5."""
    features = shipped.features_on(SOURCE)
    assert len(features) >= 2, "the shipped catalog should have several features on Claude 3.7 Sonnet"
    assert compatibility_problems(shipped.model(TARGET), features) == []


def test_shipped_small_model_is_refused(shipped: Catalog) -> None:
    """Shipped features needing large contexts do not fit the 2048-token code_gecko_002."""
    gecko = shipped.model("code_gecko_002")
    features = shipped.features_on(SOURCE)
    problems = compatibility_problems(gecko, features)
    too_small = [f for f in features if f.min_context_tokens > gecko.max_context_tokens]
    assert too_small, "the check needs at least one feature larger than the model"
    assert problems == [
        f"{f.title} needs {f.min_context_tokens} context tokens; code_gecko_002 offers {gecko.max_context_tokens}"
        for f in too_small
    ]


def test_shipped_feature_on_its_own_model_is_refused(shipped: Catalog) -> None:
    """Migrating a shipped feature to the model it already runs on is refused."""
    chat = shipped.feature("duo_chat")
    problems = compatibility_problems(shipped.model(chat.current_model), [chat])
    assert problems == [f"Duo Chat already runs on {chat.current_model}"]
