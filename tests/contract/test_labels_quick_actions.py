"""Labels through the REST API and through quick actions: GitLab creates missing labels for the
former and silently skips them in the latter. The engine relies on both facts."""

from __future__ import annotations

import uuid
from typing import Any

from tests.contract.conftest import Target


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _labels_named(target: Target, name: str) -> list[Any]:
    return [x for x in target.project.labels.list(search=name, get_all=True) if x.name == name]


def test_label_quick_action_applies_known_labels_only(target: Target) -> None:
    """``/label ~known ~"unknown"`` in a note: the known label lands, the unknown one neither
    lands nor gets created, and the command line is gone from the note."""
    known, unknown = f"{_name('known')}::1", f"{_name('unknown')}::1"
    target.project.labels.create({"name": known, "color": "#dd2b0e"})
    issue = target.project.issues.create({"title": _name("contract-quick-action")})
    issue.notes.create({"body": f'Escalated.\n\n/label ~"{known}" ~"{unknown}"'})
    assert target.project.issues.get(issue.iid).labels == [known]
    assert _labels_named(target, unknown) == []
    bodies = [note.body for note in issue.notes.list(get_all=True) if not note.system]
    assert bodies == ["Escalated."]


def test_rest_labels_and_add_labels_create_missing_labels(target: Target) -> None:
    """``labels`` on create and ``add_labels`` on update create labels the project lacks."""
    first, second = _name("rest-created"), _name("rest-added")
    issue = target.project.issues.create({"title": _name("contract-rest-labels"), "labels": first})
    assert issue.labels == [first] and len(_labels_named(target, first)) == 1
    updated = target.project.issues.update(issue.iid, {"add_labels": second})
    assert sorted(updated["labels"]) == sorted([first, second]) and len(_labels_named(target, second)) == 1
