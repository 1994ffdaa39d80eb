"""Small read-only HTML pages, so that an issue's or merge request's ``web_url`` opens in a browser.

Like a public project on GitLab, these pages need no token.
"""

from __future__ import annotations

from html import escape
from typing import Any

from gitlab_sandbox.gitlab_json import text_color
from gitlab_sandbox.merge_requests import MergeRequestsApi
from gitlab_sandbox.routing import ApiError, Request, Response, Router, html_response
from gitlab_sandbox.store import Store

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #1f1e24; }
pre { white-space: pre-wrap; background: #f6f6f8; padding: .75rem; border-radius: 4px; }
.label { padding: .1rem .5rem; border-radius: 1rem; font-size: .85rem; margin-right: .25rem; }
.state-opened { color: #108548; } .state-closed { color: #1f75cb; }
.note { border-top: 1px solid #ddd; margin-top: 1rem; } .meta { color: #737278; }
.state-merged { color: #6b4fbb; } .file { margin-top: 1rem; } .file h3 { font-family: monospace; }
"""


class GitLabWeb:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.merge_requests = MergeRequestsApi(store)

    def register(self, router: Router) -> None:
        router.add("GET", "/", self.index, auth=False)
        router.add("GET", r"/(?P<project>.+?)/-/issues/(?P<iid>\d+)", self.issue_page, auth=False)
        router.add(
            "GET", r"/(?P<project>.+?)/-/merge_requests/(?P<iid>\d+)", self.merge_request_page, auth=False
        )
        router.add("GET", r"/(?P<project>.+?)/-/issues/?", self.issues_page, auth=False)
        router.add("GET", r"/(?!api/)(?P<project>.+?)/?", self.issues_page, auth=False)

    def index(self, req: Request) -> Response:
        sections = [
            self._issue_list(project) for project in self.store.select("projects")
        ]
        return _page("GitLab sandbox", "".join(sections))

    def issues_page(self, req: Request) -> Response:
        project = self._project(req)
        return _page(f"Issues · {project['path_with_namespace']}", self._issue_list(project))

    def issue_page(self, req: Request) -> Response:
        project = self._project(req)
        issue = self.store.find("issues", project_id=project["id"], iid=int(req.match["iid"]))
        if issue is None:
            raise ApiError.not_found("Issue")
        notes = self.store.select("notes", project_id=project["id"], issue_iid=issue["iid"])
        notes.sort(key=lambda note: (note["created_at"], note["id"]))
        assignees = ", ".join(
            f"@{escape(u['username'])}"
            for u in (self.store.find("users", id=i) for i in issue["assignee_ids"])
            if u
        )
        path = escape(project["path_with_namespace"])
        body = f"""
<p class="meta"><a href="/{path}/-/issues">{path}</a> #{issue["iid"]}</p>
<h1>{escape(issue["title"])}</h1>
<p><strong class="state-{escape(issue["state"])}">{escape(issue["state"])}</strong>
{"· confidential" if issue["confidential"] else ""}</p>
<p>Labels: {_labels(self._label_colors(project), issue["labels"]) or "none"}</p>
<p>Assignee: {assignees or "none"}</p>
<p>Due date: {escape(issue["due_date"] or "none")}</p>
<pre class="description">{escape(issue["description"] or "")}</pre>
<h2>Notes ({len(notes)})</h2>
""" + "".join(
            f'<div class="note" id="note_{note["id"]}"><p class="meta">{escape(note["created_at"])}'
            f"</p><pre>{escape(note['body'])}</pre></div>"
            for note in notes
        )
        return _page(f"{issue['title']} (#{issue['iid']})", body)

    def merge_request_page(self, req: Request) -> Response:
        project = self._project(req)
        mr = self.store.find("merge_requests", project_id=project["id"], iid=int(req.match["iid"]))
        if mr is None:
            raise ApiError.not_found("Merge Request")
        changes = self.merge_requests.file_changes(project["id"], mr)
        path = escape(project["path_with_namespace"])
        files = "".join(
            f'<div class="file"><h3>{escape(change["new_path"])} <span class="meta">'
            f'{"new file" if change["new_file"] else "deleted" if change["deleted_file"] else "modified"}'
            f'</span></h3><pre class="diff">{escape(change["diff"])}</pre></div>'
            for change in changes
        )
        body = f"""
<p class="meta"><a href="/{path}">{path}</a> !{mr["iid"]}</p>
<h1>{escape(mr["title"])}</h1>
<p><strong class="state-{escape(mr["state"])}">{escape(mr["state"])}</strong>
· <code class="source">{escape(mr["source_branch"])}</code> into
<code class="target">{escape(mr["target_branch"])}</code></p>
<p>Labels: {_labels(self._label_colors(project), mr["labels"]) or "none"}</p>
<pre class="description">{escape(mr["description"] or "")}</pre>
<h2>Changes ({len(changes)})</h2>
{files or "<p>No changes.</p>"}
"""
        return _page(f"{mr['title']} (!{mr['iid']})", body)

    def _project(self, req: Request) -> dict[str, Any]:
        project = self.store.find("projects", path_with_namespace=req.match["project"])
        if project is None:
            raise ApiError.not_found("Project")
        return project

    def _label_colors(self, project: dict[str, Any]) -> dict[str, str]:
        return {
            label["name"]: label["color"]
            for label in self.store.select("labels", project_id=project["id"])
        }

    def _issue_list(self, project: dict[str, Any]) -> str:
        path = escape(project["path_with_namespace"])
        issues = sorted(
            self.store.select("issues", project_id=project["id"]), key=lambda i: -i["iid"]
        )
        colors = self._label_colors(project)
        rows = "".join(
            f'<li><a href="/{path}/-/issues/{issue["iid"]}">#{issue["iid"]} '
            f'{escape(issue["title"])}</a> <span class="state-{escape(issue["state"])}">'
            f"{escape(issue['state'])}</span> {_labels(colors, issue['labels'])}</li>"
            for issue in issues
        )
        return f"<h2>{path}</h2><ul>{rows or '<li>No issues yet.</li>'}</ul>"


def _labels(colors: dict[str, str], names: list[str]) -> str:
    spans = []
    for name in names:
        color = colors.get(name, "#6699cc")
        spans.append(
            f'<span class="label" style="background:{escape(color)};'
            f'color:{text_color(color)}">{escape(name)}</span>'
        )
    return "".join(spans)


def _page(title: str, body: str) -> Response:
    return html_response(
        f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
