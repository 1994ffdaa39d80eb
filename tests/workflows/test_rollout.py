"""RolloutWorkflow against real parts: a GitLab instance flag in the sandbox, the simulated AI
gateway routing users by that flag, and a real Prometheus scraping it every second.

The gateway's router hashes each user with the flag's name as GitLab's percentage-of-actors
gate does; a watcher thread here reads the flag from GitLab (the Features API) and tells the
gateway the percentage it reads, so the traffic follows the flag the engine writes. Bakes are
seconds (a test run); the engine only ever reads Prometheus.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
import requests
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.gitlab import GitLabActivities
from activities.notify import NotifyActivities
from activities.rollout import RolloutActivities
from activities.rollout_payloads import FlagKind, FlagTarget
from model_migration.clients.flag_targets import GitLabInstanceFlag
from model_migration.clients.gitlab import GitLabClient
from model_migration.clients.notifier import LogNotifier
from model_migration.clients.prometheus import PrometheusClient
from model_migration.domain.models import IssueDraft
from model_migration.domain.rollout import DEFAULT_ANALYSIS, Condition, LadderStep
from model_migration.domain.rollout_machine import Abort, Phase, Promote, Retry
from tests.metrics_fixtures import MetricsStack
from tests.temporal_fixtures import assert_eventually
from workflows.rollout import RolloutWorkflow
from workflows.rollout_messages import RolloutInput, RolloutResult, RolloutStatus, RolloutTunables

BAKE = timedelta(seconds=4)
SLOW_BAKE = timedelta(seconds=12)
#: Where a regressing candidate turns bad on a 10 → 25 % ladder: midway, because the share is
#: measured over the last 400 requests, and at 15 % a 10 % step's noise crossed it now and then.
REGRESS_ABOVE = 17.5
CANDIDATE, BASELINE = "claude_sonnet_4_5_20250929", "claude_3_7_sonnet_20250219"
#: The default templates with no grey zone (a measurement passes or fails) and thresholds set for
#: seconds-long windows of a few hundred simulated requests: the healthy candidate's noise stays
#: well inside, the regressing one (errors +0.10, latency ×3, acceptance −0.10) far outside.
_WIDER = {
    "error_ratio": (Condition(op="<=", threshold=0.05), Condition(op=">", threshold=0.05)),
    "latency_p95": (Condition(op="<=", threshold=2.0), Condition(op=">", threshold=2.0)),
    "acceptance_rate": (Condition(op=">=", threshold=-0.08), Condition(op="<", threshold=-0.08)),
}
ANALYSIS = tuple(
    t.model_copy(update={"min_requests": 20, **dict(zip(("success", "failure"), _WIDER.get(t.name, (t.success, t.failure)), strict=True))})
    for t in DEFAULT_ANALYSIS
)
TUNABLES = RolloutTunables(
    analysis_interval=timedelta(seconds=1), analysis_window=timedelta(seconds=3), hold=timedelta(seconds=2),
    drain_window=timedelta(seconds=3), drain_recheck=timedelta(seconds=1), activity_timeout=timedelta(seconds=10),
)


@dataclass
class Rollouts:
    client: Any
    queue: str
    gitlab: GitLabClient
    stack: MetricsStack


@pytest_asyncio.fixture(scope="session")
async def rollouts(dev_env: WorkflowEnvironment, gitlab_sandbox, metrics_stack: MetricsStack) -> AsyncIterator[Rollouts]:  # type: ignore[no-untyped-def]
    """A worker with the rollout workflow and its activities: flags in the sandbox, metrics from Prometheus."""
    def gitlab() -> GitLabClient:
        return GitLabClient(gitlab_sandbox.url, gitlab_sandbox.token, gitlab_sandbox.project_path, gitlab_sandbox.group_path)

    rollout = RolloutActivities({FlagKind.GITLAB_INSTANCE: lambda t: GitLabInstanceFlag(gitlab(), t.name)},
                                lambda: PrometheusClient(metrics_stack.prometheus_url))
    queue = f"rollout-{uuid.uuid4().hex[:8]}"
    activities = [*rollout.all(), GitLabActivities(gitlab).post_note, NotifyActivities(LogNotifier()).notify]
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(dev_env.client, task_queue=queue, workflows=[RolloutWorkflow], activities=activities,
                          activity_executor=executor):
            yield Rollouts(dev_env.client, queue, gitlab(), metrics_stack)


class FlagFollower:
    """The gateway asks the flag which model serves each user: here, by reading GitLab's flag state."""

    def __init__(self, stack: MetricsStack, gitlab: GitLabClient, feature: str, flag: str, **traffic: Any) -> None:
        self.stack, self.gitlab, self.feature, self.flag, self.traffic = stack, gitlab, feature, flag, traffic
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def configure(self, **traffic: Any) -> None:
        self.traffic.update(traffic)

    def _percentage(self) -> float:
        found = self.gitlab.get_feature(self.flag)
        return found.percentage_of_actors if found is not None else 0.0

    def _follow(self) -> None:
        while not self.stop.is_set():
            config = {"candidate": CANDIDATE, "baseline": BASELINE, "flag": self.flag, "percentage": self._percentage(), **self.traffic}
            requests.put(f"{self.stack.gateway_url}/-/config", json={"features": {self.feature: config}}, timeout=5).raise_for_status()
            self.stop.wait(0.25)

    def __enter__(self) -> FlagFollower:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        requests.put(f"{self.stack.gateway_url}/-/config", json={"features": {self.feature: None}}, timeout=5)


