"""Contract: offset and keyset pagination headers, and rate-limit headers and 429s.

Parts that need control of the server (10,001 rows, a request budget) run on the sandbox only.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import gitlab
import pytest
import requests

from gitlab_sandbox.faults import RateLimiter
from gitlab_sandbox.gitlab import GitLabSandbox
from gitlab_sandbox.modules import full_schema
from gitlab_sandbox.routing import KEYSET_UNAVAILABLE
from gitlab_sandbox.store import Store
from tests.contract.conftest import Target

RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Observed", "RateLimit-Remaining", "RateLimit-Reset")


def _get(target: Target, path: str, **query: Any) -> requests.Response:
    """A raw GET through python-gitlab, headers and all, sent once."""
    return target.gl.http_request("get", path, query_data=query, obey_rate_limit=False)


def _rels(response: requests.Response) -> dict[str, dict[str, list[str]]]:
    return {rel: parse_qs(urlparse(link["url"]).query) for rel, link in response.links.items()}


@pytest.fixture(scope="module")
def labelled_issues(target: Target) -> str:
    label = f"page-{uuid.uuid4().hex[:8]}"
    for n in range(5):
        target.project.issues.create({"title": f"pagination {label} {n}", "labels": label})
    return label


def test_offset_pages_carry_totals_and_links(target: Target, labelled_issues: str) -> None:
    """x-page/x-next-page/x-prev-page/x-total(-pages) and first/prev/next/last links agree."""
    path = f"/projects/{target.project.id}/issues"
    middle = _get(target, path, labels=labelled_issues, per_page=2, page=2)
    headers = middle.headers
    assert (headers["x-page"], headers["x-per-page"]) == ("2", "2")
    assert (headers["x-prev-page"], headers["x-next-page"]) == ("1", "3")
    assert (headers["x-total"], headers["x-total-pages"]) == ("5", "3")
    rels = _rels(middle)
    assert {rel: q["page"] for rel, q in rels.items()} == {
        "prev": ["1"], "next": ["3"], "first": ["1"], "last": ["3"]
    }  # fmt: skip
    assert all(q["labels"] == [labelled_issues] for q in rels.values())
    last = _get(target, path, labels=labelled_issues, per_page=2, page=3)
    assert last.headers["x-next-page"] == "" and "next" not in last.links
    assert len(last.json()) == 1


def test_per_page_is_clamped_to_100(target: Target) -> None:
    """per_page above 100 serves 100 per page, and says so."""
    response = _get(target, f"/projects/{target.project.id}/issues", per_page=1000)
    assert response.headers["x-per-page"] == "100"
    assert _rels(response)["first"]["per_page"] == ["100"]


def test_keyset_walk_on_projects(target: Target) -> None:
    """Keyset pages by id carry only Link rel="next"; python-gitlab's walk sees each once."""
    first = _get(target, "/projects", pagination="keyset", order_by="id", sort="asc", per_page=1,
                 membership="true")  # fmt: skip
    assert "x-total" not in first.headers and "x-page" not in first.headers
    assert set(first.links) <= {"next"}
    walked = target.gl.projects.list(
        pagination="keyset", order_by="id", sort="asc", per_page=2, membership=True, iterator=True
    )
    ids = [project.id for project in walked]
    assert ids == sorted(set(ids)) and target.project.id in ids


def test_keyset_elsewhere_is_405(target: Target) -> None:
    """Lists without keyset support in GitLab refuse it: 405, not a silent offset page."""
    path = f"/projects/{target.project.id}/issues"
    with pytest.raises(gitlab.exceptions.GitlabHttpError) as raised:
        _get(target, path, pagination="keyset", order_by="created_at")
    assert raised.value.response_code == 405
    assert raised.value.error_message == KEYSET_UNAVAILABLE


def test_rate_limit_headers_on_every_response(target: Target) -> None:
    """Successes, lists and errors all carry RateLimit-Limit/Observed/Remaining/Reset."""
    version = _get(target, "/version")
    if target.name == "real" and "RateLimit-Limit" not in version.headers:
        pytest.skip("this GitLab sends no RateLimit headers (its API throttle is off)")
    responses = [version, _get(target, f"/projects/{target.project.id}/issues", per_page=1)]
    missing = requests.get(
        f"{target.gl.api_url}/projects/{target.project.id}/issues/999999999",
        headers={"PRIVATE-TOKEN": target.gl.private_token or ""},
        timeout=10,
    )
    assert missing.status_code == 404
    for response in [*responses, missing]:
        assert all(name in response.headers for name in RATE_HEADERS), response.headers
        assert int(response.headers["RateLimit-Reset"]) >= int(time.time())
        limit, remaining = (int(response.headers[n]) for n in RATE_HEADERS[::2])
        assert 0 <= remaining <= limit


# -- sandbox only ----------------------------------------------------------------------------


@pytest.fixture
def sandbox_only(target: Target) -> Any:
    if target.name != "sandbox":
        pytest.skip("needs control of the server: sandbox only")
    return target.sandbox


def _admin(sandbox: Any, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/-/sandbox/{path}", json=body, headers={"PRIVATE-TOKEN": sandbox.token},
        timeout=5,
    )  # fmt: skip


