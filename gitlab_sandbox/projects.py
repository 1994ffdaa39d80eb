"""``GET /projects``: the list endpoint GitLab offers keyset pagination on.

GitLab supports ``pagination=keyset`` on the projects list only with ``order_by=id`` (the
cursor is ``id_after`` ascending, ``id_before`` descending); issues, notes, labels, feature
flags and the other lists this sandbox serves are offset-only there, and answer 405 to a
keyset request. Every project is visible to the admin bot, so ``membership``, ``owned`` and
``simple`` are accepted and change nothing.
"""

from __future__ import annotations

from typing import Any

from gitlab_sandbox.gitlab_api import API
from gitlab_sandbox.gitlab_json import Renderer
from gitlab_sandbox.routing import Request, Response, Router, paged_json
from gitlab_sandbox.store import Store

_ORDER = ("id", "name", "path", "created_at", "updated_at", "last_activity_at")
KEYSET_ORDER = ("id",)


class ProjectListApi:
    def __init__(self, store: Store) -> None:
        self.store = store

    def register(self, router: Router) -> None:
        router.add("GET", f"{API}/projects", self.list_projects)

    def list_projects(self, req: Request) -> Response:
        order_by = req.get_choice("order_by", _ORDER, "created_at")
        descending = req.get_choice("sort", ("asc", "desc"), "desc") == "desc"
        search = str(req.get("search") or "").lower()
        projects = self.store.select("projects")
        if search:
            projects = [p for p in projects if search in p["path_with_namespace"].lower()]
        field = {"updated_at": "created_at", "last_activity_at": "created_at"}.get(
            order_by, order_by
        )

        def key(project: dict[str, Any]) -> tuple[Any, int]:
            return (project.get(field) or "", project["id"])

        projects.sort(key=key, reverse=descending)
        render = Renderer(self.store, req.base_url)
        return paged_json(req, projects, render.project, keyset=KEYSET_ORDER)
