"""A worker killed with SIGKILL mid-ladder: the next one resumes at the same step, applies no step
again, skips no bake time and posts each note once (issue 10).

A ``RolloutWorkflow`` drives a GitLab instance flag in the sandbox up 10 %, 50 %, 100 % on a task
queue served by a ``model-migration worker`` subprocess, configured as a user configures it (the
sandbox GitLab, the session's Prometheus). The simulated gateway follows the flag, so each bake is
measured on real scrapes. The worker is killed in the middle of the second step's bake, and again
while the rollout holds at 100 %.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.rollout_payloads import FlagKind, FlagTarget, RolloutActivity
from model_migration.clients.gitlab import GitLabClient
from model_migration.domain.models import IssueDraft
from model_migration.domain.rollout_machine import Phase
from tests.e2e.cli import Cli, cli_env
from tests.e2e.test_durability import MARKER
from tests.metrics_fixtures import MetricsStack
from tests.temporal_fixtures import assert_eventually
from tests.workflows.test_rollout import ANALYSIS, BASELINE, CANDIDATE, TUNABLES, FlagFollower, ladder
from workflows.rollout import RolloutWorkflow
from workflows.rollout_messages import RolloutInput, RolloutResult, RolloutStatus

BAKE = timedelta(seconds=5)
HOLD = timedelta(seconds=3)
#: A measurement or flag write killed in flight is retried once its start-to-close timeout passes.
DURABLE = TUNABLES.model_copy(update={"hold": HOLD, "activity_timeout": timedelta(seconds=5)})
LABELS = [f"production: {p} % of actors" for p in (10, 50, 100)]


@pytest.fixture
def cli(dev_env: WorkflowEnvironment, gitlab_sandbox, metrics_stack: MetricsStack, tmp_path: Path) -> Iterator[Cli]:  # type: ignore[no-untyped-def]
    runner = Cli({**cli_env(dev_env, gitlab_sandbox), "MODEL_MIGRATION_PROMETHEUS_URL": metrics_stack.prometheus_url,
                  "MODEL_MIGRATION_STATE_DIR": str(tmp_path / "state")})
    yield runner
    runner.kill_workers()


class Workers:
    """``model-migration worker`` subprocesses, each logging to a file (a pipe nobody reads fills up and stalls it)."""

    def __init__(self, cli: Cli, logs: Path) -> None:
        self.cli, self.logs, self.started = cli, logs, 0

    async def start(self) -> Path:
        self.started += 1
        log = self.logs / f"worker-{self.started}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "model_migration.cli", "worker"], env=self.cli.env,
                                    stdout=subprocess.DEVNULL, stderr=out, stdin=subprocess.DEVNULL)
        self.cli.workers.append(proc)
        end = time.monotonic() + 30
        while '"worker_started"' not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"the worker refused to start: {log.read_text(errors='replace')[-2000:]}"
            assert time.monotonic() < end, f"the worker did not start: {log.read_text(errors='replace')[-2000:]}"
            await asyncio.sleep(0.1)
        return log

    def kill(self) -> None:
        assert all(p.poll() is None for p in self.cli.workers), "a worker died on its own"
        self.cli.kill_workers()  # SIGKILL


class Watched(FlagFollower):
    """The flag follower, remembering each state of the flag it read (None: no such flag)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.seen: list[float | None] = []

    def _percentage(self) -> float:
        found = self.gitlab.get_feature(self.flag)
        value = found.percentage_of_actors if found is not None else None
        if not self.seen or self.seen[-1] != value:
            self.seen.append(value)
        return value or 0.0


async def query(handle: WorkflowHandle[Any, Any], ready, timeout: float = 60) -> RolloutStatus:  # type: ignore[no-untyped-def]
    """The status once ``ready(status)``; a query no worker answers yet counts as not ready."""
    async def check() -> RolloutStatus:
        try:
            st: RolloutStatus = await handle.query(RolloutWorkflow.status, rpc_timeout=timedelta(seconds=5))
        except (RPCError, WorkflowQueryFailedError) as err:  # no worker yet, or one still replaying the history
            raise AssertionError(f"no answer: {err}") from None
        if st.phase.terminal and not ready(st):
            measured = [(m.metric, m.value, m.requests) for r in st.records for m in r.measurements]
            pytest.fail(f"the rollout ended {st.phase} at step {st.step}: {measured}")
        assert ready(st), (st.phase, st.step, [(e.event, e.step) for e in st.log][-4:])
        return st

    return await assert_eventually(check, timeout=timeout, interval=0.1)


async def scheduled(handle: WorkflowHandle[Any, Any]) -> Counter[str]:
    """Activities the workflow scheduled, by type: a retried attempt is not a new one."""
    history = await handle.fetch_history()
    return Counter(e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                   if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)


