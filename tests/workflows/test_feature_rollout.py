"""A feature whose flag the engine drives (revision 5), end to end on real parts: the feature
workflow enters rollout through its evaluation gate, starts a ``RolloutWorkflow`` child that drives
a GitLab instance flag in the sandbox, the simulated gateway follows the flag, Prometheus scrapes
it, and the feature moves on the rollout's outcome: done → the clean-up merge request → done;
rolled back → implement → ``retry_rollout`` from the failed step → done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.rollout_payloads import FlagKind
from model_migration.clients.gitlab import GitLabClient
from model_migration.clients.prometheus import PrometheusClient
from model_migration.domain.models import Issue
from model_migration.domain.rollout import LadderStep
from model_migration.domain.rollout_spec import RolloutOverrides, RolloutSpec
from model_migration.domain.stages import FeatureStage
from tests.metrics_fixtures import MetricsStack
from tests.rollout_worker import rollout_worker
from tests.temporal_fixtures import Engine, assert_eventually
from tests.unit.test_rollout_templates import FLAG_TEMPLATE_HEADINGS, PLAN_TEMPLATE_HEADINGS
from tests.workflows.support import CATALOG, SLOW, start_feature, status, wait_stage
from tests.workflows.test_rollout import ANALYSIS, CANDIDATE, REGRESS_ABOVE, FlagFollower
from workflows.messages import Abort, CompleteStage, FeatureOutcome, ReportRollout, RetryRollout, RolloutResult, Tunables


@dataclass
class Driven:
    engine: Engine
    stack: MetricsStack
    gitlab: GitLabClient


@pytest_asyncio.fixture(scope="module")
async def driven(dev_env: WorkflowEnvironment, gitlab_sandbox, metrics_stack: MetricsStack, tmp_path_factory) -> AsyncIterator[Driven]:  # type: ignore[no-untyped-def]
    """The worker as ``model-migration worker`` builds it, with the rollout activities on the sandbox and Prometheus."""
    async with rollout_worker(dev_env, gitlab_sandbox, metrics_stack, tmp_path_factory.mktemp("results"), "driven") as engine:
        yield Driven(engine, metrics_stack, engine.gitlab_client())


def tunables(*percentages: int, bake: timedelta) -> Tunables:
    steps = tuple(LadderStep(percentage=p) for p in percentages)
    overrides = RolloutOverrides(
        ladder=steps, bake=bake, hold=timedelta(seconds=2), test_run=True, analysis_interval=timedelta(seconds=1),
        analysis_window=timedelta(seconds=3), drain_window=timedelta(seconds=3), drain_recheck=timedelta(seconds=1),
        baseline_window=timedelta(seconds=30),
    )
    return SLOW.model_copy(update={"rollout": overrides})


SPEC = CATALOG.feature("duo_chat").model_copy(update={
    "rollout": RolloutSpec(target=FlagKind.GITLAB_INSTANCE, environments=("production",), ladder=(LadderStep(percentage=100),),
                           analysis=ANALYSIS),
})


async def to_rollout(d: Driven, unique: str, tun: Tunables) -> tuple[WorkflowHandle, str]:
    handle = await start_feature(d.engine, unique, tunables=tun, spec=SPEC)
    flag = f"duo_chat_{unique}"
    await handle.execute_update("complete_stage", CompleteStage(
        stage=FeatureStage.IMPLEMENT, actor="achen", prompt_version="1.0.0-dev", flag_name=flag,
    ))
    await wait_stage(handle, FeatureStage.ROLLOUT, timeout=150)
    return handle, flag


async def candidate_gone(stack: MetricsStack) -> None:
    """The flag is off: once the candidate served nothing over the analysis window, its errors are out of it."""
    query = f'sum(rate(ai_gateway_requests_total{{feature="duo_chat",model="{CANDIDATE}"}}[3s]))'

    async def check() -> None:
        rate = PrometheusClient(stack.prometheus_url).instant(query)
        assert not rate, rate

    await assert_eventually(check, timeout=30)


async def test_the_engine_rolls_a_healthy_feature_out_cleans_up_and_closes_the_issue(driven: Driven, unique: str) -> None:
    flag = f"duo_chat_{unique}"
    with FlagFollower(driven.stack, driven.gitlab, "duo_chat", flag):  # the old model serves everyone before the rollout
        handle, _ = await to_rollout(driven, unique, tunables(25, 100, bake=timedelta(seconds=4)))
        st = await status(handle)
        assert st.flag_target == "gitlab_instance" and st.rollout_workflow_id.endswith(":rollout:1")
        assert st.pending_action is not None and st.pending_action.command == "rollout status"
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("report_rollout", ReportRollout(actor="achen", percentage=50))
        assert "the engine drives flag" in str(refused.value.cause)
        await wait_stage(handle, FeatureStage.DONE, timeout=120)
        outcome: FeatureOutcome = await handle.result()
    assert outcome.stage == FeatureStage.DONE and outcome.outcome == "done"
    [rollout] = outcome.rollouts
    assert [(r.label, r.outcome) for r in rollout.records] == [
        ("production: 25 % of actors", "successful"), ("production: 100 % of actors", "successful"),
    ]
    assert all(r.measurements for r in rollout.records)
    assert flag not in {f.name for f in driven.gitlab.list_features()}
    st = await status(handle)
    assert st.rollouts[0].phase == "done" and st.cleanup_mr
    issue = driven.gitlab.get_issue(st.issue.iid) if st.issue else None
    assert issue is not None and issue.state == "closed"
    last = driven.gitlab.list_notes(st.issue.iid)[-1].body  # type: ignore[union-attr]
    assert "The last rollout, step by step" in last and "drained" in last
    check_paper_trail(driven.gitlab, issue, flag, f"{handle.id}:issue:flag-issue:{flag}")


def check_paper_trail(gitlab: GitLabClient, plan: Issue, flag: str, marker: str) -> None:
    """Both issues follow GitLab's templates, and the engine filled them in as the ladder went."""
    assert plan.title == "Claude Sonnet 4.5 Duo Chat Rollout Plan"
    assert [h for h in PLAN_TEMPLATE_HEADINGS if h not in plan.description] == []
    timeline = plan.description.split("### Timeline", 1)[1].split("###", 1)[0]
    assert [line.split(" | ")[1:] for line in timeline.splitlines() if " UTC | production" in line] == [
        ["production: 25 % of actors", "successful |"], ["production: 100 % of actors", "successful |"],
    ], timeline
    criteria = plan.description.split("### Persevere / Continue Criteria", 1)[1].split("###", 1)[0]
    assert "* p95: not measured" not in criteria and "* Rate: not measured" not in criteria, criteria  # the old model's baseline
    found = gitlab.find_issue(f"[Feature flag] Enable {flag}", marker)
    assert found is not None
    flag_issue = gitlab.get_issue(found.iid)
    assert flag_issue.state == "closed" and "feature flag" in flag_issue.labels
    assert [h for h in FLAG_TEMPLATE_HEADINGS if h not in flag_issue.description] == []
    steps = flag_issue.description.split("### Global rollout on production", 1)[1].split("###", 1)[0]
    commands = [line.split(" (")[0] for line in steps.splitlines() if line.startswith("- [")]
    assert commands == [
        f"- [x] production: 25 % of actors: `/chatops run feature set {flag} 25 --actors`",
        f"- [x] production: 100 % of actors: `/chatops run feature set {flag} true`",
    ], commands
    assert f"- [x] `/chatops run feature delete {flag} --production`" in flag_issue.description
    assert plan.web_url in flag_issue.description