def ladder(*percentages: int, bake: timedelta = BAKE) -> tuple[LadderStep, ...]:
    return tuple(LadderStep(percentage=p, bake=bake) for p in percentages)


async def start(r: Rollouts, feature: str, steps: tuple[LadderStep, ...], **extra: Any) -> WorkflowHandle:
    issue = r.gitlab.ensure_issue(IssueDraft(title=f"{feature} rollout", description="", marker=f"rollout-test:{feature}"))
    request = RolloutInput(
        feature=feature, dri="achen", manager="mkowalski", target=FlagTarget(kind=FlagKind.GITLAB_INSTANCE, name=f"{feature}_model"),
        candidate=CANDIDATE, baseline=BASELINE, issue_iid=issue.iid, ladder=steps, analysis=ANALYSIS, test_run=True,
        tunables=TUNABLES, **extra,
    )
    return await r.client.start_workflow(RolloutWorkflow.run, request, id=f"rollout:{feature}", task_queue=r.queue)


async def phase(handle: WorkflowHandle, wanted: Phase, timeout: float = 60) -> RolloutStatus:
    async def check() -> RolloutStatus:
        st = await handle.query(RolloutWorkflow.status)
        assert st.phase == wanted, (st.phase, st.step_label, [(e.event, e.detail) for e in st.log][-4:])
        return st

    return await assert_eventually(check, timeout=timeout)


def notes(r: Rollouts, feature: str) -> list[str]:
    issue = r.gitlab.find_issue(f"{feature} rollout", f"rollout-test:{feature}")
    assert issue is not None
    return [n.body for n in r.gitlab.list_notes(issue.iid)]


async def test_a_healthy_candidate_climbs_holds_drains_and_deletes_the_flag(rollouts: Rollouts) -> None:
    feature = f"healthy_{uuid.uuid4().hex[:6]}"
    with FlagFollower(rollouts.stack, rollouts.gitlab, feature, f"{feature}_model"):
        handle = await start(rollouts, feature, ladder(10, 50, 100))
        await phase(handle, Phase.DONE, timeout=90)
        result: RolloutResult = await handle.result()
    assert result.phase == Phase.DONE, [(r.label, [(m.metric, m.value, m.requests) for m in r.measurements]) for r in result.records]
    assert [(r.label, r.outcome) for r in result.records] == [
        (f"production: {p} % of actors", "successful") for p in (10, 50, 100)
    ]
    assert all(len(r.measurements) >= 3 for r in result.records)  # measured through each bake
    assert [e.event for e in result.log][-3:] == ["holding at 100 %", "held", "drained"]
    assert f"{feature}_model" not in {f.name for f in rollouts.gitlab.list_features()}  # the flag is deleted
    posted = notes(rollouts, feature)
    assert sum("successful" in n and "| error_ratio |" in n for n in posted) == 3
    assert "No traffic left on the old model" in posted[-1]


