"""RolloutWorkflow's healthy path on the two other flag targets: a GitLab project flag in the
sandbox and a flag on the real Unleash server. (The instance flag is tests/workflows/test_rollout.py.)
Each keeps its rollout-plan issue and its "Feature Flag Roll Out" issue, closed once the flag is gone.

The simulated gateway routes each user by the flag itself, as the gateway asks it: a project flag
read from the sandbox and evaluated with Unleash's hash, an Unleash flag through the real Unleash
Python SDK. One user in ten is a GitLab team member, so the team-members step has traffic to
measure. The engine reads only Prometheus; the candidate's share of the traffic is sampled from
the gateway to show that it followed each step.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.gitlab import GitLabActivities
from activities.notify import NotifyActivities
from activities.rollout import RolloutActivities
from activities.rollout_issues import RolloutIssueActivities
from activities.rollout_payloads import FlagKind, FlagTarget
from gitlab_sandbox.flag_routers import ProjectFlagGate, UnleashGate
from gitlab_sandbox.gateway_sim import FeatureTraffic
from model_migration.clients.flag_targets import GitLabProjectFlag, UnleashFlag
from model_migration.clients.gitlab import GitLabClient
from model_migration.clients.notifier import LogNotifier
from model_migration.clients.prometheus import PrometheusClient
from model_migration.clients.unleash import UnleashAdmin
from model_migration.domain.models import IssueDraft
from model_migration.domain.rollout import PRODUCTION, Audience, LadderStep
from model_migration.domain.rollout_machine import Phase
from model_migration.domain.rollout_views import RolloutPlan
from tests.metrics_fixtures import MetricsStack
from tests.unleash_fixtures import UnleashServer
from tests.workflows.support import CATALOG, REPLACED, TARGET
from tests.workflows.test_rollout import ANALYSIS, BAKE, BASELINE, CANDIDATE, TUNABLES, phase
from workflows.rollout import RolloutInput, RolloutResult, RolloutWorkflow

TEAM = tuple(f"User:{n}" for n in range(1, 101))  # of the gateway's 1,000 users
UNLEASH_ENVIRONMENTS = {"staging": "development", PRODUCTION: "production"}
LADDER = (
    LadderStep(audience=Audience.TEAM_MEMBERS, percentage=0, bake=BAKE),
    LadderStep(percentage=25, bake=BAKE),
    LadderStep(percentage=100, bake=BAKE),
)
#: The candidate's share (%) of the latest requests as each step's bake ends: team members (a
#: tenth), then 25 % of the others as well (about 32 %), then everyone.
SHARES = [(4, 20), (24, 45), (99.5, 100)]


@dataclass
class Targets:
    client: Any
    queue: str
    gitlab: GitLabClient
    stack: MetricsStack
    unleash: UnleashServer
    project_path: str
    gitlab_url: str
    gitlab_token: str


@pytest_asyncio.fixture(scope="module")
async def targets(  # type: ignore[no-untyped-def]
    dev_env: WorkflowEnvironment, gitlab_sandbox, metrics_stack: MetricsStack, unleash_server: UnleashServer
) -> AsyncIterator[Targets]:
    """A worker with the rollout workflow and activities for project flags and Unleash flags."""

    def gitlab() -> GitLabClient:
        return GitLabClient(gitlab_sandbox.url, gitlab_sandbox.token, gitlab_sandbox.project_path, gitlab_sandbox.group_path)

    flags = {
        FlagKind.GITLAB_PROJECT: lambda t: GitLabProjectFlag(gitlab(), t.name, team_members=TEAM, environments=t.environments),
        FlagKind.UNLEASH: lambda t: UnleashFlag(UnleashAdmin(unleash_server.url, unleash_server.admin_token), t.name,
                                                environments=UNLEASH_ENVIRONMENTS),
    }  # fmt: skip
    rollout = RolloutActivities(flags, lambda: PrometheusClient(metrics_stack.prometheus_url))
    queue = f"rollout-targets-{uuid.uuid4().hex[:8]}"
    issues = GitLabActivities(gitlab)
    activities = [*rollout.all(), *RolloutIssueActivities(issues).all(), issues.post_note, NotifyActivities(LogNotifier()).notify]
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(dev_env.client, task_queue=queue, workflows=[RolloutWorkflow], activities=activities,
                          activity_executor=executor):  # fmt: skip
            yield Targets(dev_env.client, queue, gitlab(), metrics_stack, unleash_server, gitlab_sandbox.project_path,
                          gitlab_sandbox.url, gitlab_sandbox.token)  # fmt: skip


@contextmanager
def gated(stack: MetricsStack, feature: str, gate: Callable[[str], bool]) -> Iterator[list[tuple[datetime, float]]]:
    """The feature's traffic routed by ``gate``; yields the candidate's share, sampled every 0.2 s."""
    sim = stack.gateway
    sim.configure({feature: FeatureTraffic(candidate=CANDIDATE, baseline=BASELINE)})
    sim.set_gate(feature, gate)
    samples: list[tuple[datetime, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            samples.append((datetime.now(UTC), sim.candidate_share(feature)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        stop.set()
        sampler.join(timeout=5)
        sim.set_gate(feature, None)
        sim.configure({feature: None})


async def climb(t: Targets, feature: str, target: FlagTarget) -> RolloutResult:
    issue = t.gitlab.ensure_issue(IssueDraft(title=f"{feature} rollout", description="", marker=f"rollout-test:{feature}"))
    # With a plan, the rollout keeps the rollout-plan issue (this one) and its flag issue up to date.
    plan = RolloutPlan(feature=CATALOG.feature("duo_chat").model_copy(update={"flag": target.name}), model=TARGET, replaced=REPLACED,
                       ladder=LADDER, analysis=ANALYSIS)
    request = RolloutInput(
        feature=feature, dri="achen", manager="mkowalski", target=target, candidate=CANDIDATE, baseline=BASELINE,
        issue_iid=issue.iid, ladder=LADDER, analysis=ANALYSIS, test_run=True, tunables=TUNABLES, plan=plan,
        plan_marker=f"rollout-test:{feature}",
    )  # fmt: skip
    handle = await t.client.start_workflow(RolloutWorkflow.run, request, id=f"rollout:{feature}", task_queue=t.queue)
    await phase(handle, Phase.DONE, timeout=60)
    result: RolloutResult = await handle.result()
    return result


def check_healthy(t: Targets, feature: str, result: RolloutResult, samples: list[tuple[datetime, float]]) -> None:
    """Every step successful and measured with candidate traffic, held, drained; the share followed each step."""
    assert result.phase == Phase.DONE, [(r.label, [(m.metric, m.value, m.requests) for m in r.measurements]) for r in result.records]
    assert [(r.label, r.outcome) for r in result.records] == [(s.label, "successful") for s in LADDER]
    assert all(r.measurements and r.measurements[-1].requests >= 20 for r in result.records)  # the candidate's, in Prometheus
    assert [e.event for e in result.log][-3:] == ["holding at 100 %", "held", "drained"]
    shares = []
    for record in result.records:
        assert record.ended_at is not None
        shares.append([share for at, share in samples if at <= record.ended_at][-1])
    assert all(low <= share <= high for share, (low, high) in zip(shares, SHARES, strict=True)), shares
    assert shares == sorted(shares), shares
    issue = t.gitlab.find_issue(f"{feature} rollout", f"rollout-test:{feature}")
    assert issue is not None
    assert "No traffic left on the old model" in t.gitlab.list_notes(issue.iid)[-1].body


def check_flag_issue(t: Targets, feature: str, flag: str) -> None:
    """The "Feature Flag Roll Out" issue: every step's box ticked in ladder order, closed after the flag went."""
    found = t.gitlab.find_issue(f"[Feature flag] Enable {flag}", f"rollout-test:{feature}:flag-issue:{flag}")
    assert found is not None
    issue = t.gitlab.get_issue(found.iid)
    assert issue.state == "closed" and "feature flag" in issue.labels
    steps = issue.description.split("## Rollback Steps", 1)[0]
    boxes = [line.split(": `")[0] for line in steps.splitlines() if line.startswith("- [") and "/chatops run feature set" in line]
    assert boxes == [f"- [x] {step.label}" for step in LADDER], boxes
    plan = t.gitlab.find_issue(f"{feature} rollout", f"rollout-test:{feature}")
    assert plan is not None and plan.web_url in issue.description


