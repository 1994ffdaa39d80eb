"""Notifiers reach people outside GitLab. The log notifier writes one structured line per notice."""

from __future__ import annotations

from abc import ABC, abstractmethod

import structlog

from model_migration.domain.models import Notice


class Notifier(ABC):
    @abstractmethod
    def send(self, notice: Notice) -> None: ...


class LogNotifier(Notifier):
    """Writes notices to the worker's log, where alerting picks them up."""

    def __init__(self) -> None:
        self.sent: list[Notice] = []
        self._log = structlog.get_logger("notify")

    def send(self, notice: Notice) -> None:
        self.sent.append(notice)
        self._log.warning("notice", workflow_id=notice.workflow_id, audience=list(notice.audience),
                          subject=notice.subject, body=notice.body)
