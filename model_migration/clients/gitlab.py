"""The GitLab adapter: python-gitlab inside, domain models and ``GitLabError`` outside.

Only Temporal retries. python-gitlab's own retries and its sleep on 429 are switched off in
``_Gitlab.http_request``, and every failure becomes one ``GitLabError`` with an ``ErrorType``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import gitlab
import gitlab.exceptions
import requests
import structlog
from pydantic import SecretStr
from requests.structures import CaseInsensitiveDict

from model_migration.clients.gitlab_epics import EpicsMixin
from model_migration.clients.gitlab_errors import gitlab_call, retry_after_seconds
from model_migration.clients.gitlab_flags import FlagsMixin
from model_migration.clients.gitlab_labels import LabelsMixin, UserDirectory
from model_migration.clients.gitlab_repository import RepositoryMixin
from model_migration.clients.gitlab_shapes import issue as _issue
from model_migration.clients.gitlab_shapes import note as _note
from model_migration.clients.gitlab_shapes import with_marker as _with_marker
from model_migration.domain.errors import ErrorType, GitLabError
from model_migration.domain.models import Issue, IssueDraft, Note, marker_comment
from model_migration.metrics import record_gitlab_request

log = structlog.get_logger(__name__)



class WaitGate:
    """Once GitLab says "wait" (a 429's ``Retry-After``, or ``RateLimit-Remaining: 0`` until
    ``RateLimit-Reset``), no client holding this gate sends to it with that token until then.

    The worker makes one and hands it to every client it builds: activities run on many
    threads, each with its own client, and a 429 told to one of them must hold them all.
    A client built without one gets its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def remaining(self, key: str, now: float | None = None) -> float:
        with self._lock:
            return max(0.0, self._until.get(key, 0.0) - (now if now is not None else time.time()))

    def hold(self, key: str, until: float) -> None:
        with self._lock:
            self._until[key] = max(until, self._until.get(key, 0.0))

    def observe(self, key: str, status: int, headers: Any, now: float | None = None) -> None:
        now = now if now is not None else time.time()
        if status == 429:
            wait = retry_after_seconds(headers)
            self.hold(key, now + (wait if wait is not None else 1.0))
        elif str(headers.get("RateLimit-Remaining", "")).strip() == "0":
            reset = headers.get("RateLimit-Reset")
            if reset and reset.strip().isdigit():
                self.hold(key, float(reset))


