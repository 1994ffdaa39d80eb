"""The shipped evaluation datasets: one per catalog feature, generated, reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitlab_sandbox import datasets
from gitlab_sandbox.datasets import generate
from model_migration.catalog import load_catalog

CATALOG_DATASETS = sorted({feature.dataset for feature in load_catalog().features})


@pytest.mark.parametrize("name", CATALOG_DATASETS)
def test_every_catalog_dataset_ships_with_enough_unique_examples(name: str) -> None:
    """Each dataset the catalog names is a file of at least 200 examples with unique ids and text in every field."""
    examples = datasets.load(name)
    assert len(examples) >= 200
    assert len({example.id for example in examples}) == len(examples)
    assert all(example.input.strip() and example.reference.strip() for example in examples)


def test_shipped_datasets_are_exactly_the_catalogs() -> None:
    """No dataset file is missing or left over: the files match the catalog's names and the generator's table."""
    assert datasets.names() == CATALOG_DATASETS == sorted(generate.DATASETS)


def test_generator_rewrites_the_same_bytes(tmp_path: Path) -> None:
    """Running the generator again reproduces every shipped file byte for byte."""
    written = generate.write_all(tmp_path)
    assert len(written) == len(CATALOG_DATASETS)
    for path in written:
        assert path.read_bytes() == (Path(generate.__file__).parent / path.name).read_bytes(), path.name


@pytest.mark.parametrize("name", ["../model_simulator", "duo_chat.questions", "nope.nothing.v1", "Duo_Chat.questions.v3"])
def test_unknown_or_path_like_names_are_not_found(name: str) -> None:
    """A name that is not a shipped ``<feature>.<name>.<version>`` raises DatasetNotFound, never opens a path."""
    with pytest.raises(datasets.DatasetNotFound):
        datasets.load(name)