async def test_sigkill_mid_bake_and_mid_hold_resumes_the_same_step(  # type: ignore[no-untyped-def]
    cli: Cli, dev_env: WorkflowEnvironment, gitlab_sandbox, metrics_stack: MetricsStack, tmp_path: Path,
) -> None:
    """Killed while 50 % bakes and while it holds: each step applied and noted once, each bake and the hold served in full."""
    feature = f"kill_{uuid.uuid4().hex[:6]}"
    flag, wid = f"{feature}_model", f"rollout:{feature}"
    gitlab = GitLabClient(gitlab_sandbox.url, gitlab_sandbox.token, gitlab_sandbox.project_path, gitlab_sandbox.group_path)
    issue = gitlab.ensure_issue(IssueDraft(title=f"{feature} rollout", description="", marker=f"rollout-test:{feature}"))
    workers = Workers(cli, tmp_path)
    logs = [await workers.start()]
    request = RolloutInput(
        feature=feature, dri="achen", manager="mkowalski", target=FlagTarget(kind=FlagKind.GITLAB_INSTANCE, name=flag),
        candidate=CANDIDATE, baseline=BASELINE, issue_iid=issue.iid, ladder=ladder(10, 50, 100, bake=BAKE), analysis=ANALYSIS,
        test_run=True, tunables=DURABLE,
    )
    follower = Watched(metrics_stack, gitlab, feature, flag)
    with follower:
        handle = await dev_env.client.start_workflow(RolloutWorkflow.run, request, id=wid, task_queue=cli.env["MODEL_MIGRATION_TASK_QUEUE"])
        before = await query(handle, lambda s: s.phase == Phase.BAKING and s.step == 1 and s.records[-1].measurements)
        workers.kill()  # mid-bake of 50 %, with some of its measurements taken
        mid_bake = datetime.now(UTC)
        await asyncio.sleep(3)
        logs.append(await workers.start())
        await query(handle, lambda s: s.phase == Phase.HOLDING)
        workers.kill()  # while it holds at 100 %
        mid_hold = datetime.now(UTC)
        logs.append(await workers.start())
        result: RolloutResult = await asyncio.wait_for(handle.result(), timeout=60)
    tail = "\n".join(f"{log.name}: {log.read_text(errors='replace')[-1500:]}" for log in logs)
    assert result.phase == Phase.DONE, (result.outcome, [(e.event, e.step, e.detail) for e in result.log], tail)

    # Each step applied once, by the log and by the workflow's history, and the flag only ever went up.
    assert [(r.step, r.label, r.outcome) for r in result.records] == [(i, label, "successful") for i, label in enumerate(LABELS)]
    assert Counter(e.step for e in result.log if e.event == "applied") == {0: 1, 1: 1, 2: 1}, result.log
    activities = await scheduled(handle)
    assert activities[RolloutActivity.APPLY_FLAG_STEP] == 3 and activities[RolloutActivity.REMOVE_FLAG] == 1, activities
    writes = [method for _, method, path, status, _ in gitlab_sandbox.server.requests.entries()
              if path == f"/api/v4/features/{flag}" and method in ("POST", "DELETE") and status < 300]
    # 10 %: the team-members group, then the percentage; 50 %: the percentage; 100 %: fully on; then deleted.
    assert writes == ["POST", "POST", "POST", "POST", "DELETE"], writes
    climbed = [p for p in follower.seen if p is not None]
    assert climbed == sorted(climbed) and {10, 50, 100} <= set(climbed), follower.seen
    assert gitlab.get_feature(flag) is None

    # The 50 % bake: at least its bake time, the measurements from before the kill kept, more taken after it.
    step = result.records[1]
    assert step.applied_at is not None and step.ended_at is not None
    assert step.applied_at == before.records[-1].applied_at and step.applied_at < mid_bake < step.ended_at
    assert step.ended_at - step.applied_at >= BAKE, step.ended_at - step.applied_at
    kept = before.records[-1].measurements
    assert step.measurements[: len(kept)] == kept and len(step.measurements) > len(kept)
    for record in result.records:
        assert record.ended_at is not None and record.applied_at is not None and record.ended_at - record.applied_at >= BAKE
    held = {e.event: e.at for e in result.log if e.event in ("holding at 100 %", "held")}
    assert held["holding at 100 %"] < mid_hold < held["held"] and held["held"] - held["holding at 100 %"] >= HOLD, held

    # Each note once: three steps' successes (the last with the hold) and the drain.
    posted = Counter(m for n in gitlab.list_notes(issue.iid) for m in MARKER.findall(n.body))
    assert posted == {f"{wid}:note:{n}": 1 for n in range(1, 5)}, posted
    assert activities["post_note"] == 4, activities
