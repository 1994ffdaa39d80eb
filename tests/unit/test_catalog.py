"""The catalog: the shipped data, look-ups, and one-line validation errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_migration.catalog import default_catalog_dir, load_catalog
from model_migration.domain.catalog import Catalog, CatalogError, build_catalog
from model_migration.domain.errors import DomainError
from model_migration.domain.models import PROVIDERS, Maturity

MODELS = "catalog/models.yml"
FEATURES = "catalog/features.yml"


def _model(identifier: str, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": identifier.replace("_", " ").title(),
        "gitlab_identifier": identifier,
        "provider": "anthropic",
        "model": identifier.replace("_", "-"),
        "version": "20250101",
        "max_context_tokens": 200000,
        "params": {"model": identifier.replace("_", "-")},
    }
    entry.update(overrides)
    return entry


def _feature(name: str, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "title": name.replace("_", " ").title(),
        "feature_setting": name,
        "prompt_id": f"{name}/base",
        "maturity": "GA",
        "group": "group::duo chat",
        "dri": "achen",
        "manager": "mkowalski",
        "current_model": "claude_a",
        "dataset": f"{name}.questions.v1",
        "flag": f"{name}_claude_b",
    }
    entry.update(overrides)
    return entry


def _data() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    models = [_model("claude_a"), _model("claude_b", version="20250202")]
    features = [_feature("duo_chat"), _feature("code_generation"), _feature("code_review")]
    return models, features


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return load_catalog()


# --- the shipped catalog -------------------------------------------------------------------


def test_shipped_catalog_loads_with_enough_entries(shipped: Catalog) -> None:
    """The shipped YAML validates and holds at least 8 features and 6 models."""
    assert len(shipped.features) >= 8
    assert len(shipped.models) >= 6


def test_shipped_catalog_has_the_required_features(shipped: Catalog) -> None:
    """All ten features named in the brief are present, with every maturity represented."""
    names = {f.name for f in shipped.features}
    assert names >= {
        "duo_chat",
        "code_generation",
        "code_completion",
        "code_explanation",
        "discussion_summary",
        "merge_commit_message",
        "root_cause_analysis",
        "vulnerability_resolution",
        "merge_request_summary",
        "code_review",
    }
    assert {f.maturity for f in shipped.features} == set(Maturity)


def test_shipped_claude_3_7_migration_covers_core_features(shipped: Catalog) -> None:
    """Claude 3.7 Sonnet backs Duo Chat, Code Generation and Code Explanation."""
    on_3_7 = {f.name for f in shipped.features_on("claude_3_7_sonnet_20250219")}
    assert {"duo_chat", "code_generation", "code_explanation"} <= on_3_7
    assert "code_completion" not in on_3_7


def test_shipped_deprecation_dates_match_the_providers(shipped: Catalog) -> None:
    """Deprecation and retirement dates are the published ones."""
    dates = {
        m.gitlab_identifier: (str(m.deprecation.deprecation_date), str(m.deprecation.retirement_date))
        for m in shipped.models
        if m.deprecation is not None
    }
    assert dates["claude_3_7_sonnet_20250219"] == ("2025-10-28", "2026-02-19")
    assert dates["claude_sonnet_4_20250514"] == ("2026-04-14", "2026-06-15")
    assert dates["code_gecko_002"] == ("2024-04-09", "2025-04-09")
    assert "claude_sonnet_4_5_20250929" not in dates


def test_shipped_vertex_model_routes_through_vertex(shipped: Catalog) -> None:
    """The Vertex Sonnet 4.5 uses the Vertex model id and LiteLLM provider."""
    vertex = shipped.model("claude_sonnet_4_5_vertex")
    assert vertex.provider == "vertex_ai"
    assert vertex.params.model == "claude-sonnet-4-5@20250929"
    assert vertex.params.custom_llm_provider == "vertex_ai"


def test_shipped_usernames_are_sorted_and_unique(shipped: Catalog) -> None:
    """usernames() lists every DRI and manager once, sorted."""
    users = shipped.usernames()
    assert users == sorted(set(users))
    assert {f.dri for f in shipped.features} | {f.manager for f in shipped.features} == set(users)


def test_default_catalog_dir_is_the_catalog_package() -> None:
    """The default directory is the shipped catalog package, with both YAML files."""
    directory = default_catalog_dir()
    assert directory.name == "catalog"
    assert (directory / "__init__.py").is_file()
    assert {"models.yml", "features.yml"} <= {p.name for p in directory.iterdir()}


# --- look-ups ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "claude_sonnet_4_5_20250929",
        "anthropic/claude-sonnet-4-5/20250929",
        "ANTHROPIC/Claude-Sonnet-4-5/20250929",
    ],
)
def test_model_by_identifier_or_key(shipped: Catalog, ref: str) -> None:
    """A model is found by gitlab_identifier or by provider/model/version."""
    assert shipped.model(ref).gitlab_identifier == "claude_sonnet_4_5_20250929"


def test_model_by_display_name_ignores_case(shipped: Catalog) -> None:
    """A unique display name finds its model, case-insensitively."""
    assert shipped.model("claude 3.7 SONNET").gitlab_identifier == "claude_3_7_sonnet_20250219"


def test_ambiguous_display_name_lists_the_choices(shipped: Catalog) -> None:
    """A name served by two providers is refused with the identifiers to choose from."""
    with pytest.raises(CatalogError) as info:
        shipped.model("Claude Sonnet 4.5")
    message = str(info.value)
    assert "ambiguous" in message
    assert "claude_sonnet_4_5_20250929" in message and "claude_sonnet_4_5_vertex" in message


def test_unknown_model_lists_known_identifiers(shipped: Catalog) -> None:
    """An unknown model names itself and the known identifiers."""
    with pytest.raises(CatalogError) as info:
        shipped.model("gpt-9")
    message = str(info.value)
    assert message.startswith("unknown model 'gpt-9'; known: ")
    assert all(m.gitlab_identifier in message for m in shipped.models)


def test_feature_lookup_and_unknown_feature(shipped: Catalog) -> None:
    """A feature is found by name; an unknown one lists the known names."""
    assert shipped.feature("duo_chat").title == "Duo Chat"
    with pytest.raises(CatalogError) as info:
        shipped.feature("duo_poetry")
    assert str(info.value).startswith("unknown feature 'duo_poetry'; known: ")
    assert "code_generation" in str(info.value)


def test_features_on_unused_model_is_empty(shipped: Catalog) -> None:
    """A model no feature uses has no features."""
    assert shipped.features_on("code_gecko_002") == []


def test_catalog_error_is_a_domain_error() -> None:
    """CatalogError shares the domain error base, so callers can catch one type."""
    assert issubclass(CatalogError, DomainError)


# --- validation ----------------------------------------------------------------------------


def test_build_catalog_accepts_valid_data() -> None:
    """Minimal valid data builds a catalog in file order."""
    catalog = build_catalog(*_data())
    assert [m.gitlab_identifier for m in catalog.models] == ["claude_a", "claude_b"]
    assert [f.name for f in catalog.features_on("claude_a")] == [
        "duo_chat",
        "code_generation",
        "code_review",
    ]


def _break_model_field(models: list, features: list) -> None:
    del models[1]["max_context_tokens"]


def _bad_model_type(models: list, features: list) -> None:
    models[0]["max_context_tokens"] = "lots"


def _bad_nested_param(models: list, features: list) -> None:
    del models[1]["params"]["model"]


def _extra_model_field(models: list, features: list) -> None:
    models[0]["colour"] = "blue"


def _misspelt_nested_param(models: list, features: list) -> None:
    models[0]["params"]["temprature"] = 0.2


def _extra_feature_field(models: list, features: list) -> None:
    features[2]["escalation_manger"] = "someone"


def _unknown_provider(models: list, features: list) -> None:
    models[1]["provider"] = "azure"


def _duplicate_identifier(models: list, features: list) -> None:
    models.append(_model("claude_a", version="20990101"))


def _duplicate_key(models: list, features: list) -> None:
    models.append(_model("claude_c", model="claude-a", version="20250101"))


def _missing_feature_field(models: list, features: list) -> None:
    del features[2]["dri"]


def _bad_maturity(models: list, features: list) -> None:
    features[0]["maturity"] = "Alpha"


def _duplicate_feature(models: list, features: list) -> None:
    features.append(_feature("duo_chat"))


def _unknown_current_model(models: list, features: list) -> None:
    features[1]["current_model"] = "claude_9"


def _malformed_dataset(models: list, features: list) -> None:
    features[1]["dataset"] = "code_generation-v2"


def _dataset_of_other_feature(models: list, features: list) -> None:
    features[1]["dataset"] = "duo_chat.questions.v3"


BAD_ENTRIES = [
    (_break_model_field, f"{MODELS}: entry #2 'claude_b': field 'max_context_tokens': Field required"),
    (_bad_model_type, f"{MODELS}: entry #1 'claude_a': field 'max_context_tokens': Input should be"),
    (_bad_nested_param, f"{MODELS}: entry #2 'claude_b': field 'params.model': Field required"),
    (_extra_model_field, f"{MODELS}: entry #1 'claude_a': field 'colour': Extra inputs"),
    (_misspelt_nested_param, f"{MODELS}: entry #1 'claude_a': field 'params.temprature': Extra inputs"),
    (_extra_feature_field, f"{FEATURES}: entry #3 'code_review': field 'escalation_manger': Extra inputs"),
    (_unknown_provider, f"{MODELS}: entry #2 'claude_b': field 'provider': unknown provider 'azure'"),
    (_duplicate_identifier, f"{MODELS}: entry #3 'claude_a': field 'gitlab_identifier': duplicate"),
    (
        _duplicate_key,
        f"{MODELS}: entry #3 'claude_c': field 'version': key 'anthropic/claude-a/20250101'",
    ),
    (_missing_feature_field, f"{FEATURES}: entry #3 'code_review': field 'dri': Field required"),
    (_bad_maturity, f"{FEATURES}: entry #1 'duo_chat': field 'maturity': Input should be"),
    (_duplicate_feature, f"{FEATURES}: entry #4 'duo_chat': field 'name': duplicate of entry #1"),
    (
        _unknown_current_model,
        f"{FEATURES}: entry #2 'code_generation': field 'current_model': unknown model 'claude_9'",
    ),
    (
        _malformed_dataset,
        f"{FEATURES}: entry #2 'code_generation': field 'dataset': 'code_generation-v2' is not",
    ),
    (
        _dataset_of_other_feature,
        f"{FEATURES}: entry #2 'code_generation': field 'dataset': 'duo_chat.questions.v3' is not",
    ),
]


@pytest.mark.parametrize(
    ("breaks", "expected"), BAD_ENTRIES, ids=[b.__name__.strip("_") for b, _ in BAD_ENTRIES]
)
def test_validation_error_names_file_entry_and_field(breaks, expected: str) -> None:
    """Each kind of bad entry gives one line naming the file, the entry and the field."""
    models, features = copy.deepcopy(_data())
    breaks(models, features)
    with pytest.raises(CatalogError) as info:
        build_catalog(models, features)
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_unknown_provider_lists_known_providers() -> None:
    """The provider error tells which providers are allowed."""
    models, features = _data()
    models[0]["provider"] = "azure"
    with pytest.raises(CatalogError) as info:
        build_catalog(models, features)
    assert all(p in str(info.value) for p in PROVIDERS)


@pytest.mark.parametrize(
    ("models", "features", "expected"),
    [
        ({"models": []}, [], f"{MODELS}: expected a list of entries, got a mapping"),
        (None, [], f"{MODELS}: expected a list of entries, got an empty file"),
        ([_model("claude_a")], "duo_chat", f"{FEATURES}: expected a list of entries, got a string"),
        ([_model("claude_a"), "claude_b"], [], f"{MODELS}: entry #2: expected a mapping, got a string"),
        ([_model("claude_a")], [["duo_chat"]], f"{FEATURES}: entry #1: expected a mapping, got a list"),
    ],
    ids=["models-mapping", "models-empty", "features-string", "model-entry-string", "feature-entry-list"],
)
def test_bad_shape_is_reported(models: object, features: object, expected: str) -> None:
    """A top level that is not a list, or an entry that is not a mapping, is refused."""
    with pytest.raises(CatalogError) as info:
        build_catalog(models, features)
    assert str(info.value) == expected


def test_entry_without_label_is_named_by_index() -> None:
    """An entry missing its identifier is still located by its index."""
    models, features = _data()
    del models[1]["gitlab_identifier"]
    with pytest.raises(CatalogError) as info:
        build_catalog(models, features)
    assert str(info.value) == f"{MODELS}: entry #2: field 'gitlab_identifier': Field required"


def test_custom_file_names_appear_in_messages() -> None:
    """build_catalog reports the file names it is given."""
    models, features = _data()
    features[0]["current_model"] = "nope"
    with pytest.raises(CatalogError) as info:
        build_catalog(models, features, models_file="m.yml", features_file="f.yml")
    assert str(info.value).startswith("f.yml: entry #1 'duo_chat': field 'current_model'")


# --- files ---------------------------------------------------------------------------------


def _write(directory: Path, models: object, features: object) -> None:
    (directory / "models.yml").write_text(yaml.safe_dump(models), encoding="utf-8")
    (directory / "features.yml").write_text(yaml.safe_dump(features), encoding="utf-8")


def test_load_catalog_from_another_directory(tmp_path: Path) -> None:
    """A catalog directory given explicitly is read from there."""
    _write(tmp_path, *_data())
    catalog = load_catalog(tmp_path)
    assert [f.name for f in catalog.features][:1] == ["duo_chat"]


def test_load_catalog_names_the_given_path(tmp_path: Path) -> None:
    """Errors from a non-default directory name the path as given."""
    models, features = _data()
    features[0]["dri"] = None
    _write(tmp_path, models, features)
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'features.yml'}: entry #1 'duo_chat': field 'dri'")


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """Broken YAML is one line with the file and the position."""
    _write(tmp_path, *_data())
    (tmp_path / "models.yml").write_text("- name: a\n  provider: [anthropic\n", encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'models.yml'}: invalid YAML at line ")
    assert "\n" not in message


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """A missing features file is named."""
    models, _ = _data()
    (tmp_path / "models.yml").write_text(yaml.safe_dump(models), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)
    assert str(info.value) == f"{tmp_path / 'features.yml'}: file not found"


def test_default_catalog_errors_use_relative_names(tmp_path: Path, monkeypatch) -> None:
    """Messages about the shipped catalog say catalog/<file>, not a machine path."""
    monkeypatch.setattr("model_migration.catalog.default_catalog_dir", lambda: tmp_path)
    _write(tmp_path, *_data())
    (tmp_path / "features.yml").write_text("- name: [\n", encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog()
    assert str(info.value).startswith("catalog/features.yml: invalid YAML at line ")
