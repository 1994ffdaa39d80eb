"""Where per-example evaluation results live, so that only their digest enters workflow history.

A run's examples are stored under the digest of their canonical JSON (the gate's
``examples_digest``); reading them back checks that digest, so a result file changed or cut
short is refused rather than judged. The local default is a directory in the state dir; an
object store can stand behind the same interface.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.gate import PairedExample, examples_digest

_EXAMPLES = TypeAdapter(tuple[PairedExample, ...])
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ResultsStoreError(DomainError):
    """Results that cannot be found or do not match their digest; never retried."""

    type = ErrorType.HARNESS_REFUSED


class ResultsStore(ABC):
    @abstractmethod
    def put(self, examples: Sequence[PairedExample]) -> str:
        """Keep ``examples``; return their digest. Storing the same examples twice is one entry."""

    @abstractmethod
    def get(self, digest: str) -> tuple[PairedExample, ...]:
        """The examples stored under ``digest``, checked against it."""


class LocalResultsStore(ResultsStore):
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, examples: Sequence[PairedExample]) -> str:
        # In example-id order, as the gate judges them, so both name the run by one digest.
        examples = sorted(examples, key=lambda e: e.example_id)
        digest = examples_digest(examples)
        target = self._path(digest)
        if target.exists():
            return digest
        self.directory.mkdir(parents=True, exist_ok=True)
        # Written to a temporary file and renamed: a reader never sees half a file.
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".incoming-", suffix=".json")
        with os.fdopen(fd, "wb") as out:
            out.write(_EXAMPLES.dump_json(tuple(examples)))
        os.replace(temporary, target)
        return digest

    def get(self, digest: str) -> tuple[PairedExample, ...]:
        path = self._path(digest)
        try:
            examples = _EXAMPLES.validate_json(path.read_bytes())
        except FileNotFoundError:
            # Another worker ran the harness and kept the results in its own directory: running the
            # harness again can help (HARNESS_ERRORS); sharing the state dir between workers is the fix.
            raise ResultsStoreError(
                f"no evaluation results stored under {digest[:12]}… in {self.directory}: workers must share their state dir",
                type=ErrorType.HARNESS_ERRORS,
            ) from None
        except (ValidationError, json.JSONDecodeError, UnicodeDecodeError):
            raise ResultsStoreError(f"the evaluation results under {digest[:12]}… are unreadable") from None
        if examples_digest(examples) != digest:
            raise ResultsStoreError(f"the evaluation results under {digest[:12]}… do not match their digest")
        return examples

    def _path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):  # never a path from the outside
            raise ResultsStoreError(f"{digest!r} is not a results digest")
        return self.directory / f"{digest}.json"
