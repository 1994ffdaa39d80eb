"""Epics, issue links and project webhooks for ``GitLabClient`` (mixed into its bases).

Every ``ensure_*``/``add_*`` method is safe to call again after a retry: it finds what an
earlier attempt created instead of creating it twice.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import gitlab.exceptions

from model_migration.clients.gitlab_errors import gitlab_call
from model_migration.clients.gitlab_shapes import issue as to_issue
from model_migration.clients.gitlab_shapes import with_marker
from model_migration.domain.errors import ErrorType, GitLabError
from model_migration.domain.models import Epic, EpicDraft, EpicRef, Hook, Issue, IssueLink, marker_comment

#: Webhook event switches, as GitLab names them without the ``_events`` suffix.
HOOK_EVENTS = (
    "push", "tag_push", "issues", "confidential_issues", "note", "confidential_note",
    "merge_requests", "job", "pipeline", "wiki_page", "deployment", "releases", "feature_flag",
)  # fmt: skip




class EpicsMixin:
    """Epics of the client's group, links between issues, and the project's webhooks."""

    _gl: Any
    _project: Any
    project_path: str
    group_path: str | None
    _project_id_cache: int | None = None

    def _group(self, path: str | None = None) -> Any:
        if path:
            return self._gl.groups.get(path, lazy=True)
        if not self.group_path:
            raise GitLabError(
                "epics live in a group, and this GitLab client has none; set the group path",
                type=ErrorType.GITLAB_INVALID,
            )
        return self._gl.groups.get(self.group_path, lazy=True)

    # -- epics -------------------------------------------------------------------------------

    @gitlab_call("find epic {title!r}")
    def find_epic(self, title: str, marker: str) -> Epic | None:
        """The epic carrying ``marker``, among those whose title or description match ``title``."""
        wanted = marker_comment(marker)
        found = self._group().epics.list(iterator=True, search=title, state="all", per_page=100)
        for epic in found:
            if wanted in (epic.attributes.get("description") or ""):
                return _epic(epic.attributes)
        return None

    @gitlab_call("create epic {draft.title!r}")
    def create_epic(self, draft: EpicDraft) -> Epic:
        data: dict[str, Any] = {
            "title": draft.title,
            "description": with_marker(draft.description, draft.marker),
        }
        if draft.labels:
            data["labels"] = ",".join(draft.labels)
        if draft.due_date:
            data.update(due_date_is_fixed=True, due_date_fixed=draft.due_date.isoformat())
        return _epic(self._group().epics.create(data).attributes)

    def ensure_epic(self, draft: EpicDraft) -> Epic:
        """Find the epic by its marker, or create it: safe to call again after a retry."""
        found = self.find_epic(draft.title, draft.marker)
        return found if found is not None else self.create_epic(draft)

    @gitlab_call("get epic &{iid}")
    def get_epic(self, iid: int) -> Epic:
        return _epic(self._group().epics.get(iid).attributes)

    @gitlab_call("update epic &{iid}")
    def update_epic(
        self,
        iid: int,
        *,
        title: str | None = None,
        description: str | None = None,
        due_date: date | None = None,
        add_labels: list[str] | None = None,
        remove_labels: list[str] | None = None,
        state_event: str | None = None,
    ) -> Epic:
        """One PUT with only the given fields; a ``due_date`` becomes the fixed due date."""
        changes: dict[str, Any] = {
            "title": title,
            "description": description,
            "add_labels": ",".join(add_labels) if add_labels else None,
            "remove_labels": ",".join(remove_labels) if remove_labels else None,
            "state_event": state_event,
        }
        changes = {name: value for name, value in changes.items() if value is not None}
        if due_date is not None:
            changes.update(due_date_is_fixed=True, due_date_fixed=due_date.isoformat())
        if not changes:
            return self.get_epic(iid)
        return _epic(self._group().epics.update(iid, changes))

    @gitlab_call("note on epic &{epic_iid}")
    def post_epic_note(self, epic_iid: int, body: str, marker: str) -> int:
        """The id of the epic's note carrying ``marker``; without one yet, ``body`` is posted with
        it. GitLab's epic notes API wants the epic's global id, so the epic is read first."""
        notes = self._group().epics.get(epic_iid).notes
        wanted = marker_comment(marker)
        for found in notes.list(iterator=True, per_page=100, sort="asc", order_by="created_at"):
            if not found.attributes.get("system") and wanted in (found.attributes.get("body") or ""):
                return int(found.id)
        return int(notes.create({"body": with_marker(body, marker)}).id)

    @gitlab_call("file epic &{epic_iid} under {parent}")
    def set_epic_parent(self, epic_iid: int, parent: EpicRef) -> Epic:
        """Make the epic a child of ``parent``, an epic of any group; already its child, the two
        reads are all. GitLab's Epic Links API takes the parent by group and iid, the child by global id.
        An epic under another parent moves; GitLab refuses a cycle with a 409 (GITLAB_CONFLICT)."""
        child = self._group().epics.get(epic_iid).attributes
        above = self._group(parent.group).epics.get(parent.iid).attributes
        if child.get("parent_id") == above["id"]:
            return _epic(child)
        answer = self._gl.http_post(f"/groups/{above['group_id']}/epics/{parent.iid}/epics/{child['id']}")
        if not isinstance(answer, dict):
            raise gitlab.exceptions.GitlabParsingError(error_message="GitLab did not answer with a JSON object")
        return _epic(answer)

    @gitlab_call("add issue {issue_id} to epic &{epic_iid}")
    def add_issue_to_epic(self, epic_iid: int, issue_id: int, group: str | None = None) -> int:
        """Put the issue (by its global ``id``, not its iid) in the epic; the ``epic_issue_id``.

        ``group`` is the epic's group, when it is not the client's. An issue in another epic
        moves here. Already in this one (GitLab answers 409): the existing ``epic_issue_id``."""
        epic = self._group(group).epics.get(epic_iid, lazy=True)
        try:
            return int(epic.issues.create({"issue_id": issue_id}).epic_issue_id)
        except gitlab.exceptions.GitlabCreateError as exc:
            if exc.response_code != 409:
                raise
            for listed in epic.issues.list(iterator=True, per_page=100):
                if listed.attributes.get("id") == issue_id:
                    return int(listed.attributes["epic_issue_id"])
            raise

    @gitlab_call("list issues of epic &{epic_iid}")
    def epic_issues(self, epic_iid: int) -> list[Issue]:
        epic = self._group().epics.get(epic_iid, lazy=True)
        return [to_issue(found.attributes) for found in epic.issues.list(get_all=True, per_page=100)]

    # -- issue links -------------------------------------------------------------------------

    @gitlab_call("link issue #{iid} to #{target_iid}")
    def ensure_issue_link(
        self,
        iid: int,
        target_iid: int,
        link_type: str = "relates_to",
        target_project_id: int | None = None,
    ) -> IssueLink:
        """Link two issues once. If they are already linked (GitLab answers 409, whatever the
        type), that link is returned as it is. Two requests: the create, then the lookup
        (GitLab's create answer carries no link id)."""
        issue = self._project.issues.get(iid, lazy=True)
        project_id = target_project_id or self._project_id()
        data = {"target_project_id": project_id, "target_issue_iid": target_iid}
        try:
            issue.links.create({**data, "link_type": link_type})
        except gitlab.exceptions.GitlabCreateError as exc:
            if exc.response_code != 409:
                raise
        for found in issue.links.list(get_all=True):
            attrs = found.attributes
            if attrs["iid"] == target_iid and attrs["project_id"] == project_id:
                return IssueLink(
                    id=attrs["issue_link_id"],
                    source_iid=iid,
                    target_iid=target_iid,
                    target_project_id=project_id,
                    link_type=attrs.get("link_type") or "relates_to",
                )
        raise GitLabError(
            f"GitLab accepted the link from #{iid} to #{target_iid} but does not list it",
            type=ErrorType.GITLAB_TRANSIENT,
        )

    @gitlab_call("link issue #{iid} to #{target_iid}")
    def link_issues(self, iid: int, target_iid: int, link_type: str = "relates_to") -> bool:
        """Link two issues of this project in one request; False if they were linked already."""
        data = {"target_project_id": self.project_path, "target_issue_iid": target_iid, "link_type": link_type}
        try:
            self._project.issues.get(iid, lazy=True).links.create(data)
        except gitlab.exceptions.GitlabCreateError as exc:
            if exc.response_code != 409:
                raise
            return False
        return True

    def _project_id(self) -> int:
        """The numeric project id (links list it), fetched once per client."""
        if self._project_id_cache is None:
            self._project_id_cache = int(self._gl.projects.get(self.project_path).id)
        return self._project_id_cache

    # -- webhooks ----------------------------------------------------------------------------

    @gitlab_call("ensure webhook")
    def ensure_hook(self, url: str, token: str, events: list[str]) -> Hook:
        """The project's hook for ``url``, with exactly ``events`` on (e.g. ``["issues",
        "note"]``) and ``token``. An existing hook is updated in place (its token cannot be
        read back, so it is always sent again)."""
        unknown = [e for e in events if e.removesuffix("_events") not in HOOK_EVENTS]
        if unknown:
            raise ValueError(f"unknown webhook events {unknown}; known: {', '.join(HOOK_EVENTS)}")
        wanted = {e.removesuffix("_events") for e in events}
        data: dict[str, Any] = {"url": url, "token": token}
        data.update({f"{e}_events": e in wanted for e in HOOK_EVENTS})
        for found in self._project.hooks.list(iterator=True, per_page=100):
            if found.attributes.get("url") == url:
                return _hook(self._project.hooks.update(found.id, data))
        return _hook(self._project.hooks.create(data).attributes)

    @gitlab_call("list webhooks")
    def list_hooks(self) -> list[Hook]:
        return [_hook(h.attributes) for h in self._project.hooks.list(get_all=True, per_page=100)]

    @gitlab_call("delete webhook {hook_id}")
    def delete_hook(self, hook_id: int) -> None:
        """Remove the hook; a hook that is already gone is fine."""
        try:
            self._project.hooks.delete(hook_id)
        except gitlab.exceptions.GitlabDeleteError as exc:
            if exc.response_code != 404:
                raise


def _epic(data: dict[str, Any]) -> Epic:
    fixed = bool(data.get("due_date_is_fixed"))
    return Epic(
        id=data["id"],
        iid=data["iid"],
        group_id=data["group_id"],
        title=data["title"],
        description=data.get("description") or "",
        state=data.get("state") or "opened",
        labels=[x if isinstance(x, str) else x["name"] for x in data.get("labels") or []],
        web_url=data.get("web_url") or "",
        due_date=data.get("due_date_fixed") if fixed else data.get("due_date"),
        due_date_is_fixed=fixed,
    )


def _hook(data: dict[str, Any]) -> Hook:
    events = [e for e in HOOK_EVENTS if data.get(f"{e}_events")]
    project_id = data.get("project_id") or 0
    return Hook(id=data["id"], url=data["url"], project_id=project_id, events=events)
