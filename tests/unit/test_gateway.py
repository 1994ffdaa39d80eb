"""The AI gateway renderers: models.yml entries, prompt definitions, the config branch and the clean-up change."""

from __future__ import annotations

import re
from datetime import date

import pytest
import yaml

from activities.payloads import CleanupMergeRequestInput
from model_migration.catalog import load_catalog
from model_migration.domain.gateway import (
    cleanup_branch,
    cleanup_change,
    config_branch,
    models_yml_data,
    models_yml_entry,
    prompt_definition,
    prompt_definition_data,
    prompt_definition_path,
)
from model_migration.domain.models import FeatureSpec, Maturity, ModelDefinition, ModelDeprecation, ModelParams, PromptParams

TRICKY = [
    "", " ", "yes", "No", "ON", "null", "~", "y", "123", "1.5", "0x1F", "1e3", "2025-01-21",
    "a: b", "#hash", "x #y", "- dash", "</new_code>", "$$$", "'single'", '"double"', "back\\slash",
    "tab\tin", "trailing ", " leading", "@at", "`tick", "{b}", "[l]", "!tag", "&a", "*b", "%p",
    "|pipe", ">gt", "?q", "ünïcode", "emoji 😀", "ctrl\x00\x07", "nbsp\xa0", "sep\u2028x",
    "win\r\nline", "two\nlines", "ends\n", "two\n\nblank\n\n", "\nleading newline",
    "  indented\nsecond", "line\n  indented\n", ".inf", "=", "{{user_input}}",
]  # fmt: skip


def _model(**overrides: object) -> ModelDefinition:
    fields: dict[str, object] = {
        "name": "Claude Sonnet 4.5", "gitlab_identifier": "claude_sonnet_4_5_20250929",
        "provider": "anthropic", "model": "claude-sonnet-4-5", "version": "20250929",
        "max_context_tokens": 200_000, "family": ["claude_4"], "description": "Sonnet: fast.",
        "cost_indicator": "$$$",
        "params": ModelParams(
            model="claude-sonnet-4-5-20250929", temperature=1e-05, max_tokens=8192
        ),
        "prompt_params": PromptParams(stop=["</new_code>", "\n\nHuman:"], timeout=90),
        "deprecation": ModelDeprecation(deprecation_date=date(2026, 4, 14), removal_version="19.2"),
    }  # fmt: skip
    return ModelDefinition(**{**fields, **overrides})  # type: ignore[arg-type]


def _feature(**overrides: object) -> FeatureSpec:
    fields: dict[str, object] = {
        "name": "duo_chat", "title": "Duo Chat", "feature_setting": "duo_chat",
        "prompt_id": "chat/react", "maturity": Maturity.GA, "group": "group::duo chat",
        "dri": "dri-chat", "manager": "mgr-chat", "current_model": "claude_3_7_sonnet_20250219",
        "dataset": "duo_chat.questions.v3", "flag": "duo_chat_sonnet_4_5",
    }  # fmt: skip
    return FeatureSpec(**{**fields, **overrides})  # type: ignore[arg-type]


def test_models_yml_entry_parses_back_to_the_gateway_fields() -> None:
    """The entry is one list item whose data is every gateway field, in the gateway's order."""
    text = models_yml_entry(_model())
    assert text.startswith("- name: Claude Sonnet 4.5\n")
    [parsed] = yaml.safe_load(text)
    assert parsed == models_yml_data(_model())
    assert list(parsed) == [
        "name", "gitlab_identifier", "provider", "max_context_tokens", "family", "description",
        "cost_indicator", "params", "prompt_params", "deprecation",
    ]  # fmt: skip
    assert parsed["params"]["temperature"] == 1e-05 and parsed["cost_indicator"] == "$$$"
    assert parsed["prompt_params"] == {"stop": ["</new_code>", "\n\nHuman:"], "timeout": 90}
    assert parsed["deprecation"] == {
        "deprecation_date": date(2026, 4, 14),
        "removal_version": "19.2",
    }


def test_models_yml_entry_leaves_out_what_is_unset() -> None:
    """No deprecation, stop words or custom provider means no such keys; a set provider shows."""
    model = _model(deprecation=None, prompt_params=PromptParams(),
                   params=ModelParams(model="m", custom_llm_provider="vertex_ai"))  # fmt: skip
    [parsed] = yaml.safe_load(models_yml_entry(model))
    assert "deprecation" not in parsed and parsed["prompt_params"] == {"timeout": 60}
    assert parsed["params"]["custom_llm_provider"] == "vertex_ai"


def test_every_catalog_model_renders_deterministically_and_round_trips() -> None:
    """Each shipped model renders the same text twice and parses back to its data."""
    for model in load_catalog().models:
        assert models_yml_entry(model) == models_yml_entry(model)
        assert yaml.safe_load(models_yml_entry(model)) == [models_yml_data(model)]


