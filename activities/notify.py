"""Notification activities: reach people when GitLab cannot be used to reach them."""

from __future__ import annotations

import structlog
from temporalio import activity

from activities.errors import to_application_error
from activities.payloads import Activity, NotifyInput
from model_migration.clients.notifier import Notifier
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.models import Notice

log = structlog.get_logger("activities.notify")


class NotifyActivities:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    @activity.defn(name=Activity.NOTIFY)
    def notify(self, request: NotifyInput) -> None:
        """Send a notice. An outage is retried; a refusal (a revoked webhook, say) is not, and does
        not fail the workflow that sent the notice either: the notice is in the log already, and
        the refusal is logged as an error for whoever runs the worker to fix."""
        try:
            self.notifier.send(Notice(**request.model_dump()))
        except DomainError as err:
            info = activity.info()
            bound = log.bind(workflow_id=info.workflow_id, activity=Activity.NOTIFY.value, attempt=info.attempt,
                             error_type=str(err.type), error=err.message)
            if ErrorType(err.type) in ErrorType.non_retryable():
                bound.error("notice_refused", detail="the notice is in the log only; fix the notifier's settings")
                return
            bound.warning("notify_failed")
            raise to_application_error(err) from None
