"""The one place where domain errors become Temporal application errors."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from model_migration.domain.errors import DomainError, ErrorType, GitLabError


def to_application_error(err: DomainError) -> ApplicationError:
    # One rule for every domain error: the enum says which types are never retried.
    retryable = ErrorType(err.type) not in ErrorType.non_retryable()
    delay = None
    if isinstance(err, GitLabError) and err.retry_after:
        delay = timedelta(seconds=err.retry_after)
    return ApplicationError(
        err.message,
        type=ErrorType(err.type).value,
        non_retryable=not retryable,
        next_retry_delay=delay,
    )
