"""Labels, users and the token's own account for ``GitLabClient`` (mixed into its bases).

Labels are created before they are needed: GitLab's ``/label`` quick action applies only labels
that already exist (in the project or its groups) and silently skips the others.
"""

from __future__ import annotations

import threading
from typing import Any

import gitlab.exceptions
import requests

from model_migration.clients.gitlab_errors import gitlab_call, to_domain_error
from model_migration.domain.errors import ErrorType, GitLabError
from model_migration.domain.models import User

#: Fixed colours, so the same label looks the same wherever the engine creates it. Urgency
#: runs red, orange, amber, grey; anything else gets GitLab's own default.
LABEL_COLORS = {
    "priority::1": "#dd2b0e",
    "priority::2": "#e9730c",
    "priority::3": "#c17d10",
    "priority::4": "#737278",
    "AI Model Migration": "#1f75cb",
    "group::ai framework": "#6b4fbb",
    "type::feature": "#009966",
    "feature::maintenance": "#108548",
}
#: By scope, for labels not named above (``workflow::rollout``, ``group::duo chat``).
SCOPE_COLORS = {"priority": "#737278", "group": "#6b4fbb", "type": "#009966", "feature": "#108548", "workflow": "#428bca"}
DEFAULT_COLOR = "#6699cc"


def label_color(name: str) -> str:
    if name in LABEL_COLORS:
        return LABEL_COLORS[name]
    scope = name.split("::", 1)[0] if "::" in name else ""
    return SCOPE_COLORS.get(scope, DEFAULT_COLOR)


class UserDirectory:
    """Users found so far, by lower-case username. The worker makes one and hands it to every
    client it builds, as it does the ``WaitGate``; a client built without one gets its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}

    def get(self, key: str) -> User | None:
        with self._lock:
            return self._users.get(key)

    def put(self, key: str, user: User) -> None:
        with self._lock:
            self._users[key] = user

    def clear(self) -> None:
        with self._lock:
            self._users.clear()


class LabelsMixin:
    """The project's labels, users by name (remembered by this client), and ``whoami``."""

    _gl: Any
    _project: Any
    url: str
    project_path: str
    _users: UserDirectory

    # -- labels ------------------------------------------------------------------------------

    @gitlab_call("ensure label {name!r}")
    def ensure_label(self, name: str, color: str, description: str = "") -> bool:
        """Create the project label; ``False`` when it exists already (GitLab's 409)."""
        try:
            self._project.labels.create({"name": name, "color": color, "description": description})
        except gitlab.exceptions.GitlabCreateError as exc:
            if exc.response_code != 409:  # 409: the label already exists, which is the goal
                raise
            return False
        return True

    @gitlab_call("ensure labels {names!r}")
    def ensure_labels(self, names: list[str]) -> list[str]:
        """Create those of ``names`` that neither the project nor its groups have, each with its
        fixed colour; return the names this call created. Safe to repeat, and to race: a label
        created meanwhile by someone else is a 409, taken as success."""
        created = []
        for name in dict.fromkeys(names):
            if not self.label_exists(name) and self.ensure_label(name, label_color(name)):
                created.append(name)
        return created

    @gitlab_call("look up label {name!r}")
    def label_exists(self, name: str) -> bool:
        """Whether the project can use ``name``: its own label, or one of its groups'.

        Looked up before creating: GitLab would accept a project label shadowing a group label
        of the same name, and the group's (say, ``priority::1``) is the one people filter on."""
        query = {"search": name, "include_ancestor_groups": True, "per_page": 100}
        path = f"/projects/{self._project.encoded_id}/labels"
        return any(found.get("name") == name for found in self._gl.http_list(path, query, iterator=True))

    # -- users -------------------------------------------------------------------------------

    @gitlab_call("look up user {username!r}")
    def user(self, username: str) -> User:
        """A user by username. Found users are remembered in the client's directory (ids never change);
        unknown ones are asked again, since the account may be created meanwhile."""
        name = username.removeprefix("@")
        key = name.lower()
        known = self._users.get(key)
        if known is not None:
            return known
        for found in self._gl.users.list(username=name, get_all=False):
            if str(found.username).lower() == key:
                user = User(id=found.id, username=found.username, name=found.name or "")
                self._users.put(key, user)
                return user
        raise GitLabError(
            f"GitLab user {name!r} does not exist; check the DRI/manager username in the catalog",
            type=ErrorType.GITLAB_NOT_FOUND,
            status=404,
        )

    def forget_users(self) -> None:
        """Drop remembered users (after an account was renamed)."""
        self._users.clear()

    def whoami(self) -> User:
        """The token's own user (``GET /user``): proves GitLab answers and takes the token.

        Its errors are one line naming the URL, never the token: unreachable, or refused."""
        try:
            self._gl.auth()
        except gitlab.exceptions.GitlabAuthenticationError as exc:
            raise GitLabError(
                f"the GitLab token was refused by {self.url}", type=ErrorType.GITLAB_AUTH, status=exc.response_code
            ) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise GitLabError(
                f"GitLab at {self.url} is unreachable ({_reason(exc)})", type=ErrorType.GITLAB_TRANSIENT
            ) from None
        except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
            raise to_domain_error(
                exc, "read the token's user", target=self.url, secret=self._gl.private_token
            ) from None
        me = self._gl.user
        return User(id=me.id, username=me.username, name=getattr(me, "name", "") or "")


def _reason(exc: requests.RequestException) -> str:
    """A short cause: "connection refused", "timed out", "name not resolved"..."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc).lower()
    for needle, said in (
        ("refused", "connection refused"),
        ("name or service not known", "name not resolved"),
        ("nodename nor servname", "name not resolved"),
        ("temporary failure in name resolution", "name not resolved"),
        ("no route to host", "no route to host"),
        ("certificate", "TLS certificate not accepted"),
    ):
        if needle in text:
            return said
    return type(exc).__name__
