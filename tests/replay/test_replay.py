"""Every saved history still replays on the current workflow code (python -m tests.replay.record adds more)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from model_migration.converter import data_converter
from worker import WORKFLOWS

FOLDER = Path(__file__).parent / "histories"
IDS: dict[str, str] = json.loads((FOLDER / "ids.json").read_text())
HISTORIES = sorted(FOLDER / name for name in IDS)


def test_histories_are_saved() -> None:
    """The replay suite has histories for the feature and the migration workflow."""
    names = {p.name for p in HISTORIES}
    assert any("feature" in n for n in names) and any("migration" in n for n in names)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    """A saved history replays without a non-determinism error."""
    history = WorkflowHistory.from_json(IDS[path.name], path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def test_replayer_catches_a_changed_workflow(tmp_path: Path) -> None:
    """A history whose activity was renamed fails to replay, so the check above can fail."""
    path = next(p for p in HISTORIES if "feature_happy" in p.name)
    tampered = path.read_text().replace('"ensure_issue"', '"ensure_something_else"')
    history = WorkflowHistory.from_json(IDS[path.name], tampered)
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None