@pytest.mark.parametrize("text", TRICKY)
def test_strings_yaml_could_misread_survive_the_round_trip(text: str) -> None:
    """Booleans, numbers, dates, indicators, control and multi-line strings come back intact."""
    model = _model(description=text, name=text or "x")
    assert yaml.safe_load(models_yml_entry(model))[0]["description"] == text
    definition = prompt_definition(_feature(), model, "1.0.0", system=text, user=text)
    assert yaml.safe_load(definition)["prompt_template"] == {"system": text, "user": text}


@pytest.mark.parametrize("value", [0.0, 0.7, 1.0, 1e-05, 2.5e20, -3.25, 1e100])
def test_floats_stay_floats(value: float) -> None:
    """Temperatures parse back as the same float, including exponent forms."""
    model = _model(params=ModelParams(model="m", temperature=value))
    assert yaml.safe_load(models_yml_entry(model))[0]["params"]["temperature"] == value


def test_prompt_definition_path_uses_family_or_base() -> None:
    """The path is prompts/definitions/<prompt_id>/<first family or base>/<version>.yml."""
    feature = _feature(prompt_id="code_suggestions/generations")
    assert prompt_definition_path(feature, _model(), "1.2.0-dev") == (
        "prompts/definitions/code_suggestions/generations/claude_4/1.2.0-dev.yml"
    )
    assert prompt_definition_path(feature, _model(family=[]), "2.0.0").endswith("/base/2.0.0.yml")
    for bad in ("1.0", "v1.0.0", "1.0.0-", "01.0.0", "1.0.0/../x"):
        with pytest.raises(ValueError, match="semver"):
            prompt_definition_path(feature, _model(), bad)


def test_prompt_definition_has_the_gateway_shape() -> None:
    """name, model {name, params}, unit_primitives and prompt_template {system, user} parse back."""
    parsed = yaml.safe_load(prompt_definition(_feature(), _model(), "1.0.0-dev"))
    assert parsed == prompt_definition_data(_feature(), _model(), "1.0.0-dev")
    assert list(parsed)[:4] == ["name", "model", "unit_primitives", "prompt_template"]
    assert parsed["model"]["name"] == "claude-sonnet-4-5-20250929"
    assert parsed["model"]["params"]["max_tokens"] == 8192
    assert parsed["unit_primitives"] == ["duo_chat"]
    assert set(parsed["prompt_template"]) == {"system", "user"}
    assert "Duo Chat" in parsed["prompt_template"]["system"] and "1.0.0-dev" in parsed["name"]
    assert parsed["params"] == {"timeout": 90, "stop": ["</new_code>", "\n\nHuman:"]}


_GIT_REF_BAD = re.compile(
    r"(^[/.-])|([/.]$)|(\.\.)|(//)|(@\{)|(\.lock$)|(/\.)|([\x00-\x20~^:?*\[\\\x7f])"
)


@pytest.mark.parametrize("migration_id", [
    "migration:anthropic/claude-sonnet-4-5/20250929", "migration:a/b/c:feature:duo_chat",
    "", "..", "x.lock", "weird ~^:?*[\\ id@{1}", "ünïcode/id", "/" * 10, "a" * 500,
])  # fmt: skip
def test_config_branch_is_a_stable_valid_git_ref(migration_id: str) -> None:
    """Any migration id gives the same branch every time, and a name git accepts."""
    branch = config_branch(migration_id)
    assert branch == config_branch(migration_id)
    assert branch.startswith("model-migration/") and len(branch) <= 100
    assert not _GIT_REF_BAD.search(branch)


def test_config_branch_is_readable_and_keeps_similar_ids_apart() -> None:
    """The slug shows the model; ids that slug alike still get different branches."""
    branch = config_branch("migration:anthropic/claude-sonnet-4-5/20250929")
    assert branch.startswith("model-migration/anthropic-claude-sonnet-4-5-20250929-")
    assert config_branch("migration:a/b/c") != config_branch("migration:a-b-c")
    feature = config_branch("migration:a/b/c:feature:duo_chat")
    assert feature != config_branch("migration:a/b/c")


# -- the clean-up merge request --------------------------------------------------------------

OLD = _model(name="Claude 3.7 Sonnet", gitlab_identifier="claude_3_7_sonnet_20250219", family=["claude_3"])
MIGRATION = "migration:anthropic/claude-sonnet-4-5/20250929"


def test_cleanup_removes_the_old_models_prompt_folder_for_the_feature() -> None:
    """The old family's folder of the feature's prompt goes; the title, labels and commit say what and why."""
    change = cleanup_change(MIGRATION, _feature(), OLD, _model())
    assert change.deletes == ("prompts/definitions/chat/react/claude_3",)
    assert change.title == "Remove Claude 3.7 Sonnet prompt definitions for Duo Chat"
    assert change.commit_message.splitlines()[0] == change.title and MIGRATION in change.commit_message
    assert change.labels == ("AI Model Migration", "group::duo chat")
    assert change.branch == cleanup_branch(MIGRATION, "duo_chat")
    assert change.branch.startswith("model-migration/cleanup-duo-chat-anthropic-claude-sonnet-4-5-20250929-")


