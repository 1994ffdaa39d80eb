"""The notify activity and the log notifier's bounded memory."""

from __future__ import annotations

from structlog.testing import capture_logs
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from activities.payloads import NotifyInput
from model_migration.clients.notifier import LogNotifier


def test_log_notifier_keeps_only_the_latest_notices() -> None:
    """A worker that runs for months keeps the last ``keep`` notices, not all of them; each is logged."""
    notifier = LogNotifier(keep=3)
    acts = NotifyActivities(notifier)
    with capture_logs() as logs:
        for n in range(5):
            ActivityEnvironment().run(acts.notify, NotifyInput(workflow_id=f"wf-{n}", audience=("dri",), subject=f"s{n}"))
    assert [notice.subject for notice in notifier.sent] == ["s2", "s3", "s4"]
    assert [entry["workflow_id"] for entry in logs if entry["event"] == "notice"] == [f"wf-{n}" for n in range(5)]
