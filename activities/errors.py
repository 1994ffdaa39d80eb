"""The one place where domain errors become Temporal application errors."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from model_migration.domain.errors import DomainError, ErrorType


def to_application_error(err: DomainError) -> ApplicationError:
    # One rule for every domain error: the enum says which types are never retried.
    retryable = ErrorType(err.type) not in ErrorType.non_retryable()
    delay = None
    retry_after = getattr(err, "retry_after", None)  # GitLab's, or a harness's, Retry-After
    if isinstance(retry_after, (int, float)) and retry_after > 0:
        delay = timedelta(seconds=retry_after)
    return ApplicationError(
        err.message,
        type=ErrorType(err.type).value,
        non_retryable=not retryable,
        next_retry_delay=delay,
    )
