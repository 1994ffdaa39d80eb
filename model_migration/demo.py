"""The demo: a dev server, the GitLab sandbox and a worker, then a 3-feature migration in seconds.

With Prometheus installed, the simulated AI gateway and a Prometheus scraping it start too, and the
engine drives every feature's flag; one feature's candidate regresses, is rolled back, and passes
on its retry (``demo_rollout.py``). Without it, the teams report their rollout steps by hand.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import requests
from pydantic import BaseModel
from rich.console import Console
from temporalio.client import Client

from activities.gitlab import GitLabActivities
from gitlab_sandbox.metrics_stack import MetricsStack, MetricsStackError
from model_migration import demo_rollout
from model_migration import operations as ops
from model_migration.catalog import load_catalog
from model_migration.clients.gitlab import GitLabClient
from model_migration.demo_rollout import NOT_INSTALLED, Gateway, RolloutReport, RolloutSummary
from model_migration.devserver import DevServer
from model_migration.domain.catalog import Catalog
from model_migration.domain.deadlines import StagePlan
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.escalation import scaled_ladder
from model_migration.domain.stages import FeatureStage
from model_migration.prometheus_setup import find_prometheus
from model_migration.settings import Settings
from workflows.messages import (
    CompleteStage,
    FeatureStatus,
    MigrationResult,
    MigrationStatus,
    ReportRollout,
    Status,
    Tunables,
    feature_workflow_id,
)

MODEL, REPLACES = "claude_sonnet_4_5_20250929", "claude_3_7_sonnet_20250219"
FEATURES = ("duo_chat", "code_generation", "code_explanation")
LATE = "code_generation"  # this team finishes implement late, so escalations fire
RETRIED = "code_explanation"  # this team's first prompt version fails the gate; the next one passes
FIRST_VERSION, SECOND_VERSION = "1.0.0-dev", "1.0.1-dev"
#: The sandbox's simulated models: the new model passes the gate on every feature, except with
#: the first prompt version of RETRIED's feature, which plays a clearly worse model.
SIMULATOR = {"run_seconds": 0.5, "profiles": {f"code_explanation.snippets.v2:{MODEL}@{FIRST_VERSION}": "fail"}}
DEMO_TUNABLES = Tunables(
    plan=StagePlan(
        implement=timedelta(seconds=8), evaluate=timedelta(seconds=10),
        rollout=timedelta(seconds=15), cleanup=timedelta(seconds=10),
    ),
    ladder=scaled_ladder(timedelta(seconds=2)),
    activity_timeout=timedelta(seconds=10),
    merge_poll=timedelta(seconds=1),
    evaluation_poll=timedelta(seconds=0.2),
    evaluation_heartbeat=timedelta(seconds=10),
)


class GateSummary(BaseModel):
    """One evaluation of a feature: its verdict and the per-metric table behind it."""

    attempt: int
    prompt_version: str
    harness: str
    verdict: str
    reason: str
    metrics: list[dict[str, object]]
    bars: list[dict[str, object]]


class FeatureSummary(BaseModel):
    name: str
    stage: FeatureStage
    outcome: str
    issue_url: str
    gates: list[GateSummary] = []
    #: Each rollout: its steps, with every measurement the engine's analysis took.
    rollouts: list[RolloutSummary] = []


class Summary(BaseModel):
    migration_id: str
    features: list[FeatureSummary]
    escalations: int
    tracking_issue_url: str
    temporal_ui_url: str
    model_config_mr_url: str
    gitlab_calls_per_feature: float
    rollout: RolloutReport


async def play_team(client: Client, migration: str, feature: str, say: Console, gateway: Gateway | None = None) -> None:
    """What a feature team does, through the same updates the CLI sends."""
    wid = feature_workflow_id(migration, feature)
    st = await wait_for(client, wid, lambda s: s.issue is not None)
    say.print(f"  {feature}: rollout issue {st.issue.web_url if st.issue else ''}")
    if feature == LATE:
        say.print(f"  {feature}: the team is late with implement…")
        await wait_for(client, wid, lambda s: len(s.escalations) >= 3)
    dri = st.pending_action.owner if st.pending_action else "team"
    for version in (FIRST_VERSION, SECOND_VERSION):
        await ops.send(client, wid, "complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor=dri, prompt_version=version))
        say.print(f"  {feature}: implement complete (prompt {version}); the engine runs the evaluation gate")
        st = await wait_for(client, wid, lambda s: bool(s.gates) and not s.gates[-1].running)
        gate = st.gates[-1]
        result = gate.result
        verdict = result.verdict if result is not None else f"no verdict ({gate.error})"
        say.print(f"  {feature}: gate verdict {verdict}" + (f" — {result.reason}" if result is not None else ""))
        if st.stage != FeatureStage.IMPLEMENT:
            break
    if gateway is not None:
        await demo_rollout.play_rollout(client, wid, feature, dri, gateway, say)
        return
    for pct in DEMO_TUNABLES.rollout_ladder:
        await ops.send(client, wid, "report_rollout", ReportRollout(actor=dri, percentage=pct))
        await asyncio.sleep(0.2)
    say.print(f"  {feature}: rolled out to 100 %")
    await ops.send(client, wid, "complete_stage", CompleteStage(stage=FeatureStage.CLEANUP, actor=dri, note="flag removed"))
    say.print(f"  {feature}: cleanup complete")


async def merge_model_configuration(client: Client, migration: str, gitlab: GitLabClient, say: Console) -> None:
    """AI Framework reviews and merges the AI gateway merge request the engine opened."""
    st = await wait_for(client, migration, lambda s: bool(s.config_mr_url))
    say.print(f"  ai-framework: model configuration {st.config_mr_url}")
    iid = int(st.config_mr_url.rstrip("/").rsplit("/", 1)[1])
    await asyncio.to_thread(gitlab.merge_merge_request, iid)
    say.print("  ai-framework: merged; the feature migrations start")


async def wait_for(client: Client, wid: str, ready, timeout: float = 120.0) -> Status:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        try:
            st = await ops.status(client, wid)
            if ready(st):
                return st
        except ops.UserError:
            pass  # not started yet
        if loop.time() > end:
            raise ops.UserError(f"the demo waited {timeout:.0f}s for {wid} and gave up")
        await asyncio.sleep(0.25)


@dataclass
class Stage:
    """A dev server, the GitLab sandbox and a worker, up for one demo."""

    client: Client
    settings: Settings
    gitlab: GitLabActivities
    ui_url: str
    say: Console
    catalog: Catalog
    token: str
    #: The simulated AI gateway and Prometheus, when asked for and installed.
    metrics: MetricsStack | None = None


@asynccontextmanager
async def stage(*, as_json: bool, state_dir: Path | None, simulator: dict[str, object], metrics: bool = False) -> AsyncIterator[Stage]:
    """Start everything a demo needs, and stop it all, whatever happens in between. With ``metrics``
    and Prometheus installed, the gateway sim and Prometheus too, Prometheus's first scrape awaited
    while the rest starts."""
    import worker as worker_module
    from gitlab_sandbox.gitlab import GitLabSandbox
    from model_migration import logging as mm_logging
    from model_migration.temporal import connect

    say = Console(stderr=as_json, quiet=False)
    mm_logging.configure("error", "console")
    base = state_dir or Path(tempfile.mkdtemp(prefix="model-migration-demo-"))
    catalog = load_catalog()
    token = secrets.token_urlsafe(24)
    server = DevServer(base / "temporal")
    box = GitLabSandbox(base / "gitlab.db", token=token, usernames=catalog.usernames())
    say.print(f"[bold]model-migration demo[/bold] (state in {base})")
    binary = find_prometheus() if metrics else None
    stack = MetricsStack(base / "prometheus", binary) if binary is not None else None
    stop = asyncio.Event()
    ready: asyncio.Future[None] | None = None
    try:
        if stack is not None:
            stack.launch()
            ready = asyncio.get_running_loop().run_in_executor(None, stack.wait_ready)  # in a thread, from now on
        server.start()
        box.start()
        say.print(f"Temporal {server.address}, Web UI {server.ui_url}; GitLab sandbox {box.url}")
        settings = Settings(temporal_address=server.address, gitlab_url=box.url, gitlab_token=token, state_dir=base,
                            prometheus_url=stack.prometheus_url if stack else None)
        gitlab = GitLabActivities(worker_module.gitlab_factory(settings))
        client = await connect(settings, wait=30.0)
        worker_task = asyncio.create_task(worker_module.run(settings, client, stop, gitlab))
        await asyncio.to_thread(_configure_simulator, box.url, token, simulator)
        if stack is not None and ready is not None:
            try:
                await ready
            except MetricsStackError as err:
                raise DomainError(str(err), type=ErrorType.METRICS_UNAVAILABLE) from None
            say.print(f"Prometheus {stack.prometheus_url}, scraping the simulated AI gateway {stack.gateway_url} every second")
        yield Stage(client=client, settings=settings, gitlab=gitlab, ui_url=server.ui_url, say=say, catalog=catalog, token=token,
                    metrics=stack)
        stop.set()
        await worker_task
    finally:
        stop.set()
        if ready is not None:
            ready.cancel()  # a demo that failed before Prometheus was ready: its waiting thread ends on its own
        if stack is not None:
            stack.stop()
        box.stop()
        server.stop()


async def hold(keep: bool, say: Console) -> None:
    if keep:
        say.print("Servers keep running; Ctrl-C to stop.")
        await asyncio.Event().wait()


async def run_demo(*, as_json: bool, keep: bool, state_dir: Path | None) -> int:
    async with stage(as_json=as_json, state_dir=state_dir, simulator=SIMULATOR, metrics=True) as on:
        client, settings, say = on.client, on.settings, on.say
        request = ops.build_input(on.catalog, MODEL, REPLACES, list(FEATURES), actor="ai-framework", tune=DEMO_TUNABLES)
        gateway = None
        if on.metrics is None:
            say.print(NOT_INSTALLED)
        else:
            request = demo_rollout.driven_request(request)
            gateway = Gateway(on.metrics, settings.gitlab_url, on.token, request)
            gateway.start()
            say.print(f"The engine drives each feature's flag; {demo_rollout.REGRESSED}'s candidate regresses above "
                      f"{demo_rollout.REGRESS_ABOVE:g} % of its traffic")
        try:
            migration = await ops.start(client, settings.task_queue, request)
            say.print(f"Started {migration}: {', '.join(FEATURES)}")
            ai_framework = GitLabClient(settings.gitlab_url, on.token, settings.gitlab_project)
            await merge_model_configuration(client, migration, ai_framework, say)
            await asyncio.gather(*(play_team(client, migration, f, say, gateway) for f in FEATURES))
            result = await client.get_workflow_handle(migration, result_type=MigrationResult).result()
        finally:
            if gateway is not None:
                gateway.stop()
        summary = await _summary(client, migration, result, on)
        _print(say, summary, as_json)
        await hold(keep, say)
    return 0 if all(f.stage == FeatureStage.DONE for f in summary.features) else 1


def _configure_simulator(gitlab_url: str, token: str, simulator: dict[str, object]) -> None:
    response = requests.put(f"{gitlab_url}/api/evaluation/-/config", json=simulator, headers={"PRIVATE-TOKEN": token}, timeout=10)
    response.raise_for_status()


def _gates(st: Status) -> list[GateSummary]:
    if not isinstance(st, FeatureStatus):
        return []
    return [
        GateSummary(
            attempt=g.attempt, prompt_version=g.prompt_version, harness=str(g.harness),
            verdict=str(g.result.verdict) if g.result else "none", reason=g.result.reason if g.result else g.error,
            metrics=[m.model_dump(mode="json") for m in g.result.metrics] if g.result else [],
            bars=[b.model_dump(mode="json") for b in g.result.bars] if g.result else [],
        )
        for g in st.gates
    ]


async def _summary(client: Client, migration: str, result: MigrationResult, on: Stage) -> Summary:
    st = await ops.status(client, migration)
    assert isinstance(st, MigrationStatus)
    outcomes = {f.feature: f for f in result.features}
    features = []
    for f in st.features:
        status = await ops.status(client, feature_workflow_id(migration, f.feature))
        done = outcomes.get(f.feature)
        rollouts = demo_rollout.engine_rollouts(done.rollouts) if done and done.rollouts else demo_rollout.reported_rollouts(status)
        features.append(FeatureSummary(
            name=f.feature, stage=f.stage, outcome=f.outcome or str(f.stage), issue_url=f.issue_url, gates=_gates(status),
            rollouts=rollouts,
        ))
    driven_by: Literal["engine", "team"] = "team" if on.metrics is None else "engine"
    prometheus = on.metrics.prometheus_url if on.metrics else ""
    return Summary(
        migration_id=migration, features=features, escalations=sum(f.escalations for f in st.features),
        tracking_issue_url=st.issue.web_url if st.issue else "", temporal_ui_url=on.ui_url,
        model_config_mr_url=st.config_mr_url,
        gitlab_calls_per_feature=round(sum(on.gitlab.calls.values()) / max(1, len(features)), 1),
        rollout=demo_rollout.report(driven_by, prometheus, {f.name: f.rollouts for f in features}),
    )


def _print(say: Console, summary: Summary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.model_dump(mode="json"), indent=2))
        return
    say.print("\n[bold]Summary[/bold]")
    say.print(f"Migration:      {summary.migration_id}")
    say.print(f"Tracking issue: {summary.tracking_issue_url}")
    say.print(f"Model config:   {summary.model_config_mr_url}")
    for f in summary.features:
        verdicts = " → ".join(f"{g.verdict} ({g.prompt_version})" for g in f.gates)
        say.print(f"  {f.name:<20} {f.outcome:<10} {f.issue_url}  gate: {verdicts}")
    r = summary.rollout
    by = f"driven by the engine, analysed on Prometheus {r.prometheus_url}:" if r.driven_by == "engine" else "reported by the teams:"
    say.print(f"Rollouts, {by}")
    for f in summary.features:
        say.print(f"  {f.name:<20} {demo_rollout.describe(f.rollouts)}")
    if r.rolled_back:
        say.print(f"Rolled back automatically: {', '.join(r.rolled_back)}; passed on retry: {', '.join(r.retried) or 'none'}")
    say.print(f"Escalations fired: {summary.escalations}")
    say.print(f"GitLab calls per feature: {summary.gitlab_calls_per_feature}")
    say.print(f"Temporal Web UI: {summary.temporal_ui_url}/namespaces/default/workflows")