def wait_key(url: str, secret: str) -> str:
    """What a ``WaitGate`` holds: one server (its origin) with one token. Services under the same
    origin with the same token (the sandbox's experiment service beside its GitLab API) share
    GitLab's rate limit, so they share the wait too."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() + "#" + hashlib.sha256(secret.encode()).hexdigest()[:16]


class _Gitlab(gitlab.Gitlab):
    """python-gitlab that sends each request exactly once and remembers the failed response's
    headers (``GitlabHttpError`` keeps only status and body, so ``Retry-After`` would be lost).

    python-gitlab has no constructor switch for ``obey_rate_limit`` or ``max_retries``: they are
    arguments of every ``http_request`` call, defaulting to "sleep on 429, up to 10 times".
    Every manager method funnels through ``http_request``, so pinning them here covers all.
    """

    def __init__(
        self, *args: Any, on_request: Callable[[], None], gate: WaitGate, gate_key: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_request = on_request
        self._gate = gate
        self._gate_key = gate_key
        self._last = threading.local()
        self.session.hooks["response"].append(self._remember_headers)
        self._read_environment_once()

    def _read_environment_once(self) -> None:
        """Take proxies and the CA bundle from the environment now, not on every request.

        A requests session that trusts the environment looks up proxy variables and
        ``~/.netrc`` on every call: about a tenth of a call's CPU. The same settings are read
        here once (``NO_PROXY`` included); ``.netrc`` is not, as the token is the credential.
        """
        self.session.proxies.update(requests.utils.get_environ_proxies(self.url))
        if self.ssl_verify is True:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                self.ssl_verify = bundle
        self.session.trust_env = False

    def _remember_headers(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last.headers = response.headers
        record_gitlab_request(response.request.path_url, response.status_code)
        self._gate.observe(self._gate_key, response.status_code, response.headers)

    def http_request(self, verb: str, path: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.update(obey_rate_limit=False, retry_transient_errors=False, max_retries=0)
        wait = self._gate.remaining(self._gate_key)
        if wait > 0:
            raise GitLabError(
                f"GitLab asked this client to wait; {verb.upper()} not sent, retry in {wait:.1f}s",
                type=ErrorType.GITLAB_TRANSIENT, status=429, retry_after=wait,
            )
        self._last.headers = None
        self._on_request()
        try:
            return super().http_request(verb, path, *args, **kwargs)
        except gitlab.exceptions.GitlabError as exc:
            headers = CaseInsensitiveDict(self._last.headers or {})
            exc.response_headers = headers  # type: ignore[attr-defined]
            raise
        finally:
            if self._last.headers is None:  # no response came: the response hook counted nothing
                record_gitlab_request(path, None)


_OLDEST_FIRST = {"sort": "asc", "order_by": "created_at"}


def _json_object(answer: Any) -> dict[str, Any]:
    """``http_post``'s answer, which is the response itself when the body is not JSON."""
    if not isinstance(answer, dict):
        raise gitlab.exceptions.GitlabParsingError(error_message="GitLab did not answer with a JSON object")
    return answer



