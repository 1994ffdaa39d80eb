"""The CLI's pieces without a server: request ids, GitLab trouble, rendering, JSON logging."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from temporalio.api.failure.v1 import Failure
from temporalio.api.workflow.v1 import PendingActivityInfo

from model_migration import operations as ops
from model_migration import render
from model_migration.domain.requests import command_digest
from model_migration.listing import Row
from model_migration.trouble import trouble_of, worst_pending
from tests.cli.run import json_lines
from workflows.messages import CommandResult, CompleteStage, FeatureProgress, MigrationStatus, Pause

WID = "migration:anthropic/claude-sonnet-4-5/20250929:feature:duo_chat"


@dataclass
class FakeHandle:
    answer: CommandResult

    async def execute_update(self, update: str, payload: Any, *, id: str, result_type: type) -> CommandResult:
        return self.answer


@dataclass
class FakeClient:
    answer: CommandResult

    def get_workflow_handle(self, workflow_id: str) -> FakeHandle:
        return FakeHandle(self.answer)


IMPLEMENT = CompleteStage(stage="implement", actor="achen", prompt_version="1.0.0-dev")


async def test_a_request_id_reused_for_another_payload_is_refused() -> None:
    """The first command's digest differs from this one's: refused, naming the first command."""
    first = CompleteStage(stage="implement", actor="achen", prompt_version="1.0.0-rc1")
    answer = CommandResult(stage="evaluate", message="implement complete", command="complete_stage",
                           digest=command_digest("complete_stage", first))
    with pytest.raises(ops.UserError) as refused:
        await ops.send(FakeClient(answer), WID, "complete_stage", IMPLEMENT, request_id="r-1")  # type: ignore[arg-type]
    assert str(refused.value) == (
        "request id r-1 was already used for complete; nothing was changed — use a new --request-id"
    )


async def test_a_request_id_reused_for_another_command_names_the_first() -> None:
    """A pause sent with the id of an earlier complete is refused, naming complete."""
    answer = CommandResult(stage="evaluate", message="implement complete", command="complete_stage",
                           digest=command_digest("complete_stage", IMPLEMENT))
    with pytest.raises(ops.UserError, match="already used for complete;"):
        await ops.send(FakeClient(answer), WID, "pause", Pause(actor="achen"), request_id="r-2")  # type: ignore[arg-type]


async def test_a_retried_command_gets_its_own_result() -> None:
    """The same command and payload again is the retry the request id exists for."""
    answer = CommandResult(stage="evaluate", message="implement complete", command="complete_stage",
                           digest=command_digest("complete_stage", IMPLEMENT))
    result = await ops.send(FakeClient(answer), WID, "complete_stage", IMPLEMENT, request_id="r-3")  # type: ignore[arg-type]
    assert result.message == "implement complete"


async def test_a_result_without_a_digest_is_taken_as_is() -> None:
    """Workflows that predate digests answer without one; nothing can be compared."""
    answer = CommandResult(stage="evaluate", message="implement complete")
    assert (await ops.send(FakeClient(answer), WID, "complete_stage", IMPLEMENT, request_id="r-4")).stage == "evaluate"  # type: ignore[arg-type]


def _at(hour: int, minute: int) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime(2026, 11, 30, hour, minute, tzinfo=UTC))
    return ts


def _pending(attempt: int, message: str | None) -> PendingActivityInfo:
    info = PendingActivityInfo(activity_id="3", attempt=attempt, last_attempt_complete_time=_at(14, 9))
    info.activity_type.name = "ensure_issue"
    if message is not None:
        info.last_failure.CopyFrom(Failure(message=message))
    return info


def test_gitlab_trouble_is_the_most_retried_failing_activity() -> None:
    """A first attempt, or one without a failure, is no trouble; the most retried one is."""
    assert worst_pending([_pending(1, "boom"), _pending(3, None)]) is None
    worst = worst_pending([_pending(2, "502 Bad Gateway"), _pending(5, "Connection refused\nmore detail")])
    assert worst is not None
    trouble = trouble_of(worst, since=datetime(2026, 11, 30, 14, 2, tzinfo=UTC))
    assert trouble.summary() == "GitLab unreachable since 14:02 UTC, retrying (attempt 5): Connection refused"
    assert trouble_of(worst).since == datetime(2026, 11, 30, 14, 9, tzinfo=UTC)


def _text(draw: Any) -> str:
    console = Console(width=200, record=True, force_terminal=False)
    draw(console)
    return console.export_text()


def test_an_aborted_feature_reads_as_aborted() -> None:
    """Status and list say aborted, never completed."""
    now = datetime(2026, 11, 30, tzinfo=UTC)
    st = MigrationStatus(
        workflow_id="migration:anthropic/claude-sonnet-4-5/20250929", kind="migration", stage="features",
        model="claude_sonnet_4_5_20250929",
        features=(FeatureProgress(feature="duo_chat", stage="aborted", outcome="aborted: feature retired"),
                  FeatureProgress(feature="code_generation", stage="implement")),
    )
    shown = _text(lambda c: render.status(c, st, now=now))
    assert "aborted: feature retired" in shown and "completed" not in shown
    row = Row(workflow_id=st.workflow_id, model=st.model, stage="aborted", running=False, done=1, aborted=1,
              total=2, next_deadline=None, days_left=None)
    listed = _text(lambda c: render.rows(c, [row], include_closed=True))
    assert "1/2 (1 aborted)" in listed and "completed" not in listed


def test_stdlib_and_structlog_share_one_json_renderer() -> None:
    """Off a terminal, temporalio's and python-gitlab's records are JSON lines like structlog's,
    with tracebacks in ``exception`` and no colour codes."""
    program = textwrap.dedent("""
        import logging, structlog
        from model_migration import logging as mm_logging
        mm_logging.configure("info", "auto")
        try:
            raise ValueError("gitlab said no")
        except ValueError:
            logging.getLogger("temporalio.activity").warning("Completing activity as failed", exc_info=True)
            structlog.get_logger("worker").exception("step_failed", attempt=3)
        logging.getLogger("gitlab").error("plain %s", "record")
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    records = json_lines(done.stderr)
    assert [r["event"] for r in records] == ["Completing activity as failed", "step_failed", "plain record"]
    assert all("Traceback" in r["exception"] and "gitlab said no" in r["exception"] for r in records[:2])
    assert records[0]["logger"] == "temporalio.activity" and records[1]["attempt"] == 3
    assert "\x1b[" not in done.stderr