def test_past_the_budget_is_429_with_retry_after(sandbox_only: Any, target: Target) -> None:
    """Past its budget a token gets 429 "Retry later", Retry-After and RateLimit-ResetTime;
    refused requests are observed but leave Remaining at 0."""
    assert _admin(sandbox_only, "rate_limit", {"limit": 3, "window": 60}).status_code == 200
    try:
        url = f"{sandbox_only.url}/api/v4/version"
        auth = {"PRIVATE-TOKEN": sandbox_only.token}
        answers = [requests.get(url, headers=auth, timeout=5) for _ in range(5)]
    finally:
        _admin(sandbox_only, "rate_limit", {"limit": None})
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0", "0"]
    assert [a.headers["RateLimit-Observed"] for a in answers] == ["1", "2", "3", "4", "5"]
    refused = answers[3]
    assert refused.json() == {"message": "Retry later"}
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    reset_at = parsedate_to_datetime(refused.headers["RateLimit-ResetTime"]).timestamp()
    assert reset_at == int(refused.headers["RateLimit-Reset"])
    assert requests.get(url, headers=auth, timeout=5).status_code == 200  # budget lifted


def test_rate_window_resets_the_budget() -> None:
    """After the window the token's count starts again; Retry-After counts down to it."""
    now = [1000.0]
    limiter = RateLimiter(2, 10, clock=lambda: now[0])
    assert [limiter.hit("t")[0] for _ in range(3)] == [True, True, False]
    now[0] = 1007.2
    allowed, headers = limiter.hit("t")
    assert not allowed and headers["Retry-After"] == "3" and headers["RateLimit-Reset"] == "1010"
    assert limiter.hit("other")[0]  # per token
    now[0] = 1010.0
    allowed, headers = limiter.hit("t")
    assert allowed and headers["RateLimit-Observed"] == "1"


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitLabSandbox]:
    """A sandbox of its own, so that thousands of projects stay out of everyone else's way."""
    with GitLabSandbox(tmp_path_factory.mktemp("crowded") / "gitlab.sqlite", token="t") as sandbox:
        yield sandbox


def _add_projects(sandbox: GitLabSandbox, count: int, prefix: str = "bulk") -> None:
    """Insert ``count`` projects in one transaction, beside the running sandbox."""
    store = Store(Path(sandbox.state_file), schema=full_schema())
    try:
        group = store.find("groups", full_path="gitlab-org")
        assert group is not None
        with store.transaction() as conn:
            (last,) = conn.execute("SELECT MAX(id) FROM projects").fetchone()
            rows = []
            for row_id in range(last + 1, last + 1 + count):
                name = f"{prefix}-{row_id}"
                path = f"gitlab-org/{name}"
                data = {"id": row_id, "name": name, "path": name, "path_with_namespace": path,
                        "name_with_namespace": path, "namespace_id": group["id"],
                        "created_at": "2025-01-21T09:30:00.000Z"}  # fmt: skip
                rows.append((row_id, path, json.dumps(data)))
            conn.executemany(
                "INSERT INTO projects (id, path_with_namespace, data) VALUES (?, ?, ?)", rows
            )
    finally:
        store.close()


def _projects(sandbox: GitLabSandbox, **query: Any) -> requests.Response:
    return requests.get(f"{sandbox.url}/api/v4/projects", params=query,
                        headers={"PRIVATE-TOKEN": "t"}, timeout=10)  # fmt: skip


def test_keyset_walk_returns_every_project_once(crowded: GitLabSandbox) -> None:
    """Following rel="next" (id_after ascending, id_before descending) visits each id once."""
    _add_projects(crowded, 250, prefix="walk")
    for sort in ("asc", "desc"):
        ids: list[int] = []
        response = _projects(
            crowded, pagination="keyset", order_by="id", sort=sort, per_page=100, search="walk-"
        )
        while True:
            ids += [project["id"] for project in response.json()]
            assert "x-total" not in response.headers and set(response.links) <= {"next"}
            if "next" not in response.links:
                break
            assert ("id_after" if sort == "asc" else "id_before") in response.links["next"]["url"]
            next_url = response.links["next"]["url"]
            response = requests.get(next_url, headers={"PRIVATE-TOKEN": "t"}, timeout=10)
        assert len(ids) == 250 and ids == sorted(set(ids), reverse=sort == "desc")


def test_totals_are_omitted_above_10000(crowded: GitLabSandbox) -> None:
    """At 10,000 items GitLab still counts; at 10,001 x-total, x-total-pages and rel="last" go."""
    total = int(_projects(crowded, per_page=1).headers["x-total"])
    _add_projects(crowded, 10_000 - total)
    counted = _projects(crowded, per_page=100, page=2)
    assert (counted.headers["x-total"], counted.headers["x-total-pages"]) == ("10000", "100")
    assert "last" in counted.links
    _add_projects(crowded, 1)
    uncounted = _projects(crowded, per_page=100, page=2)
    assert "x-total" not in uncounted.headers and "x-total-pages" not in uncounted.headers
    assert set(uncounted.links) == {"prev", "next", "first"}
    assert (uncounted.headers["x-page"], uncounted.headers["x-next-page"]) == ("2", "3")
    assert len(uncounted.json()) == 100