class GitLabClient(EpicsMixin, RepositoryMixin, FlagsMixin, LabelsMixin):
    """Issues, notes, labels and users of one project, as domain models.

    ``calls`` counts HTTP requests attempted (one per call: nothing is retried here). ``gate``
    is the one the worker shares among its clients (see ``WaitGate``); without it the client
    gets a gate of its own; ``users`` likewise (see ``UserDirectory``).
    """

    def __init__(
        self,
        url: str,
        token: SecretStr | str,
        project: str,
        group: str | None = None,
        timeout: float = 10.0,
        gate: WaitGate | None = None,
        users: UserDirectory | None = None,
    ) -> None:
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        self.url = url
        self.project_path = project
        self.group_path = group
        self.calls = 0
        self._calls_lock = threading.Lock()
        self._users = users if users is not None else UserDirectory()
        self._gl = _Gitlab(
            url,
            private_token=secret,
            retry_transient_errors=False,
            timeout=timeout,
            on_request=self._count_request,
            gate=gate if gate is not None else WaitGate(),
            gate_key=wait_key(url, secret),
        )
        # Lazy: no request until a sub-resource is used; the path is URL-encoded for us.
        self._project = self._gl.projects.get(project, lazy=True)

    def __repr__(self) -> str:
        return f"GitLabClient(url={self.url!r}, project={self.project_path!r})"

    def __enter__(self) -> GitLabClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._gl.session.close()

    def _count_request(self) -> None:
        with self._calls_lock:
            self.calls += 1

    # -- issues ------------------------------------------------------------------------------

    @gitlab_call("find issue {title!r}")
    def find_issue(self, title: str, marker: str, labels: list[str] | None = None) -> Issue | None:
        """The issue carrying ``marker``, among those whose title matches ``title``."""
        wanted = marker_comment(marker)
        query: dict[str, Any] = {"search": title, "in": "title", "state": "all", "per_page": 100}
        if labels:
            query["labels"] = ",".join(labels)
        # Usually one page, hence one request; later pages are fetched only if needed. Plain
        # dicts (``http_list``), not issue objects: the answer is only read.
        for found in self._gl.http_list(self._issues_path(), query, iterator=True):
            if wanted in (found.get("description") or ""):
                return _issue(found)
        return None

    @gitlab_call("create issue {draft.title!r}")
    def create_issue(self, draft: IssueDraft) -> Issue:
        data: dict[str, Any] = {
            "title": draft.title,
            "description": _with_marker(draft.description, draft.marker),
            "confidential": draft.confidential,
        }
        if draft.labels:
            data["labels"] = ",".join(draft.labels)
        if draft.assignee_username:
            data["assignee_ids"] = [self.user(draft.assignee_username).id]
        if draft.due_date:
            data["due_date"] = draft.due_date.isoformat()
        created = _json_object(self._gl.http_post(self._issues_path(), post_data=data))
        log.info("gitlab_issue_created", iid=created["iid"], project=self.project_path)
        return _issue(created)

    def ensure_issue(self, draft: IssueDraft) -> Issue:
        """Find the issue by its marker, or create it: safe to call again after a retry.

        No label filter here: people edit labels, and a missed issue would be created twice."""
        found = self.find_issue(draft.title, draft.marker)
        return found if found is not None else self.create_issue(draft)

    @gitlab_call("get issue #{iid}")
    def get_issue(self, iid: int) -> Issue:
        return _issue(self._project.issues.get(iid).attributes)

    @gitlab_call("update issue #{iid}")
    def update_issue(
        self,
        iid: int,
        *,
        description: str | None = None,
        add_labels: list[str] | None = None,
        remove_labels: list[str] | None = None,
        state_event: str | None = None,
        due_date: date | None = None,
        assignee_ids: list[int] | None = None,
        title: str | None = None,
    ) -> Issue:
        """One PUT with only the given fields; ``None`` means "leave as is"."""
        changes: dict[str, Any] = {
            "title": title,
            "description": description,
            "add_labels": ",".join(add_labels) if add_labels else None,
            "remove_labels": ",".join(remove_labels) if remove_labels else None,
            "state_event": state_event,
            "due_date": due_date.isoformat() if due_date else None,
            "assignee_ids": assignee_ids,
        }
        changes = {name: value for name, value in changes.items() if value is not None}
        if not changes:
            return self.get_issue(iid)
        return _issue(self._project.issues.update(iid, changes))

    # -- notes -------------------------------------------------------------------------------

    @gitlab_call("find note on issue #{iid}")
    def find_note(self, iid: int, marker: str) -> Note | None:
        wanted = marker_comment(marker)
        notes = self._notes(iid).list(iterator=True, per_page=100, **_OLDEST_FIRST)
        for found in notes:
            if not found.attributes.get("system") and wanted in found.attributes.get("body", ""):
                return _note(found.attributes)
        return None

    @gitlab_call("create note on issue #{iid}")
    def create_note(self, iid: int, body: str, marker: str | None = None) -> Note:
        if marker:
            body = _with_marker(body, marker)
        # The busiest call of all (one per transition): straight to ``http_post``. Going through
        # ``issues.get(iid, lazy=True).notes.create`` builds an issue object with a manager for
        # each of its sub-resources first, a third of the call's CPU.
        return _note(_json_object(self._gl.http_post(f"{self._issue_path(iid)}/notes", post_data={"body": body})))

    @gitlab_call("list notes on issue #{iid}")
    def list_notes(self, iid: int) -> list[Note]:
        """Comments oldest first; GitLab's system notes ("closed", "added label") are left out."""
        notes = self._notes(iid).list(get_all=True, per_page=100, **_OLDEST_FIRST)
        return [_note(n.attributes) for n in notes if not n.attributes.get("system")]

    def _notes(self, iid: int) -> Any:
        return self._project.issues.get(iid, lazy=True).notes

    def _issues_path(self) -> str:
        """The project's issues, for python-gitlab's ``http_*`` calls (the path URL-encoded)."""
        return f"/projects/{self._project.encoded_id}/issues"

    def _issue_path(self, iid: int) -> str:
        return f"{self._issues_path()}/{int(iid)}"
