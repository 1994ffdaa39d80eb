"""Notification activities: reach people when GitLab cannot be used to reach them."""

from __future__ import annotations

from temporalio import activity

from activities.payloads import Activity, NotifyInput
from model_migration.clients.notifier import Notifier
from model_migration.domain.models import Notice


class NotifyActivities:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    @activity.defn(name=Activity.NOTIFY)
    def notify(self, request: NotifyInput) -> None:
        self.notifier.send(Notice(**request.model_dump()))
