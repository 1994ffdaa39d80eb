"""The demo's rollouts. With Prometheus installed, the engine drives every feature's flag.

Each feature's catalog entry is given a flag target for the run: the sandbox's GitLab instance
flag, a production-only ladder of 25 % then 100 % of actors, and analysis thresholds fit for
windows of seconds. The simulated AI gateway sends each feature's traffic and asks the feature's
flag which model serves each user (``InstanceFlagGate``), and Prometheus scrapes it every second.

``REGRESSED``'s candidate regresses once it serves more than ``REGRESS_ABOVE`` % of the feature's
requests, so the analysis fails it at 25 % and the engine rolls it back on its own. The team then
fixes it (the scenario heals), waits until the regressed requests have left Prometheus's window,
and sends ``retry_rollout``: a new rollout starts at the step that failed and finishes.

Without Prometheus the teams drive their flags by hand and report each step (``report_rollout``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel
from rich.console import Console
from temporalio.client import Client

from gitlab_sandbox.flag_routers import InstanceFlagGate
from gitlab_sandbox.gateway_sim import FeatureTraffic
from gitlab_sandbox.metrics_stack import MetricsStack
from model_migration import operations as ops
from model_migration.clients.prometheus import PrometheusClient
from model_migration.domain.rollout import DEFAULT_ANALYSIS, REQUESTS, Condition, LadderStep, MetricTemplate, judge, promql_duration
from model_migration.domain.rollout_machine import StepRecord
from model_migration.domain.rollout_spec import FlagKind, RolloutOverrides, RolloutSpec
from model_migration.domain.stages import FeatureStage
from model_migration.prometheus_setup import SETUP_COMMAND
from workflows.messages import FeatureStatus, MigrationInput, RetryRollout, RolloutResult, Status

REGRESSED = "duo_chat"
REGRESS_ABOVE = 15.0
WINDOW = timedelta(seconds=3)
LADDER = (LadderStep(percentage=25), LadderStep(percentage=100))
#: The default templates with no grey zone and thresholds set for seconds-long windows of a few
#: hundred requests: a healthy candidate's noise stays well inside, the regressing one (errors
#: +0.10, latency ×3, acceptance −0.10) far outside.
_WIDER = {
    "error_ratio": (Condition(op="<=", threshold=0.05), Condition(op=">", threshold=0.05)),
    "latency_p95": (Condition(op="<=", threshold=2.0), Condition(op=">", threshold=2.0)),
    "acceptance_rate": (Condition(op=">=", threshold=-0.08), Condition(op="<", threshold=-0.08)),
}
ANALYSIS = tuple(
    t.model_copy(update={"min_requests": 20, "success": _WIDER[t.name][0], "failure": _WIDER[t.name][1]}) for t in DEFAULT_ANALYSIS
)
#: A demo run: bakes and the hold in seconds, measured every second over the last three.
OVERRIDES = RolloutOverrides(
    bake=timedelta(seconds=8), hold=timedelta(seconds=2), test_run=True, analysis_interval=timedelta(seconds=1),
    analysis_window=WINDOW, drain_window=WINDOW, drain_recheck=timedelta(seconds=1),
)
#: The rollout stage's deadline: the engine's two rollouts of REGRESSED fit in it.
ROLLOUT_PLAN = timedelta(seconds=60)
NOT_INSTALLED = f"Prometheus is not installed ({SETUP_COMMAND} installs it): the teams drive their flags and report each step by hand"


class MeasurementSummary(BaseModel):
    #: Measurements are taken in rounds, every metric once a round (every ``analysis_interval``).
    round: int
    metric: str
    value: float | None
    requests: float
    success: str
    failure: str
    result: str


class StepSummary(BaseModel):
    label: str
    outcome: str
    measurements: list[MeasurementSummary] = []


class RolloutSummary(BaseModel):
    attempt: int
    phase: str
    outcome: str
    failed_step: int | None = None
    steps: list[StepSummary]


class RolloutReport(BaseModel):
    """How the flags were driven, and which features the engine rolled back and retried."""

    driven_by: Literal["engine", "team"]
    prometheus_url: str = ""
    rolled_back: list[str] = []
    retried: list[str] = []


def driven_request(request: MigrationInput) -> MigrationInput:
    """The migration with every feature's flag on the sandbox's instance flags, driven by the engine."""
    spec = RolloutSpec(target=FlagKind.GITLAB_INSTANCE, environments=("production",), ladder=LADDER, analysis=ANALYSIS)
    tune = request.tunables
    tune = tune.model_copy(update={"rollout": OVERRIDES, "plan": tune.plan.model_copy(update={"rollout": ROLLOUT_PLAN})})
    features = tuple(f.model_copy(update={"rollout": spec}) for f in request.features)
    return request.model_copy(update={"features": features, "tunables": tune})


class Gateway:
    """The simulated AI gateway's traffic: one feature per catalog entry, each following its own flag."""

    def __init__(self, stack: MetricsStack, gitlab_url: str, token: str, request: MigrationInput) -> None:
        self.stack = stack
        self.candidate = request.model.gitlab_identifier
        self._baselines = {f.name: request.replaced.gitlab_identifier if request.replaced else f.current_model for f in request.features}
        self._gates = {f.name: InstanceFlagGate(gitlab_url, token, f.flag) for f in request.features}

    def start(self) -> None:
        for feature, gate in self._gates.items():
            gate.start()
            self.stack.gateway.set_gate(feature, gate)
        self.stack.gateway.configure({name: self._traffic(name, "regressing" if name == REGRESSED else "healthy") for name in self._gates})

    def heal(self, feature: str) -> None:
        self.stack.gateway.configure({feature: self._traffic(feature, "healthy")})

    def stop(self) -> None:
        self.stack.gateway.configure(dict.fromkeys(self._gates))
        for feature, gate in self._gates.items():
            self.stack.gateway.set_gate(feature, None)
            gate.stop()

    def _traffic(self, feature: str, scenario: str) -> FeatureTraffic:
        return FeatureTraffic(candidate=self.candidate, baseline=self._baselines[feature], scenario=scenario, regress_above=REGRESS_ABOVE)

    async def candidate_gone(self, feature: str, timeout: float = 30.0) -> None:
        """Wait until the candidate served nothing over the analysis window: its regressed requests are out of it."""
        query = f'sum(rate({REQUESTS}{{feature="{feature}",model="{self.candidate}"}}[{promql_duration(WINDOW)}]))'
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        with PrometheusClient(self.stack.prometheus_url) as prometheus:
            while await asyncio.to_thread(prometheus.instant, query):
                if loop.time() > end:
                    raise ops.UserError(f"the demo waited {timeout:.0f}s for {feature}'s candidate traffic to stop and gave up")
                await asyncio.sleep(0.5)


