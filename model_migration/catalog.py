"""Read the catalog YAML files; the rules live in ``model_migration.domain.catalog``."""

from __future__ import annotations

from pathlib import Path

import yaml

from model_migration.domain.catalog import Catalog, CatalogError, build_catalog

MODELS_NAME = "models.yml"
FEATURES_NAME = "features.yml"


def default_catalog_dir() -> Path:
    """The shipped catalog: the ``catalog`` package's data, wherever the distribution is installed."""
    import catalog

    # The package's own path: an editable install finds the source tree, a wheel its site-packages.
    return Path(catalog.__file__).resolve().parent


def load_catalog(directory: Path | None = None) -> Catalog:
    """Load and validate ``models.yml`` and ``features.yml`` from ``directory``."""
    directory = default_catalog_dir() if directory is None else Path(directory)
    models_path = directory / MODELS_NAME
    features_path = directory / FEATURES_NAME
    models_file = _display(models_path)
    features_file = _display(features_path)
    return build_catalog(
        _read_yaml(models_path, models_file),
        _read_yaml(features_path, features_file),
        models_file=models_file,
        features_file=features_file,
    )


def _display(path: Path) -> str:
    """``catalog/<file>`` for the shipped catalog, so messages do not carry machine paths."""
    default = default_catalog_dir()
    try:
        return f"catalog/{path.resolve().relative_to(default.resolve()).as_posix()}"
    except ValueError:
        return str(path)


def _read_yaml(path: Path, shown: str) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{shown}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CatalogError(f"{shown}: cannot read: {_one_line(reason)}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        where = ""
        if exc.problem_mark is not None:
            where = f" at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
        problem = exc.problem or exc.context or "syntax error"
        raise CatalogError(f"{shown}: invalid YAML{where}: {_one_line(problem)}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{shown}: invalid YAML: {_one_line(str(exc))}") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())
