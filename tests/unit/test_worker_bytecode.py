"""The worker writes its workflow modules' bytecode, which the workflow sandbox re-imports per run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import worker


def test_bytecode_is_written_for_every_workflow_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: dict[str, Path] = {}

    def cache_from_source(source: str) -> str:
        written[source] = tmp_path / (Path(source).stem + ".pyc")
        return str(written[source])

    monkeypatch.setattr(importlib.util, "cache_from_source", cache_from_source)
    worker.write_workflow_bytecode()
    sources = {sys.modules[cls.__module__].__file__ for cls in worker.WORKFLOWS}
    assert set(written) == sources
    for source, pyc in written.items():
        # A valid pyc for that very source: the magic number, then the source's size.
        data = pyc.read_bytes()
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[12:16], "little") == Path(source).stat().st_size


def test_a_read_only_install_is_left_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setattr(importlib.util, "cache_from_source", lambda source: str(blocker / "x.pyc"))
    worker.write_workflow_bytecode()  # no exception: the worker still starts
    assert blocker.read_text() == ""