async def play_rollout(client: Client, wid: str, feature: str, dri: str, gateway: Gateway, say: Console) -> None:
    """The engine rolls the flag out; after a rollback the team fixes the candidate and retries, once."""
    from model_migration.demo import wait_for  # here: the demo module imports this one

    st = await wait_for(client, wid, lambda s: s.stage != FeatureStage.EVALUATE)
    flag = st.flag if isinstance(st, FeatureStatus) else ""
    ladder = " → ".join(f"{s.percentage} %" for s in LADDER)
    say.print(f"  {feature}: the engine rolls flag {flag} out ({ladder} of actors), analysed on Prometheus")
    st = await wait_for(client, wid, _rollout_ended)
    if st.stage == FeatureStage.DONE:
        say.print(f"  {feature}: rolled out, flag removed, clean-up merge request opened")
        return
    run = st.rollouts[-1] if isinstance(st, FeatureStatus) and st.rollouts else None
    where = run.failed_label if run and run.failed_label else "the failed step"
    say.print(f"  {feature}: the analysis failed the candidate at {where}: the engine turned the flag off (rolled back)")
    gateway.heal(feature)
    say.print(f"  {feature}: the team fixes the candidate; waiting for its regressed requests to leave Prometheus's window")
    await gateway.candidate_gone(feature)
    await ops.send(client, wid, "retry_rollout", RetryRollout(actor=dri, reason="the candidate's regression is fixed"))
    say.print(f"  {feature}: retry_rollout: a new rollout starts at {where}")
    st = await wait_for(client, wid, _rollout_ended)
    if st.stage != FeatureStage.DONE:
        raise ops.UserError(f"{feature} was rolled back again after its retry; see {wid}")
    say.print(f"  {feature}: rolled out on the retry, flag removed, clean-up merge request opened")


