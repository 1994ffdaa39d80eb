"""The catalog: the models the AI gateway serves and the Duo features that use them.

Pure: ``build_catalog`` takes already-parsed YAML data, so the rules are testable
without files. Every problem becomes one ``CatalogError`` whose single line names
the file, the entry and the field, because that is what a person fixing the YAML
needs to find.
"""

from __future__ import annotations

import re
from typing import TypeVar, get_args

from pydantic import BaseModel, ValidationError

from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.models import FROZEN, PROVIDERS, FeatureSpec, ModelDefinition

MODELS_FILE = "catalog/models.yml"
FEATURES_FILE = "catalog/features.yml"

# "<feature>.<name>.<version>", e.g. "duo_chat.questions.v3"
_DATASET = re.compile(r"^(?P<feature>[a-z0-9_]+)\.(?P<name>[a-z0-9_-]+)\.(?P<version>v?\d+)$")


class CatalogError(DomainError):
    """The catalog data is missing, malformed or inconsistent."""

    type = ErrorType.INVALID_INPUT


class Catalog(BaseModel):
    """Validated models and features. Build it with ``build_catalog``."""

    model_config = FROZEN
    models: tuple[ModelDefinition, ...] = ()
    features: tuple[FeatureSpec, ...] = ()

    def model(self, ref: str) -> ModelDefinition:
        """Find a model by gitlab_identifier, ``provider/model/version`` key or display name."""
        wanted = ref.strip().casefold()
        for m in self.models:
            if wanted in (m.gitlab_identifier.casefold(), m.key.casefold()):
                return m
        named = [m for m in self.models if m.name.casefold() == wanted]
        if len(named) == 1:
            return named[0]
        if named:
            choices = ", ".join(f"{m.gitlab_identifier} ({m.provider})" for m in named)
            raise CatalogError(f"model name '{ref}' is ambiguous; use one of: {choices}")
        known = ", ".join(sorted(m.gitlab_identifier for m in self.models))
        raise CatalogError(f"unknown model '{ref}'; known: {known}")

    def feature(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        known = ", ".join(sorted(f.name for f in self.features))
        raise CatalogError(f"unknown feature '{name}'; known: {known}")

    def features_on(self, gitlab_identifier: str) -> list[FeatureSpec]:
        """Features whose current model is this one, in catalog order."""
        return [f for f in self.features if f.current_model == gitlab_identifier]

    def usernames(self) -> list[str]:
        """Every DRI and manager, sorted and without repeats."""
        return sorted({f.dri for f in self.features} | {f.manager for f in self.features})


_M = TypeVar("_M", bound=BaseModel)


def build_catalog(
    models_data: object,
    features_data: object,
    *,
    models_file: str = MODELS_FILE,
    features_file: str = FEATURES_FILE,
) -> Catalog:
    """Validate parsed ``models.yml`` and ``features.yml`` data; raise the first problem."""
    models = _entries(models_data, models_file, ModelDefinition, "gitlab_identifier")
    _check_models(models, models_file)
    features = _entries(features_data, features_file, FeatureSpec, "name")
    _check_features(features, features_file, {m.gitlab_identifier for m in models})
    return Catalog(models=tuple(models), features=tuple(features))


def _entries(data: object, file: str, cls: type[_M], label_key: str) -> list[_M]:
    if data is None:
        raise CatalogError(f"{file}: expected a list of entries, got an empty file")
    if not isinstance(data, list):
        raise CatalogError(f"{file}: expected a list of entries, got {_kind(data)}")
    out: list[_M] = []
    for index, raw in enumerate(data, start=1):
        if not isinstance(raw, dict):
            raise CatalogError(f"{file}: entry #{index}: expected a mapping, got {_kind(raw)}")
        label = raw.get(label_key)
        unknown = _unknown_field(cls, raw)
        if unknown is not None:
            # The models ignore unknown fields on the wire (rolling deploys); a catalog entry
            # must not, or a misspelt key would silently fall back to a default.
            raise _problem(file, index, label if isinstance(label, str) else None, unknown, "Extra inputs are not permitted")
        try:
            out.append(cls.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise _problem(
                file,
                index,
                label if isinstance(label, str) else None,
                _loc(first["loc"]),
                _one_line(first["msg"]),
            ) from None
    return out


def _unknown_field(cls: type[BaseModel], raw: dict[object, object], path: tuple[str, ...] = ()) -> str | None:
    """The dotted path of the first key that ``cls`` (or a model nested in it) does not know."""
    fields = cls.model_fields
    for key, value in raw.items():
        if key not in fields:
            return ".".join((*path, str(key)))
        nested = _model_in(fields[str(key)].annotation)
        if nested is not None and isinstance(value, dict):
            found = _unknown_field(nested, value, (*path, str(key)))
            if found is not None:
                return found
    return None


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _check_models(models: list[ModelDefinition], file: str) -> None:
    by_id: dict[str, int] = {}
    by_key: dict[str, int] = {}
    for index, m in enumerate(models, start=1):
        at = (file, index, m.gitlab_identifier)
        if m.provider not in PROVIDERS:
            known = ", ".join(sorted(PROVIDERS))
            raise _problem(*at, "provider", f"unknown provider '{m.provider}'; known: {known}")
        if m.gitlab_identifier in by_id:
            first = by_id[m.gitlab_identifier]
            raise _problem(*at, "gitlab_identifier", f"duplicate of entry #{first}")
        if m.key in by_key:
            first = by_key[m.key]
            other = models[first - 1].gitlab_identifier
            raise _problem(
                *at, "version", f"key '{m.key}' is already used by entry #{first} '{other}'"
            )
        by_id[m.gitlab_identifier] = index
        by_key[m.key] = index


def _check_features(features: list[FeatureSpec], file: str, model_ids: set[str]) -> None:
    by_name: dict[str, int] = {}
    for index, f in enumerate(features, start=1):
        at = (file, index, f.name)
        if f.name in by_name:
            raise _problem(*at, "name", f"duplicate of entry #{by_name[f.name]}")
        if f.current_model not in model_ids:
            raise _problem(*at, "current_model", f"unknown model '{f.current_model}'")
        match = _DATASET.match(f.dataset)
        if match is None or match["feature"] != f.name:
            raise _problem(
                *at,
                "dataset",
                f"'{f.dataset}' is not of the form '<feature>.<name>.<version>' "
                f"for this feature, e.g. '{f.name}.questions.v1'",
            )
        by_name[f.name] = index


def _problem(file: str, index: int, label: str | None, field: str, problem: str) -> CatalogError:
    return CatalogError(f"{_where(file, index, label)}: field '{field}': {problem}")


def _where(file: str, index: int, label: str | None) -> str:
    return f"{file}: entry #{index} '{label}'" if label else f"{file}: entry #{index}"


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(entry)"


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), f"a {type(value).__name__}")


def _one_line(text: str) -> str:
    return " ".join(text.split())
