"""How the GitLab sandbox renders stored rows as GitLab REST v4 JSON.

URLs are built from the host the client used, never stored, so that a restart on another
port keeps every link working.
"""

from __future__ import annotations

import re
from typing import Any

from gitlab_sandbox.store import Store

_TASK = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+\[([ xX])\]", re.MULTILINE)


class Renderer:
    def __init__(self, store: Store, base_url: str) -> None:
        self.store = store
        self.base = base_url

    def user(self, user: dict[str, Any] | None) -> dict[str, Any] | None:
        if user is None:
            return None
        return {
            "id": user["id"],
            "username": user["username"],
            "name": user["name"],
            "state": user.get("state", "active"),
            "locked": False,
            "avatar_url": None,
            "web_url": f"{self.base}/{user['username']}",
        }

    def current_user(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            **(self.user(user) or {}),
            "created_at": user["created_at"],
            "bot": user.get("bot", False),
            "is_admin": user.get("is_admin", False),
            "email": f"{user['username']}@example.com",
            "can_create_group": True,
            "can_create_project": True,
            "two_factor_enabled": False,
            "external": False,
            "private_profile": False,
        }

    def user_by_id(self, user_id: int | None) -> dict[str, Any] | None:
        if user_id is None:
            return None
        return self.user(self.store.find("users", id=user_id))

    def group(self, group: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": group["id"],
            "name": group["name"],
            "path": group["path"],
            "full_name": group["full_name"],
            "full_path": group["full_path"],
            "description": group.get("description", ""),
            "visibility": "public",
            "parent_id": group.get("parent_id"),
            "created_at": group["created_at"],
            "web_url": f"{self.base}/groups/{group['full_path']}",
        }

    def project(self, project: dict[str, Any]) -> dict[str, Any]:
        path = project["path_with_namespace"]
        namespace = self.store.find("groups", id=project["namespace_id"])
        api = f"{self.base}/api/v4/projects/{project['id']}"
        return {
            "id": project["id"],
            "description": project.get("description", ""),
            "name": project["name"],
            "name_with_namespace": project["name_with_namespace"],
            "path": project["path"],
            "path_with_namespace": path,
            "created_at": project["created_at"],
            "default_branch": "main",
            "visibility": "public",
            "issues_enabled": True,
            "web_url": f"{self.base}/{path}",
            "http_url_to_repo": f"{self.base}/{path}.git",
            "namespace": {
                "id": project["namespace_id"],
                "name": namespace["name"] if namespace else "",
                "path": namespace["path"] if namespace else "",
                "kind": "group",
                "full_path": namespace["full_path"] if namespace else "",
                "parent_id": namespace.get("parent_id") if namespace else None,
                "web_url": f"{self.base}/groups/{namespace['full_path']}" if namespace else "",
            },
            "_links": {
                "self": api,
                "issues": f"{api}/issues",
                "labels": f"{api}/labels",
                "members": f"{api}/members",
            },
        }

    def label(self, label: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": label["id"],
            "name": label["name"],
            "color": label["color"],
            "text_color": text_color(label["color"]),
            "description": label.get("description") or None,
            "description_html": label.get("description") or "",
            "subscribed": False,
            "priority": None,
            "is_project_label": True,
        }

    def issue(self, project: dict[str, Any], issue: dict[str, Any]) -> dict[str, Any]:
        path = project["path_with_namespace"]
        iid = issue["iid"]
        api = f"{self.base}/api/v4/projects/{project['id']}"
        assignees = [u for u in (self.user_by_id(i) for i in issue["assignee_ids"]) if u]
        tasks = _TASK.findall(issue.get("description") or "")
        notes = self.store.count("notes", project_id=project["id"], issue_iid=iid)
        return {
            "id": issue["id"],
            "iid": iid,
            "project_id": project["id"],
            "title": issue["title"],
            "description": issue["description"],
            "state": issue["state"],
            "created_at": issue["created_at"],
            "updated_at": issue["updated_at"],
            "closed_at": issue["closed_at"],
            "closed_by": self.user_by_id(issue.get("closed_by_id")),
            "labels": issue["labels"],
            "milestone": None,
            "assignees": assignees,
            "assignee": assignees[0] if assignees else None,
            "author": self.user_by_id(issue["author_id"]),
            "type": "ISSUE",
            "issue_type": "issue",
            "user_notes_count": notes,
            "merge_requests_count": 0,
            "upvotes": 0,
            "downvotes": 0,
            "due_date": issue["due_date"],
            "confidential": issue["confidential"],
            "discussion_locked": None,
            "web_url": f"{self.base}/{path}/-/issues/{iid}",
            "time_stats": {
                "time_estimate": 0,
                "total_time_spent": 0,
                "human_time_estimate": None,
                "human_total_time_spent": None,
            },
            "task_completion_status": {
                "count": len(tasks),
                "completed_count": sum(1 for mark in tasks if mark in "xX"),
            },
            "has_tasks": bool(tasks),
            "blocking_issues_count": 0,
            "references": {"short": f"#{iid}", "relative": f"#{iid}", "full": f"{path}#{iid}"},
            "severity": "UNKNOWN",
            "moved_to_id": None,
            "service_desk_reply_to": None,
            "_links": {
                "self": f"{api}/issues/{iid}",
                "notes": f"{api}/issues/{iid}/notes",
                "award_emoji": f"{api}/issues/{iid}/award_emoji",
                "project": api,
                "closed_as_duplicate_of": None,
            },
        }

    def note(self, noteable: dict[str, Any], note: dict[str, Any], noteable_type: str = "Issue") -> dict[str, Any]:
        """A note on an issue, or on an epic (``noteable_type="Epic"``: no project)."""
        return {
            "id": note["id"],
            "type": None,
            "body": note["body"],
            "attachment": None,
            "author": self.user_by_id(note["author_id"]),
            "created_at": note["created_at"],
            "updated_at": note["updated_at"],
            "system": note.get("system", False),
            "noteable_id": noteable["id"],
            "noteable_type": noteable_type,
            "project_id": noteable.get("project_id"),
            "noteable_iid": noteable["iid"],
            "resolvable": False,
            "confidential": False,
            "internal": False,
            "imported": False,
            "imported_from": "none",
            "commands_changes": {},
        }


def text_color(color: str) -> str:
    """GitLab's label text colour: light text on dark backgrounds."""
    hex_digits = color.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(c * 2 for c in hex_digits)
    try:
        r, g, b = (int(hex_digits[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        return "#FFFFFF"
    return "#1F1E24" if (r * 299 + g * 587 + b * 114) / 1000 > 128 else "#FFFFFF"