def _rollout_ended(s: Status) -> bool:
    """Done, or back in implement with its last rollout ended (rolled back, aborted or failed)."""
    if s.stage == FeatureStage.DONE:
        return True
    return isinstance(s, FeatureStatus) and s.stage == FeatureStage.IMPLEMENT and bool(s.rollouts) and not s.rollouts[-1].running


# -- the summary ------------------------------------------------------------------------------


def engine_rollouts(results: tuple[RolloutResult, ...]) -> list[RolloutSummary]:
    return [
        RolloutSummary(attempt=n, phase=str(r.phase), outcome=r.outcome, failed_step=r.failed_step, steps=[_step(s) for s in r.records])
        for n, r in enumerate(results, start=1)
    ]


def _step(record: StepRecord) -> StepSummary:
    by_name: dict[str, MetricTemplate] = {t.name: t for t in ANALYSIS}
    rounds: dict[str, int] = {}
    measured = []
    for m in record.measurements:
        template = by_name.get(m.metric)
        if template is None:
            continue
        rounds[m.metric] = rounds.get(m.metric, 0) + 1
        measured.append(MeasurementSummary(
            round=rounds[m.metric], metric=m.metric, value=m.value, requests=m.requests, success=str(template.success),
            failure=str(template.failure), result=str(judge(template, m)),
        ))
    return StepSummary(label=record.label, outcome=str(record.outcome or "none"), measurements=measured)


def reported_rollouts(st: Status) -> list[RolloutSummary]:
    """A team's own rollout, as it reported each step: no measurements, the team watched its dashboards."""
    if not isinstance(st, FeatureStatus) or not st.rollout:
        return []
    steps = [StepSummary(label=f"production: {s.percentage} % of actors", outcome="rolled back" if s.rollback else "reported")
             for s in st.rollout]  # fmt: skip
    phase = "done" if st.rollout_percentage == 100 else "running"
    return [RolloutSummary(attempt=1, phase=phase, outcome=f"reported by the team, up to {st.rollout_percentage} %", steps=steps)]


def report(driven_by: Literal["engine", "team"], prometheus_url: str, rollouts: dict[str, list[RolloutSummary]]) -> RolloutReport:
    back = [name for name, runs in rollouts.items() if any(r.phase == "rolled_back" for r in runs)]
    retried = [name for name in back if rollouts[name][-1].phase == "done" and len(rollouts[name]) > 1]
    return RolloutReport(driven_by=driven_by, prometheus_url=prometheus_url, rolled_back=back, retried=retried)


def describe(runs: list[RolloutSummary]) -> str:
    """One line: each rollout's steps (✓ passed, ✗ failed) and how it ended, with a failed step's failing metrics."""
    parts = []
    for r in runs:
        steps = []
        for s in r.steps:
            short = s.label.removeprefix("production: ").removesuffix(" of actors")
            steps.append(f"{short} {_MARKS.get(s.outcome, s.outcome)}".rstrip())
            latest = {m.metric: m for m in s.measurements}
            failing = [f"{m.metric} {m.value:.3g} {m.failure}" for m in latest.values() if m.result == "failed" and m.value is not None]
            if s.outcome == "failed" and failing:
                steps[-1] += f" ({', '.join(failing)})"
        parts.append(f"{', '.join(steps)}: {r.phase.replace('_', ' ')}")
    return "; then ".join(parts) or "none"


_MARKS = {"successful": "✓", "failed": "✗", "reported": ""}
