"""python-gitlab's attribute dicts to domain models, shared by the client and its mixins."""

from __future__ import annotations

from typing import Any

from model_migration.domain.models import Issue, Note, marker_comment


def issue(data: dict[str, Any]) -> Issue:
    return Issue(
        id=data["id"],
        iid=data["iid"],
        project_id=data["project_id"],
        title=data["title"],
        description=data.get("description") or "",
        state=data.get("state") or "opened",
        # Plain names, or objects when a caller asked for with_labels_details.
        labels=[x if isinstance(x, str) else x["name"] for x in data.get("labels") or []],
        web_url=data.get("web_url") or "",
        assignee_ids=[assignee["id"] for assignee in data.get("assignees") or []],
        due_date=data.get("due_date"),
        confidential=bool(data.get("confidential")),
    )


def note(data: dict[str, Any]) -> Note:
    return Note(id=data["id"], body=data.get("body") or "", created_at=data.get("created_at"))


def with_marker(text: str, marker: str) -> str:
    comment = marker_comment(marker)
    if comment in text:
        return text
    return f"{text.rstrip()}\n\n{comment}" if text.strip() else comment
