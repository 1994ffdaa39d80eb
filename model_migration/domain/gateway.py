"""What a migration writes into the AI gateway: a ``models.yml`` entry and prompt definitions,
and, once the new model serves a feature alone, what it removes.

The YAML is rendered by hand, so that the domain needs no YAML library: block style, a fixed
key order, and a string is quoted whenever a plain scalar could read as something else.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict

from model_migration.domain.models import FeatureSpec, ModelDefinition, marker_comment

PROMPTS_DIR = "prompts/definitions"
BRANCH_PREFIX = "model-migration/"
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_ ./-]*")
# Words YAML 1.1 (PyYAML) reads as booleans or null when they are left unquoted.
_RESERVED = {"y", "n", "yes", "no", "true", "false", "on", "off", "null"}
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


# -- the AI gateway's files ------------------------------------------------------------------


def models_yml_data(model: ModelDefinition) -> dict[str, Any]:
    """The ``models.yml`` entry as data, in the gateway's key order."""
    params: dict[str, Any] = {
        "model": model.params.model,
        "temperature": model.params.temperature,
        "max_tokens": model.params.max_tokens,
        "max_retries": model.params.max_retries,
    }
    if model.params.custom_llm_provider:
        params["custom_llm_provider"] = model.params.custom_llm_provider
    prompt_params: dict[str, Any] = {}
    if model.prompt_params.stop:
        prompt_params["stop"] = list(model.prompt_params.stop)
    prompt_params["timeout"] = model.prompt_params.timeout
    entry: dict[str, Any] = {
        "name": model.name,
        "gitlab_identifier": model.gitlab_identifier,
        "provider": model.provider,
        "max_context_tokens": model.max_context_tokens,
        "family": list(model.family),
        "description": model.description,
        "cost_indicator": model.cost_indicator,
        "params": params,
        "prompt_params": prompt_params,
    }
    if model.deprecation is not None:
        deprecation: dict[str, Any] = {"deprecation_date": model.deprecation.deprecation_date}
        if model.deprecation.removal_version:
            deprecation["removal_version"] = model.deprecation.removal_version
        entry["deprecation"] = deprecation
    return entry


def models_yml_entry(model: ModelDefinition) -> str:
    """One item of the ``models:`` list in ``models.yml``, starting ``- name: ...``."""
    lines = _mapping(models_yml_data(model), 2)
    lines[0] = "- " + lines[0][2:]
    return "\n".join(lines) + "\n"


def prompt_directory(prompt_id: str, model: ModelDefinition) -> str:
    """``prompts/definitions/<prompt_id>/<family or base>``: where the model's versions go."""
    family = model.family[0] if model.family else "base"
    return f"{PROMPTS_DIR}/{prompt_id.strip('/')}/{family}"


def prompt_definition_path(feature: FeatureSpec, model: ModelDefinition, version: str) -> str:
    """``prompts/definitions/<prompt_id>/<family or base>/<version>.yml``."""
    _check_version(version)
    return f"{prompt_directory(feature.prompt_id, model)}/{version}.yml"


def prompt_definition_data(
    feature: FeatureSpec,
    model: ModelDefinition,
    version: str,
    *,
    system: str | None = None,
    user: str | None = None,
) -> dict[str, Any]:
    """A prompt definition for ``feature`` on ``model``; the template defaults to a scaffold
    that the feature team edits in the merge request."""
    _check_version(version)
    params: dict[str, Any] = {
        "model_class_provider": "anthropic" if model.provider == "anthropic" else "litellm",
    }
    if model.params.custom_llm_provider:
        params["custom_llm_provider"] = model.params.custom_llm_provider
    params.update(
        temperature=model.params.temperature,
        max_tokens=model.params.max_tokens,
        max_retries=model.params.max_retries,
    )
    prompt_params: dict[str, Any] = {"timeout": model.prompt_params.timeout}
    if model.prompt_params.stop:
        prompt_params["stop"] = list(model.prompt_params.stop)
    default_system = (
        f"You are GitLab Duo, working on {feature.title}.\n"
        f"Prompt {feature.prompt_id} {version} for {model.name}: adjust it to this model.\n"
    )
    return {
        "name": f"{feature.title} {version} ({model.name})",
        "model": {"name": model.params.model, "params": params},
        "unit_primitives": [feature.feature_setting],
        "prompt_template": {
            "system": default_system if system is None else system,
            "user": "{{user_input}}\n" if user is None else user,
        },
        "params": prompt_params,
    }


def prompt_definition(
    feature: FeatureSpec,
    model: ModelDefinition,
    version: str,
    *,
    system: str | None = None,
    user: str | None = None,
) -> str:
    """The YAML file at ``prompt_definition_path(feature, model, version)``."""
    data = prompt_definition_data(feature, model, version, system=system, user=user)
    return "\n".join(_mapping(data, 0)) + "\n"


def config_branch(migration_id: str) -> str:
    """The branch holding a migration's gateway changes: readable, stable, and a valid git
    ref for any id (a hash of the id keeps ids that slug alike apart)."""
    slug = re.sub(r"[^a-z0-9]+", "-", migration_id.lower()).strip("-")
    slug = slug.removeprefix("migration-")[:60].strip("-") or "migration"
    digest = hashlib.sha256(migration_id.encode()).hexdigest()[:8]
    return f"{BRANCH_PREFIX}{slug}-{digest}"


class CleanupChange(BaseModel):
    """The clean-up merge request for one feature: its field names are those of the activity's
    input, so ``CleanupMergeRequestInput(**change.model_dump())`` carries it."""

    model_config = ConfigDict(frozen=True)
    branch: str
    #: Folders (every file under them goes) or files; empty when the old model has none of its own.
    deletes: tuple[str, ...]
    commit_message: str
    title: str
    description: str
    labels: tuple[str, ...]


