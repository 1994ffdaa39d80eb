"""Evaluation datasets shipped with the sandbox: ``<feature>.<name>.<version>.jsonl``, one example a line.

Each line is ``{"id", "input", "reference"}``. ``generate`` writes them; ``load`` reads one by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

#: ``<feature>.<name>.<version>``; anything else could be a path and is never opened.
DATASET_NAME = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+\.v\d+$")


class DatasetNotFound(LookupError):
    """No dataset file of that name ships with the sandbox."""


@dataclass(frozen=True)
class Example:
    id: str
    input: str
    reference: str


def names() -> list[str]:
    """Every dataset that ships, sorted."""
    files = resources.files(__package__).iterdir()
    return sorted(f.name.removesuffix(".jsonl") for f in files if f.name.endswith(".jsonl"))


@lru_cache(maxsize=32)
def load(name: str) -> tuple[Example, ...]:
    """The examples of dataset ``name``, in file order; ``DatasetNotFound`` if it does not ship."""
    if not DATASET_NAME.match(name):
        raise DatasetNotFound(name)
    source = resources.files(__package__).joinpath(f"{name}.jsonl")
    if not source.is_file():
        raise DatasetNotFound(name)
    lines = source.read_text(encoding="utf-8").splitlines()
    return tuple(Example(**json.loads(line)) for line in lines if line.strip())