async def test_a_project_flag_rollout_climbs_holds_drains_and_deletes_the_flag(targets: Targets) -> None:
    """A GitLab project flag: team members (a user list), 25 %, 100 %; then the flag and its list are deleted."""
    feature = f"project_{uuid.uuid4().hex[:6]}"
    target = FlagTarget(kind=FlagKind.GITLAB_PROJECT, name=f"{feature}-model", environments=("staging", PRODUCTION))
    with (ProjectFlagGate(targets.gitlab_url, targets.gitlab_token, targets.project_path, target.name) as gate,
          gated(targets.stack, feature, gate) as samples):  # fmt: skip
        result = await climb(targets, feature, target)
    check_healthy(targets, feature, result, samples)
    check_flag_issue(targets, feature, target.name)
    assert targets.gitlab.get_project_flag(target.name) is None
    assert targets.gitlab.get_flag_user_list(f"{target.name}-team-members") is None


async def test_an_unleash_rollout_climbs_holds_drains_and_archives_the_flag(targets: Targets) -> None:
    """A flag on the Unleash server, the gateway asking the Python SDK: team members by context, 25 %, 100 %; then archived."""
    feature = f"unleash_{uuid.uuid4().hex[:6]}"
    target = FlagTarget(kind=FlagKind.UNLEASH, name=f"{feature}.model", environments=("staging", PRODUCTION))
    server = targets.unleash
    with (UnleashGate(server.url, server.backend_tokens["production"], target.name, team_members=TEAM) as gate,
          gated(targets.stack, feature, gate) as samples):  # fmt: skip
        result = await climb(targets, feature, target)
    check_healthy(targets, feature, result, samples)
    check_flag_issue(targets, feature, target.name)
    admin = UnleashAdmin(server.url, server.admin_token)
    try:
        assert admin.environments(target.name) is None  # archived
        assert UnleashFlag(admin, target.name, environments=UNLEASH_ENVIRONMENTS).state() == {"staging": "off", PRODUCTION: "off"}
    finally:
        admin.close()
