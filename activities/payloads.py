"""Activity names and payloads.

Workflows import this module (never the activity implementations, which pull in
clients), and call activities by these names.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from model_migration.domain.models import IssueDraft

FROZEN = ConfigDict(frozen=True)


class Activity(StrEnum):
    ENSURE_ISSUE = "ensure_issue"
    UPDATE_ISSUE = "update_issue"
    POST_NOTE = "post_note"


class EnsureIssueInput(BaseModel):
    model_config = FROZEN
    draft: IssueDraft


class UpdateIssueInput(BaseModel):
    model_config = FROZEN
    iid: int
    description: str | None = None
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    state_event: str | None = None


class PostNoteInput(BaseModel):
    """A note found again by ``marker`` on a retry, so it is posted once."""

    model_config = FROZEN
    iid: int
    body: str
    marker: str
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    due_date: date | None = None


class NoteRef(BaseModel):
    model_config = FROZEN
    id: int
    created: bool = True