async def test_a_rollback_sends_the_feature_back_and_retry_resumes_at_the_failed_step(driven: Driven, unique: str) -> None:
    handle, flag = await to_rollout(driven, unique, tunables(10, 25, 100, bake=timedelta(seconds=12)))
    with FlagFollower(driven.stack, driven.gitlab, "duo_chat", flag, scenario="regressing", regress_above=REGRESS_ABOVE) as follower:
        st = await wait_stage(handle, FeatureStage.IMPLEMENT, timeout=90)
        assert st.rollouts[0].phase == "rolled_back" and st.rollouts[0].failed_step == 1, st.rollouts
        assert st.pending_action is not None and st.pending_action.command == "rollout retry"
        follower.configure(scenario="healthy")
        await candidate_gone(driven.stack)  # the regressed requests leave Prometheus's window before the retry
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("retry_rollout", RetryRollout(actor=""))
        await handle.execute_update("retry_rollout", RetryRollout(actor="achen", reason="the timeout is fixed"))
        await wait_stage(handle, FeatureStage.DONE, timeout=120)
        outcome: FeatureOutcome = await handle.result()
    first, second = outcome.rollouts
    assert first.phase == "rolled_back" and first.records[-1].outcome == "failed"
    assert [r.label for r in second.records] == ["production: 25 % of actors", "production: 100 % of actors"]
    assert outcome.stage == FeatureStage.DONE


async def test_aborting_the_feature_mid_rollout_turns_the_flag_off(driven: Driven, unique: str) -> None:
    """The feature ends first: its rollout is cancelled, and turns the flag off everywhere before it ends."""
    flag = f"duo_chat_{unique}"
    with FlagFollower(driven.stack, driven.gitlab, "duo_chat", flag):
        handle, _ = await to_rollout(driven, unique, tunables(25, 100, bake=timedelta(minutes=10)))

        async def baking() -> None:
            found = driven.gitlab.get_feature(flag)
            assert found is not None and found.percentage_of_actors == 25

        await assert_eventually(baking, timeout=30)
        rollout_id = (await status(handle)).rollout_workflow_id
        await handle.execute_update("abort", Abort(actor="lead", reason="feature retired"))
        outcome: FeatureOutcome = await handle.result()
    assert outcome.stage == FeatureStage.ABORTED
    rollout = await driven.engine.client.get_workflow_handle(rollout_id, result_type=RolloutResult).result()
    assert rollout.phase == "aborted" and rollout.log[-1].event == "aborted"
    found = driven.gitlab.get_feature(flag)
    assert found is not None and found.state == "off"