def cleanup_change(
    migration_id: str,
    feature: FeatureSpec,
    old: ModelDefinition,
    new: ModelDefinition,
    *,
    keep: Iterable[ModelDefinition] = (),
    tracking_url: str = "",
    feature_issue_url: str = "",
) -> CleanupChange:
    """Remove ``old``'s prompt definitions for ``feature`` once ``new`` serves all its traffic.

    The whole folder ``prompt_directory(feature.prompt_id, old)`` goes, every version in it: the
    engine cannot know which versions the team wrote. The gateway picks that folder for every
    model of the family, so it stays when it is ``base`` (every model without a family falls back
    to it), when ``new`` uses it, or when a model in ``keep`` (others still serving the feature)
    does; then ``deletes`` is empty and there is nothing to open."""
    folder = prompt_directory(feature.prompt_id, old)
    shared = folder.endswith("/base") or any(prompt_directory(feature.prompt_id, m) == folder for m in (new, *keep))
    deletes = () if shared else (folder,)
    title = f"Remove {old.name} prompt definitions for {feature.title}"
    why = f"{feature.title} runs on {new.name} (`{new.gitlab_identifier}`) for 100 % of its users: {old.name} serves it no more traffic."
    links = [f"{name}: {url}" for name, url in (("Tracking issue", tracking_url), ("Feature issue", feature_issue_url)) if url]
    description = "\n\n".join([
        f"Removes the prompt definitions of {feature.title} (`{feature.prompt_id}`) for {old.name} (`{old.gitlab_identifier}`):",
        "\n".join(f"- `{path}/`, every version" for path in deletes) or f"- none: `{folder}/` is shared with a model still in use",
        f"Why: {why}", *links, f"Migration: `{migration_id}`", marker_comment(f"{migration_id}:cleanup:{feature.name}"),
    ])  # fmt: skip
    return CleanupChange(
        branch=cleanup_branch(migration_id, feature.name), deletes=deletes,
        commit_message=f"{title}\n\n{why}\n\nMigration: {migration_id}", title=title, description=description,
        labels=tuple(dict.fromkeys(("AI Model Migration", feature.group))),
    )  # fmt: skip


def cleanup_branch(migration_id: str, feature_name: str) -> str:
    """``model-migration/cleanup-<feature>-<migration>-<hash>``: one per migration and feature,
    a valid git ref of at most 98 characters for any ids."""
    feature = _slug(feature_name)[:24].strip("-") or "feature"
    migration = _slug(migration_id).removeprefix("migration-")[:40].strip("-") or "migration"
    digest = hashlib.sha256(f"{migration_id}\0{feature_name}".encode()).hexdigest()[:8]
    return f"{BRANCH_PREFIX}cleanup-{feature}-{migration}-{digest}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _check_version(version: str) -> None:
    if not _SEMVER.fullmatch(version):
        raise ValueError(f"prompt version {version!r} is not semver, e.g. 1.0.0 or 1.1.0-dev")


# -- a small YAML writer ---------------------------------------------------------------------


def _mapping(data: dict[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, value in data.items():
        head = f"{pad}{_scalar(key)}:"
        if isinstance(value, dict) and value:
            lines += [head, *_mapping(value, indent + 2)]
        elif isinstance(value, list) and value:
            lines += [head, *_sequence(value, indent + 2)]
        elif isinstance(value, str) and _literal_ok(value):
            lines += _literal(head, value, indent + 2)
        else:
            lines.append(f"{head} {_scalar(value)}")
    return lines


def _sequence(items: list[Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        if isinstance(item, dict) and item:
            nested = _mapping(item, indent + 2)
            lines += [f"{pad}- {nested[0].lstrip()}", *nested[1:]]
        elif isinstance(item, (dict, list)):
            if item:
                raise ValueError("nested lists are not rendered")
            lines.append(f"{pad}- {_scalar(item)}")
        else:
            lines.append(f"{pad}- {_scalar(item)}")
    return lines


def _literal_ok(text: str) -> bool:
    """A ``|`` block keeps prompts readable; it cannot start with a space or hold odd chars."""
    first = text.split("\n", 1)[0]
    return (
        "\n" in text.rstrip("\n")
        and first[:1] not in ("", " ", "\t")
        and all(ch in "\n\t" or _printable(ch) for ch in text)
    )


def _literal(head: str, text: str, indent: int) -> list[str]:
    body = text.rstrip("\n")
    trailing = len(text) - len(body)
    chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
    pad = " " * indent
    lines = [f"{head} |{chomp}"] + [f"{pad}{line}" if line else "" for line in body.split("\n")]
    return lines + [""] * (trailing - 1 if trailing > 1 else 0)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return "[]" if isinstance(value, list) else "{}"
    text = str(value)
    if _PLAIN.fullmatch(text) and not text.endswith(" ") and text.lower() not in _RESERVED:
        return text
    return '"' + "".join(_escape(ch) for ch in text) + '"'


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text:  # YAML 1.1 floats need a dot and a signed exponent: 1.0e-05
        mantissa, exponent = text.split("e")
        mantissa += "" if "." in mantissa else ".0"
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}e{sign}{exponent.lstrip('+-')}"
    return text


def _printable(ch: str) -> bool:
    code = ord(ch)
    in_yaml = 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
    return (in_yaml or code >= 0x10000) and ch.isprintable() and ch not in "\u2028\u2029\ufeff"


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if _printable(ch):
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
