"""Notification activities: reach people when GitLab cannot be used to reach them."""

from __future__ import annotations

import structlog
from temporalio import activity

from activities.errors import to_application_error
from activities.payloads import Activity, NotifyInput
from model_migration.clients.notifier import Notifier
from model_migration.domain.errors import DomainError
from model_migration.domain.models import Notice

log = structlog.get_logger("activities.notify")


class NotifyActivities:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    @activity.defn(name=Activity.NOTIFY)
    def notify(self, request: NotifyInput) -> None:
        try:
            self.notifier.send(Notice(**request.model_dump()))
        except DomainError as err:
            info = activity.info()
            log.warning("notify_failed", workflow_id=info.workflow_id, activity=Activity.NOTIFY.value, attempt=info.attempt,
                        error_type=str(err.type), error=err.message)
            raise to_application_error(err) from None