async def test_a_candidate_regressing_at_25_percent_is_rolled_back_with_the_values(rollouts: Rollouts) -> None:
    feature = f"regress_{uuid.uuid4().hex[:6]}"
    with FlagFollower(rollouts.stack, rollouts.gitlab, feature, f"{feature}_model", scenario="regressing", regress_above=REGRESS_ABOVE):
        # Bakes long enough for the gateway's share and Prometheus's window to catch up with each step.
        handle = await start(rollouts, feature, ladder(10, 25, 100, bake=SLOW_BAKE))
        await phase(handle, Phase.ROLLED_BACK, timeout=60)
        result: RolloutResult = await handle.result()
    assert result.failed_step == 1, result.log
    failed = result.records[-1]
    assert failed.label == "production: 25 % of actors" and failed.outcome == "failed"
    assert failed.ended_at is not None and failed.applied_at is not None
    assert failed.ended_at - failed.applied_at < SLOW_BAKE  # rolled back within the bake, as soon as the limit was hit
    flag = next(f for f in rollouts.gitlab.list_features() if f.name == f"{feature}_model")
    assert flag.state == "off"
    rollback = next(n for n in notes(rollouts, feature) if "Rolled back" in n)
    assert "| error_ratio |" in rollback and "| failed |" in rollback and "> 0.05" in rollback


async def test_no_traffic_pauses_then_retry_continues(rollouts: Rollouts) -> None:
    feature = f"quiet_{uuid.uuid4().hex[:6]}"
    with FlagFollower(rollouts.stack, rollouts.gitlab, feature, f"{feature}_model", scenario="no_traffic") as follower:
        handle = await start(rollouts, feature, ladder(10, 100))
        st = await phase(handle, Phase.PAUSED)
        assert st.paused_by == "analysis" and st.records[-1].outcome == "inconclusive"
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(RolloutWorkflow.retry, Retry(actor=""))
        follower.configure(scenario="healthy")
        await handle.execute_update(RolloutWorkflow.retry, Retry(actor="achen", reason="traffic is back"))
        await phase(handle, Phase.BAKING)
        await handle.execute_update(RolloutWorkflow.promote, Promote(actor="achen", reason="healthy for a while"))
        st = await handle.query(RolloutWorkflow.status)
        assert st.step == 1 and [e.event for e in st.log if e.actor == "achen"] == ["retried", "promoted"]
        await handle.execute_update(RolloutWorkflow.abort, Abort(actor="lead", reason="test over"))
        result: RolloutResult = await handle.result()
    assert result.phase == Phase.ABORTED
    flag = next(f for f in rollouts.gitlab.list_features() if f.name == f"{feature}_model")
    assert flag.state == "off"


async def test_a_bake_under_15_minutes_without_the_test_flag_fails_the_run_once_in_one_line(rollouts: Rollouts) -> None:
    """Sent by hand (the Temporal CLI), a short bake not marked as a test run is refused as the input is decoded."""
    feature = f"short_{uuid.uuid4().hex[:6]}"
    request = {
        "feature": feature, "dri": "achen", "target": {"kind": "gitlab_instance", "name": f"{feature}_model"},
        "candidate": CANDIDATE, "baseline": BASELINE, "ladder": [{"percentage": 100, "bake": "PT5M"}],
    }
    handle = await rollouts.client.start_workflow("RolloutWorkflow", request, id=f"rollout:{feature}", task_queue=rollouts.queue)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    message = str(failed.value.cause)
    assert "bake time under 15 minutes" in message and "test or demo run" in message and "\n" not in message
    history = await handle.fetch_history()
    assert not [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert f"{feature}_model" not in {f.name for f in rollouts.gitlab.list_features()}  # nothing was applied
