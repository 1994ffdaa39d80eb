"""A catalog of many features at real name lengths, for the scale tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from model_migration.catalog import default_catalog_dir, load_catalog
from model_migration.domain.catalog import Catalog


def generated_catalog(directory: Path, count: int) -> Catalog:
    """``count`` features made from the shipped ones, with names, titles, prompts and flags as
    long as the real ones plus a three-digit number; loaded from ``directory`` as the CLI loads
    ``MODEL_MIGRATION_CATALOG_DIR``."""
    shipped = yaml.safe_load((default_catalog_dir() / "features.yml").read_text(encoding="utf-8"))
    features = []
    for i in range(count):
        base = dict(shipped[i % len(shipped)])
        name = f"{base['name']}_{i:03d}"
        base.update(
            name=name, title=f"{base['title']} {i:03d}", prompt_id=f"{base['prompt_id']}_{i:03d}",
            dataset=f"{name}.{base['dataset'].split('.', 1)[1]}", flag=f"{base['flag']}_{i:03d}",
        )
        if "feature_setting" in base:
            base["feature_setting"] = f"{base['feature_setting']}_{i:03d}"
        features.append(base)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "models.yml").write_text((default_catalog_dir() / "models.yml").read_text(encoding="utf-8"), encoding="utf-8")
    (directory / "features.yml").write_text(yaml.safe_dump(features, sort_keys=False), encoding="utf-8")
    return load_catalog(directory)