def test_cleanup_description_says_what_why_and_links_back() -> None:
    """The description names the folder, the old and new models, the issues, the migration and its marker."""
    change = cleanup_change(MIGRATION, _feature(), OLD, _model(), tracking_url="https://gl/t/1", feature_issue_url="https://gl/f/2")
    text = change.description
    assert "`prompts/definitions/chat/react/claude_3/`" in text and "`chat/react`" in text
    assert "claude_3_7_sonnet_20250219" in text and "claude_sonnet_4_5_20250929" in text and "100 %" in text
    assert "Tracking issue: https://gl/t/1" in text and "Feature issue: https://gl/f/2" in text
    assert f"Migration: `{MIGRATION}`" in text
    assert text.endswith(f"<!-- model-migration:{MIGRATION}:cleanup:duo_chat -->")
    assert "Tracking issue" not in cleanup_change(MIGRATION, _feature(), OLD, _model()).description


@pytest.mark.parametrize("old", [
    _model(name="Claude Sonnet 4", gitlab_identifier="claude_sonnet_4_20250514"),  # the new model's family
    _model(name="No family", gitlab_identifier="plain", family=[]),  # base: every unfamiled model's fallback
])  # fmt: skip
def test_cleanup_keeps_a_folder_other_models_use(old: ModelDefinition) -> None:
    """A folder shared with the new model, or the base folder, is not the old model's to remove."""
    change = cleanup_change(MIGRATION, _feature(), old, _model())
    assert change.deletes == () and "- none: `prompts/definitions/chat/react/" in change.description


def test_cleanup_keeps_the_folder_of_a_model_still_serving_the_feature() -> None:
    """A model passed in ``keep`` (e.g. Claude 3.5 Haiku, also claude_3) keeps the family folder."""
    haiku = _model(name="Claude 3.5 Haiku", gitlab_identifier="claude_3_5_haiku_20241022", family=["claude_3"])
    assert cleanup_change(MIGRATION, _feature(), OLD, _model(), keep=[haiku]).deletes == ()
    other = _model(name="Codestral", gitlab_identifier="codestral", family=["codestral"])
    assert cleanup_change(MIGRATION, _feature(), OLD, _model(), keep=[other]).deletes != ()


def test_cleanup_never_removes_what_the_config_mr_wrote_for_the_new_model() -> None:
    """For every catalog feature and pair of models, the new model's first prompt is outside every delete."""
    catalog = load_catalog()
    for feature in catalog.features:
        for old in catalog.models:
            for new in catalog.models:
                if old == new:
                    continue
                written = prompt_definition_path(feature, new, "1.0.0-dev")
                deletes = cleanup_change(MIGRATION, feature, old, new).deletes
                assert not any(written == d or written.startswith(d + "/") for d in deletes), (feature.name, old.name, new.name)


@pytest.mark.parametrize(("migration_id", "feature"), [
    (MIGRATION, "duo_chat"), ("", ""), ("..", "x.lock"), ("weird ~^:?*[\\ id@{1}", "a/b"), ("a" * 500, "f" * 500),
    ("ünïcode/id", "ü"),
])  # fmt: skip
def test_cleanup_branch_is_a_stable_valid_git_ref(migration_id: str, feature: str) -> None:
    """Any ids give the same branch every time, and a name git accepts."""
    branch = cleanup_branch(migration_id, feature)
    assert branch == cleanup_branch(migration_id, feature)
    assert branch.startswith("model-migration/cleanup-") and len(branch) <= 100
    assert not _GIT_REF_BAD.search(branch)


def test_cleanup_branch_is_one_per_migration_and_feature() -> None:
    """Another feature, another migration, or ids that slug alike give another branch; none is the config branch."""
    branches = {
        cleanup_branch(MIGRATION, "duo_chat"), cleanup_branch(MIGRATION, "code_suggestions"),
        cleanup_branch(MIGRATION + ":run1", "duo_chat"), cleanup_branch("migration:a/b", "c"), cleanup_branch("migration:a-b", "c"),
        config_branch(MIGRATION),
    }  # fmt: skip
    assert len(branches) == 6


def test_cleanup_change_is_the_activity_input() -> None:
    """The change carries over field for field into the activity's input."""
    change = cleanup_change(MIGRATION, _feature(), OLD, _model())
    request = CleanupMergeRequestInput(**change.model_dump())
    assert request.model_dump(exclude={"target_branch"}) == change.model_dump() and request.target_branch == "main"
