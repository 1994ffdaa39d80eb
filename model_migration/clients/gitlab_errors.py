"""Vendor failures to ``GitLabError``: one place, used by the client and each of its mixins.

One line per error, the operation named, the token never shown. 401/403 are auth errors, 404
not found, 409 conflict, other 4xx invalid (none retried); 429, 5xx and connection problems
are transient, with ``Retry-After`` as the next retry delay.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar, cast
from urllib.parse import quote

import gitlab.exceptions
import requests
import structlog

from model_migration.domain.errors import ErrorType, GitLabError

log = structlog.get_logger("model_migration.clients.gitlab")

F = TypeVar("F", bound=Callable[..., Any])

CAUGHT = (gitlab.exceptions.GitlabError, requests.RequestException)
_AUTH_HINTS = {
    401: "the token is invalid, expired or revoked",
    403: "the token needs the api scope and at least Reporter role",
}
_TOKEN_LIKE = re.compile(r"\b(gl[a-z]{1,6}-[A-Za-z0-9_\-]{16,})|(private_token=)[^&\s]+")


def to_domain_error(
    exc: BaseException,
    operation: str = "call the GitLab API",
    *,
    target: str = "",
    secret: str | None = None,
) -> GitLabError:
    """Map a python-gitlab or requests failure to one ``GitLabError``: one line, no token."""
    if isinstance(exc, GitLabError):
        return exc
    where = f" in {target}" if target else ""
    status: int | None = None
    retry_after: float | None = None
    if isinstance(exc, gitlab.exceptions.GitlabError) and exc.response_code is not None:
        status = exc.response_code
        detail = _detail(exc.error_message)
        said = f"; GitLab said: {detail}" if detail and not detail.startswith(str(status)) else ""
        if status in _AUTH_HINTS:
            kind = ErrorType.GITLAB_AUTH
            verb = "rejected the token for" if status == 401 else "refused"
            text = f"GitLab {verb} {operation}{where} ({status}): {_AUTH_HINTS[status]}{said}"
        elif status == 404:
            kind = ErrorType.GITLAB_NOT_FOUND
            text = f"GitLab found nothing for {operation}{where} (404): {detail or 'Not Found'}"
        elif status == 409:
            kind = ErrorType.GITLAB_CONFLICT
            text = f"GitLab reported a conflict for {operation}{where} (409): {detail}"
        elif status == 429 or status >= 500:
            kind = ErrorType.GITLAB_TRANSIENT
            retry_after = retry_after_seconds(_response_headers(exc), rate_limited=status == 429)
            wait = f"; retry after {retry_after:g}s" if retry_after is not None else ""
            reason = "rate-limited" if status == 429 else "failed"
            text = f"GitLab {reason} {operation}{where} ({status}): {detail}{wait}"
        else:  # 400, 422 and any other client error: sending it again will not help
            kind = ErrorType.GITLAB_INVALID
            text = f"GitLab rejected {operation}{where} as invalid ({status}): {detail}"
    elif isinstance(
        exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    ):
        kind = ErrorType.GITLAB_TRANSIENT
        text = f"Could not reach GitLab to {operation}{where}: {type(exc).__name__}: {_detail(exc)}"
    elif isinstance(exc, gitlab.exceptions.GitlabParsingError):
        kind = ErrorType.GITLAB_TRANSIENT  # typically a proxy's HTML page instead of JSON
        text = f"GitLab answered {operation}{where} with something that is not JSON: {exc}"
    else:
        kind = ErrorType.GITLAB_INVALID  # a redirect, a malformed URL: configuration problems
        text = f"GitLab call {operation}{where} failed: {type(exc).__name__}: {_detail(exc)}"
    return GitLabError(
        _scrub(_one_line(text), secret), type=kind, status=status, retry_after=retry_after
    )


def gitlab_call(operation: str) -> Callable[[F], F]:
    """Turn every vendor failure of a method into ``GitLabError``. ``operation`` is formatted
    with the method's arguments, e.g. ``"update issue #{iid}"``."""

    def wrap(method: F) -> F:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except CAUGHT as exc:
                bound = signature.bind(self, *args, **kwargs).arguments
                error = to_domain_error(
                    exc,
                    operation.format(**bound),
                    target=self.project_path,
                    secret=self._gl.private_token,
                )
                log.debug(
                    "gitlab_call_failed", error_type=str(error.type), status=error.status,
                    retry_after=error.retry_after, error=error.message,
                )  # fmt: skip
                raise error from exc

        return cast(F, wrapper)

    return wrap


def _detail(message: Any) -> str:
    """GitLab's error body: a string, or ``{field: [problems]}`` for validation errors."""
    if isinstance(message, dict):
        parts = []
        for field, problems in message.items():
            problems = problems if isinstance(problems, list) else [problems]
            parts.append(f"{field} {', '.join(str(p) for p in problems)}")
        message = "; ".join(parts)
    elif isinstance(message, bytes):
        message = message.decode(errors="replace")
    text = _one_line(str(message or ""))
    return text if len(text) <= 300 else text[:297] + "..."


def _response_headers(exc: BaseException) -> Any:
    """The headers ``_Gitlab`` pinned on the original error; python-gitlab re-raises it
    wrapped (``GitlabGetError`` from ``GitlabHttpError``), so look down the chain."""
    seen: BaseException | None = exc
    while seen is not None:
        headers = getattr(seen, "response_headers", None)
        if headers is not None:
            return headers
        seen = seen.__cause__ or seen.__context__
    return {}


def retry_after_seconds(headers: Any, *, rate_limited: bool = True) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date); for a 429 without it,
    until ``RateLimit-Reset``. GitLab sends ``RateLimit-Reset`` on every answer, so a 5xx must
    not read it: that would make every server error wait out the rate-limit window."""
    value = headers.get("Retry-After")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
        except (TypeError, ValueError):
            pass
    reset = headers.get("RateLimit-Reset") if rate_limited else None
    if reset:
        try:
            return max(float(reset) - time.time(), 0.0)
        except ValueError:
            pass
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _scrub(text: str, secret: str | None) -> str:
    if secret:
        for form in {secret, quote(secret, safe="")}:
            text = text.replace(form, "[REDACTED]")
    return _TOKEN_LIKE.sub(lambda m: (m.group(2) or "") + "[REDACTED]", text)
