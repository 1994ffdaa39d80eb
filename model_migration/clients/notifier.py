"""Notifiers reach people outside GitLab. The log notifier writes one structured line per notice."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque

import structlog

from model_migration.domain.models import Notice


class Notifier(ABC):
    @abstractmethod
    def send(self, notice: Notice) -> None: ...


class LogNotifier(Notifier):
    """Writes notices to the worker's log, where alerting picks them up.

    ``sent`` keeps the last ``keep`` notices (for tests and the demo's summary): a worker runs
    for months, and an unbounded list would grow with every escalation it ever sent.
    """

    def __init__(self, keep: int = 1000) -> None:
        self.sent: deque[Notice] = deque(maxlen=keep)
        self._lock = threading.Lock()  # sends come from many activity threads
        self._log = structlog.get_logger("notify")

    def send(self, notice: Notice) -> None:
        with self._lock:
            self.sent.append(notice)
        self._log.warning("notice", workflow_id=notice.workflow_id, audience=list(notice.audience),
                          subject=notice.subject, body=notice.body)
