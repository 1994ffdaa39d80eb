"""Each activity the workflows call by its declaration is implemented, under the same name,
with the same input and result types, and the worker registers it."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity

import activities.interface as interface
import activities.rollout_interface as rollout_interface
from activities.evaluation import EvaluationActivities
from activities.gitlab import GitLabActivities
from activities.notify import NotifyActivities
from activities.rollout import RolloutActivities
from activities.rollout_issues import RolloutIssueActivities
from model_migration.clients.notifier import LogNotifier
from model_migration.clients.results_store import LocalResultsStore

DECLARED = {
    fn.__temporal_activity_definition.name: fn  # type: ignore[attr-defined]
    for module in (interface, rollout_interface)
    for fn in vars(module).values()
    if callable(fn) and hasattr(fn, "__temporal_activity_definition")
}
IMPLEMENTED: dict[str, Callable[..., Any]] = {
    activity._Definition.must_from_callable(fn).name: fn  # type: ignore[attr-defined]
    for fn in [
        *GitLabActivities(lambda: None).all(),  # type: ignore[arg-type, return-value]
        NotifyActivities(LogNotifier()).notify,
        *EvaluationActivities({}, LocalResultsStore(Path("unused"))).all(),
        *RolloutActivities({}, lambda: None).all(),  # type: ignore[arg-type, return-value]
        *RolloutIssueActivities(GitLabActivities(lambda: None)).all(),  # type: ignore[arg-type, return-value]
    ]
}


def _types(fn: Callable[..., Any]) -> tuple[list[object], object]:
    hints = typing.get_type_hints(fn)
    params = [p for p in inspect.signature(fn).parameters if p != "self"]
    return [hints[p] for p in params], hints.get("return", type(None))


def test_every_declared_activity_is_implemented_and_every_implementation_declared() -> None:
    """The declarations and the worker's activities name the same set."""
    assert DECLARED and set(DECLARED) == set(IMPLEMENTED)


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_declaration_and_implementation_agree_on_types(name: str) -> None:
    """Input and result types match, so the workflow decodes what the activity returns."""
    assert _types(DECLARED[name]) == _types(IMPLEMENTED[name])


def test_a_declaration_never_runs() -> None:
    """Run by mistake, a declaration says so instead of doing nothing."""
    with pytest.raises(interface.Declared):
        interface.ensure_issue(None)  # type: ignore[arg-type]
