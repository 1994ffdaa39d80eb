"""Error types shared by every layer.

The string values are used as Temporal ``ApplicationError.type`` and in
``non_retryable_error_types``; nothing else should spell them out.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    GITLAB_AUTH = "GitLabAuthError"  # 401/403: a token or role problem, never retried
    GITLAB_NOT_FOUND = "GitLabNotFound"  # 404
    GITLAB_CONFLICT = "GitLabConflict"  # 409
    GITLAB_INVALID = "GitLabInvalid"  # 400/422
    GITLAB_TRANSIENT = "GitLabTransient"  # 429, 5xx, connection problems: retried
    COMMAND_REJECTED = "CommandRejected"  # an update that does not fit the workflow's state
    INVALID_INPUT = "InvalidInput"  # a bad catalog, id, date or option
    HARNESS_ERRORS = "HarnessErrors"  # too many failed examples for a verdict: retried, then escalated
    HARNESS_REFUSED = "HarnessRefused"  # the evaluation harness refused the request (auth, unknown dataset): never retried
    HARNESS_UNAVAILABLE = "HarnessUnavailable"  # 429, 5xx, connection problems, a run not finished: retried
    NOTIFIER_REFUSED = "NotifierRefused"  # the chat webhook refused the message (bad payload, revoked hook, gone channel): never retried
    NOTIFIER_UNAVAILABLE = "NotifierUnavailable"  # 429, 5xx, connection problems: retried
    AI_GATEWAY_REFUSED = "AiGatewayRefused"  # its model definitions: a 4xx (a wrong URL) or JSON of another shape: never retried
    AI_GATEWAY_UNAVAILABLE = "AiGatewayUnavailable"  # 429, 5xx, connection problems, a page instead of JSON: retried
    METRICS_REFUSED = "MetricsRefused"  # Prometheus refused the token or the query: never retried
    METRICS_UNAVAILABLE = "MetricsUnavailable"  # Prometheus unreachable, 429 or 5xx: retried

    @classmethod
    def non_retryable(cls) -> list[str]:
        return [
            cls.GITLAB_AUTH,
            cls.GITLAB_NOT_FOUND,
            cls.GITLAB_CONFLICT,
            cls.GITLAB_INVALID,
            cls.COMMAND_REJECTED,
            cls.INVALID_INPUT,
            cls.HARNESS_REFUSED,
            cls.NOTIFIER_REFUSED,
            cls.AI_GATEWAY_REFUSED,
            cls.METRICS_REFUSED,
        ]


class DomainError(Exception):
    """Base for errors raised by pure code and clients; carries one human line."""

    type: ErrorType = ErrorType.GITLAB_INVALID

    def __init__(self, message: str, *, type: ErrorType | None = None) -> None:
        super().__init__(message)
        if type is not None:
            self.type = type

    @property
    def message(self) -> str:
        return str(self)


class ServiceError(DomainError):
    """A call to an outside service failed; ``retryable`` says whether trying again may help,
    ``status`` is its HTTP status and ``retry_after`` (seconds) the wait it asked for."""

    def __init__(self, message: str, *, type: ErrorType, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, type=type)
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.type not in ErrorType.non_retryable()


class CommandRejected(DomainError):
    """A human command that does not fit the current stage."""

    type = ErrorType.COMMAND_REJECTED


class GitLabError(DomainError):
    """A GitLab call failed. ``retry_after`` is seconds, from ``Retry-After`` on a 429."""

    def __init__(
        self,
        message: str,
        *,
        type: ErrorType,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, type=type)
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.type == ErrorType.GITLAB_TRANSIENT
