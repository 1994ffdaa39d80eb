"""Rollout benchmark: one engine-driven feature on the default ladder, time-skipped, every human step answered at once.

Run from the repository root: ``python bench/rollout.py``. One JSON object goes to stdout;
progress to stderr. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `worker` and friends importable
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from temporalio import activity, workflow  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.api.history.v1 import HistoryEvent  # noqa: E402
from temporalio.client import Client, WorkflowHandle  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

import worker as worker_module  # noqa: E402
from activities.gitlab import GitLabActivities  # noqa: E402
from activities.notify import NotifyActivities  # noqa: E402
from activities.rollout import Flag, Metrics, RolloutActivities  # noqa: E402
from activities.rollout_payloads import ApplyFlagStepInput, FlagKind, FlagTarget, MeasureStepInput, OldModelRateInput, RolloutActivity  # noqa: E402
from gitlab_sandbox.flag_routers import InstanceFlagGate  # noqa: E402
from gitlab_sandbox.gateway_sim import FeatureTraffic  # noqa: E402
from gitlab_sandbox.gitlab import GitLabSandbox  # noqa: E402
from gitlab_sandbox.metrics_stack import MetricsStack  # noqa: E402
from model_migration.catalog import load_catalog  # noqa: E402
from model_migration.clients.flag_targets import GitLabInstanceFlag  # noqa: E402
from model_migration.clients.gitlab import GitLabClient, WaitGate  # noqa: E402
from model_migration.clients.notifier import Notifier  # noqa: E402
from model_migration.clients.prometheus import PrometheusClient  # noqa: E402
from model_migration.converter import data_converter  # noqa: E402
from model_migration.devserver import free_port  # noqa: E402
from model_migration.domain.models import Notice  # noqa: E402
from model_migration.domain.rollout import DEFAULT_ANALYSIS, DEFAULT_LADDER, HOLD, PRODUCTION, Measurement, ladder_time  # noqa: E402
from model_migration.domain.rollout_machine import Retry  # noqa: E402
from model_migration.domain.rollout_spec import RolloutOverrides, RolloutSpec  # noqa: E402
from model_migration.domain.stages import FeatureStage  # noqa: E402
from model_migration.logging import configure  # noqa: E402
from model_migration.prometheus_setup import check_prometheus  # noqa: E402
from model_migration.temporal import binary, register_search_attributes  # noqa: E402
from tests.conftest import SandboxInfo  # noqa: E402
from tests.temporal_fixtures import _evaluation  # noqa: E402
from workflows.messages import FEATURE_REVISION, CompleteStage, FeatureMigrationInput, FeatureOutcome, Status, Tunables  # noqa: E402
from workflows.rollout import RolloutWorkflow  # noqa: E402

CATALOG = load_catalog()
FEATURE = "duo_chat"
TARGET, REPLACED = CATALOG.model("claude_sonnet_4_5_20250929"), CATALOG.model("claude_3_7_sonnet_20250219")
EXPECTED = ladder_time(DEFAULT_LADDER, HOLD)  # 9 bakes of 15 minutes and a day at 100 %: 26 h 15 min
TIMER_STARTED = EventType.EVENT_TYPE_TIMER_STARTED
#: A tenth of the gateway's 1,000 simulated users are GitLab team members, as in the project-flag tests.
TEAM_MEMBERS = tuple(f"User:{n}" for n in range(1, 101))
#: 1,000 requests/s, so a step sees a few hundred of the candidate's requests within the settle.
TRAFFIC = FeatureTraffic(candidate=TARGET.gitlab_identifier, baseline=REPLACED.gitlab_identifier, requests_per_tick=100)
#: Duo Chat with its flag driven on GitLab's instance flags: the default ladder, bakes, hold and
#: analysis (``DEFAULT_ANALYSIS`` as it stands). With the settle (see ``Settled``) a healthy
#: candidate's measurements sit far inside its thresholds (bench/README.md has the values), so
#: nothing was widened. Without it no threshold helps: a step with no candidate data yet has no
#: value, which is inconclusive whatever the bar.
SPEC = CATALOG.feature(FEATURE).model_copy(update={"rollout": RolloutSpec(target=FlagKind.GITLAB_INSTANCE)})


class Chain(BaseModel):
    span_s: float
    timers: int


@workflow.defn(sandboxed=False)
class TimerChain:
    """The baseline: bare Temporal sleeping through the same span in as many timers."""

    @workflow.run
    async def run(self, plan: Chain) -> int:
        step = timedelta(seconds=plan.span_s) / max(1, plan.timers)
        for _ in range(plan.timers):
            await workflow.sleep(step)
        return plan.timers


class Settled(RolloutActivities):
    """The real rollout activities, each reading of Prometheus first given the real seconds of
    traffic the time-skipped clock took away.

    On the time-skipping server a 15-minute bake passes in milliseconds, but the gateway and
    Prometheus run in real time (the gateway follows the flag every 0.25 s, Prometheus scrapes
    every second). Unhelped, a step's measurements would see no traffic of the step (the
    team-members step pauses as inconclusive, then again after each retry) and the drain check
    would see the old model's traffic of a moment ago (each failed check waits ``drain_recheck``,
    an hour of calendar). So each measurement waits until ``settle`` seconds have passed since the
    last production flag write, and the drain check until ``settle`` plus the drain window: the
    step's few seconds of traffic, or the day at 100 % the hold gives in real life. The clock runs
    in real time while an activity runs: a measurement's wait falls within its bake (whose end is
    fixed when the step is applied), the drain check's adds to ``drain_to_deleted_s``."""

    def __init__(self, flags: Mapping[FlagKind, Callable[[FlagTarget], Flag]], metrics: Callable[[], Metrics],
                 settle: float, drain_window: float) -> None:  # fmt: skip
        super().__init__(flags, metrics)
        self.settle, self.drain_window = settle, drain_window
        self.written = time.monotonic()
        self.waited = 0.0
        self._lock = threading.Lock()

    def _wait(self, seconds_after_write: float) -> None:
        with self._lock:
            due = self.written + seconds_after_write
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
            with self._lock:
                self.waited += pause

    @activity.defn(name=RolloutActivity.APPLY_FLAG_STEP)
    def apply_flag_step(self, request: ApplyFlagStepInput) -> str:
        state = super().apply_flag_step(request)
        if request.step.environment == PRODUCTION:  # the gateway follows production's flag only
            with self._lock:
                self.written = time.monotonic()
        return state

    @activity.defn(name=RolloutActivity.MEASURE_STEP)
    def measure_step(self, request: MeasureStepInput) -> list[Measurement]:
        self._wait(self.settle)
        return super().measure_step(request)

    @activity.defn(name=RolloutActivity.OLD_MODEL_RATE)
    def old_model_rate(self, request: OldModelRateInput) -> float | None:
        if self.settle:  # --settle 0: read as the time-skipped clock gets there, as the engine alone would
            self._wait(self.settle + self.drain_window)
        return super().old_model_rate(request)


class Pager(Notifier):
    """The DRI's pager, answered at once. An inconclusive step's page holds its notify activity
    until the DRI's ``retry`` is accepted: the time-skipping server does not skip while an
    activity runs, so the clock cannot jump to the next timer (the feature's escalation, days
    on) between the page and the answer. Other notices (the drain's) are only counted."""

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop, actor: str) -> None:
        self.client, self.loop, self.actor = client, loop, actor
        self.sent: list[Notice] = []
        self.retries = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def send(self, notice: Notice) -> None:
        with self._lock:
            self.sent.append(notice)
        if "inconclusive analysis" not in notice.subject:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._retry(notice), self.loop).result(timeout=20)
        except Exception as err:  # the rollout stays paused: the watcher reports it
            self.failures.append(f"{notice.subject}: {err}")

    async def _retry(self, notice: Notice) -> None:
        handle = self.client.get_workflow_handle(notice.workflow_id)
        await handle.execute_update(RolloutWorkflow.retry, Retry(actor=self.actor, reason="answered at once (bench)"),
                                    id=f"retry-{uuid.uuid4().hex[:8]}")
        self.retries += 1


def tunables(drain_window: float) -> Tunables:
    """Default bakes, hold and analysis cadence (no test run); the drain window sized to real data (see ``Settled``)."""
    return Tunables(
        evaluation_poll=timedelta(seconds=0.2), evaluation_heartbeat=timedelta(seconds=5),
        rollout=RolloutOverrides(drain_window=timedelta(seconds=drain_window)),
    )


class Instances:
    """Production and staging: two GitLab sandboxes. An instance flag has no environments, so a
    ``staging`` client on the production sandbox would write production's flag (the staging steps
    would send every simulated user to the candidate); GitLab.com's staging is an instance of its
    own, and the worker maps it to its own URL and token (``MODEL_MIGRATION_FLAG_INSTANCES``)."""

    def __init__(self, workdir: Path) -> None:
        self.token, self.staging_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self.production = GitLabSandbox(workdir / "gitlab.db", token=self.token, usernames=CATALOG.usernames())
        self.staging = GitLabSandbox(workdir / "staging.db", token=self.staging_token, evaluation_project=None)
        self.gate = WaitGate()
        self.workdir = workdir

    def start(self) -> None:
        self.production.start()
        self.staging.start()
        knobs = {"run_seconds": 0, "profiles": {}}  # the experiment service answers at once
        requests.put(f"{self.production.url}/api/evaluation/-/config", json=knobs, headers={"PRIVATE-TOKEN": self.token},
                     timeout=10).raise_for_status()

    def stop(self) -> None:
        self.staging.stop()
        self.production.stop()

    def client(self) -> GitLabClient:
        p = self.production
        return GitLabClient(p.url, self.token, p.project_path, p.group_path, gate=self.gate)

    def staging_client(self) -> GitLabClient:
        s = self.staging
        return GitLabClient(s.url, self.staging_token, s.project_path, s.group_path)

    def flag(self, target: FlagTarget) -> GitLabInstanceFlag:
        others = {env: self.staging_client() for env in target.environments if env != PRODUCTION}
        return GitLabInstanceFlag(self.client(), target.name, environments=others)

    def info(self) -> SandboxInfo:
        p = self.production
        return SandboxInfo(p.url, self.token, p.project_path, p.group_path, self.workdir, ())


async def _poll(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    end = time.monotonic() + timeout
    while True:
        try:
            found = await check()
            if found:
                return found
        except Exception:  # not started yet  # noqa: S110
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"the feature did not get to {what}")
        await asyncio.sleep(0.05)


async def one_rollout(env: WorkflowEnvironment, queue: str, gitlab: Instances, unique: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start to done: implement completed at once, the gate on the experiment service, then the
    feature's result awaited (time skips) until done, or until a limit is passed."""
    client = env.client
    model = TARGET.model_copy(update={"version": unique})  # ids of its own, as tests/workflows/support.py does
    request = FeatureMigrationInput(migration_id=f"migration:{model.key}", feature=SPEC, model=model, replaced=REPLACED,
                                    tunables=tunables(args.drain_window), revision=FEATURE_REVISION)
    started_at = await env.get_current_time()
    started = time.perf_counter()
    handle = await client.start_workflow("FeatureMigrationWorkflow", request, id=f"{request.migration_id}:feature:{FEATURE}",
                                         task_queue=queue, result_type=FeatureOutcome)

    async def has_issue() -> bool:
        return (await handle.query("status", result_type=Status)).issue is not None

    await _poll(has_issue, "its issue")
    flag = f"{FEATURE}_{unique}"
    await handle.execute_update("complete_stage", CompleteStage(
        stage=FeatureStage.IMPLEMENT, actor=SPEC.dri, prompt_version="1.0.0-dev", flag_name=flag,
    ))
    result = asyncio.create_task(handle.result())  # awaiting the result is what lets time skip
    limit = started_at + EXPECTED + timedelta(hours=args.calendar_limit_h)
    stall = ""
    while not result.done():
        await asyncio.wait({result}, timeout=0.5)
        if result.done():
            break
        now = await env.get_current_time()
        if time.perf_counter() - started > args.timeout:
            stall = f"no result after {args.timeout:g} s of wall clock (calendar at {now - started_at})"
        elif now > limit:
            stall = f"the calendar passed {now - started_at} (expected {EXPECTED}), the feature not done"
        if stall:
            break
    wall = time.perf_counter() - started
    if stall:
        return await _stalled(env, handle, result, stall, wall)
    outcome: FeatureOutcome = result.result()
    return {"flag": flag, "wall_s": round(wall, 3), **await _figures(env, handle, outcome, flag, gitlab)}


async def _stalled(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], result: asyncio.Task[Any], why: str, wall: float,
) -> dict[str, Any]:
    """Where it hung: the feature's stage and the rollout's phase and last events; then both are ended."""
    result.cancel()
    st = await handle.query("status", result_type=Status)
    report: dict[str, Any] = {"completed": False, "stalled": why, "wall_s": round(wall, 1), "stage": str(st.stage)}
    rollout_id = getattr(st, "rollout_workflow_id", "")
    if rollout_id:
        rollout = env.client.get_workflow_handle(rollout_id)
        rs = await rollout.query(RolloutWorkflow.status)
        report |= {"rollout_phase": str(rs.phase), "rollout_step": rs.step_label,
                   "last_events": [f"{e.at:%d %H:%M:%S} {e.event} {e.detail}".strip() for e in rs.log[-5:]],
                   "drain_rechecks": sum(e.event == "old model still serving" for e in rs.log)}
    for h in (env.client.get_workflow_handle(rollout_id), handle) if rollout_id else (handle,):
        try:
            await h.terminate("bench stalled")
        except Exception as err:  # ended meanwhile
            report.setdefault("terminate_errors", []).append(str(err))
    return report


def _at(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime().replace(tzinfo=None)


async def _figures(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], outcome: FeatureOutcome, flag: str, gitlab: Instances,
) -> dict[str, Any]:
    """The calendar spans from the histories (the test server's clock) and the rollout's own log."""
    feature = (await handle.fetch_history()).events
    children = [e.start_child_workflow_execution_initiated_event_attributes for e in feature
                if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED]
    histories = {c.workflow_type.name: (await env.client.get_workflow_handle(c.workflow_id).fetch_history()).events for c in children}
    rollout_events = histories["RolloutWorkflow"]
    removed_id = next(e.event_id for e in rollout_events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                      and e.activity_task_scheduled_event_attributes.activity_type.name == RolloutActivity.REMOVE_FLAG)
    removed = next(_at(e) for e in rollout_events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                   and e.activity_task_completed_event_attributes.scheduled_event_id == removed_id)
    [rollout] = outcome.rollouts
    log = {e.event: e.at.replace(tzinfo=None) for e in reversed(rollout.log)}  # each event's first time
    first, holding, held = log["applied"], log["holding at 100 %"], log["held"]
    span = removed - first
    values: dict[str, list[float]] = {}
    measured = [m for record in rollout.records for m in record.measurements]
    for m in measured:
        if m.value is not None:
            values.setdefault(m.metric, []).append(m.value)
    return {
        "completed": outcome.stage == FeatureStage.DONE, "outcome": outcome.outcome,
        "rollout_calendar_s": span.total_seconds(), "rollout_calendar": str(span),
        "ladder_s": (holding - first).total_seconds(), "hold_s": (held - holding).total_seconds(),
        "drain_to_deleted_s": (removed - held).total_seconds(),
        "feature_calendar_s": (_at(feature[-1]) - _at(feature[0])).total_seconds(),
        "feature_calendar": str(_at(feature[-1]) - _at(feature[0])),
        "difference_s": (span - EXPECTED).total_seconds(),
        "steps": [f"{r.label}: {r.outcome}, {len(r.measurements) // len(DEFAULT_ANALYSIS)} measurements" for r in rollout.records],
        "inconclusive_steps": sum(e.event == "inconclusive" for e in rollout.log),
        "retries": sum(e.event == "retried" for e in rollout.log),
        "drain_rechecks": sum(e.event == "old model still serving" for e in rollout.log),
        "measured": {name: [round(min(v), 4), round(max(v), 4)] for name, v in sorted(values.items())},
        "fewest_candidate_requests": round(min((m.requests for m in measured), default=0)),
        "flag_deleted": all(flag not in {f.name for f in c.list_features()} for c in (gitlab.client(), gitlab.staging_client())),
        "timers": sum(e.event_type == TIMER_STARTED for events in (feature, *histories.values()) for e in events),
    }


async def baseline(env: WorkflowEnvironment, queue: str, span_s: float, timers: int) -> float:
    started = time.perf_counter()
    await env.client.execute_workflow(TimerChain.run, Chain(span_s=span_s, timers=timers), id=f"timers-{uuid.uuid4().hex[:8]}",
                                      task_queue=queue)
    return time.perf_counter() - started


async def one_run(env: WorkflowEnvironment, gitlab: Instances, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A fresh metrics stack per run (a run's candidate traffic must not be in the next one's windows), one rollout, the baseline."""
    stack = MetricsStack(workdir, check_prometheus())
    await asyncio.to_thread(stack.start)
    try:
        pager = Pager(env.client, asyncio.get_running_loop(), SPEC.dri)
        rollout = Settled({FlagKind.GITLAB_INSTANCE: gitlab.flag}, lambda: PrometheusClient(stack.prometheus_url),
                          settle=args.settle, drain_window=args.drain_window)
        evaluation = _evaluation(gitlab.info(), workdir / "results", gitlab.gate)
        with ThreadPoolExecutor(max_workers=16) as executor:
            async with (
                worker_module.build_worker(env.client, "bench", GitLabActivities(gitlab.client), executor, notify=NotifyActivities(pager),
                                           evaluation=evaluation, rollout=rollout),
                Worker(env.client, task_queue="bench-baseline", workflows=[TimerChain]),
            ):
                unique = uuid.uuid4().hex[:6]
                # The gateway routes each user as GitLab's instance flag says (team members: the first tenth of users).
                with InstanceFlagGate(gitlab.production.url, gitlab.token, f"{FEATURE}_{unique}", team_members=TEAM_MEMBERS) as gate:
                    stack.gateway.set_gate(FEATURE, gate)
                    stack.gateway.configure({FEATURE: TRAFFIC})
                    run = await one_rollout(env, "bench", gitlab, unique, args)
                run |= {"settle_wait_s": round(rollout.waited, 1), "pages": len(pager.sent), "pages_answered": pager.retries}
                if pager.failures:
                    run["page_failures"] = pager.failures
                if run.get("completed"):
                    run["bare_timers_wall_s"] = await baseline(env, "bench-baseline", run["feature_calendar_s"], run["timers"])
        return run
    finally:
        stack.stop()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    configure("error", "console")
    with tempfile.TemporaryDirectory() as tmp:
        gitlab = Instances(Path(tmp))
        gitlab.start()
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(binary("temporal-test-server")), port=free_port(), data_converter=data_converter,
        )
        try:
            await register_search_attributes(env.client)
            runs = []
            for i in range(args.runs):
                run = await one_run(env, gitlab, Path(tmp) / f"run-{i}", args)
                print(f"run {i}: {json.dumps(run)}", file=sys.stderr)
                runs.append(run)
        finally:
            await env.shutdown()
            gitlab.stop()
    return summary(runs, args)


def summary(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    done = [r for r in runs if r.get("completed")]
    head: dict[str, Any] = {
        "ladder": [s.label for s in DEFAULT_LADDER], "expected_s": EXPECTED.total_seconds(), "expected": str(EXPECTED),
        "expected_bakes_s": (EXPECTED - HOLD).total_seconds(), "expected_hold_s": HOLD.total_seconds(),
        "settle_s": args.settle, "drain_window_s": args.drain_window, "runs": len(runs), "completed": len(done),
    }
    if len(done) < len(runs):
        head["stalled"] = [r for r in runs if not r.get("completed")]
    if not done:
        return head
    last = done[-1]

    def median(key: str) -> float:
        return round(float(statistics.median(r[key] for r in done)), 3)

    wall, base, settle = median("wall_s"), median("bare_timers_wall_s"), median("settle_wait_s")
    spans = ("rollout_calendar_s", "difference_s", "ladder_s", "hold_s", "drain_to_deleted_s", "feature_calendar_s")
    return head | {
        "rollout_calendar": last["rollout_calendar"], "feature_calendar": last["feature_calendar"],
        **{key: median(key) for key in spans},
        "wall_s": wall, "settle_wait_s": settle, "bare_timers_wall_s": base, "ratio_to_bare_timers": round(wall / base, 1),
        "ratio_without_settle": round((wall - settle) / base, 1),
        "per_run": done,
    }


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="rollouts, each on a fresh metrics stack (1)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="real seconds of traffic each Prometheus reading waits for after a production flag write; 0: none (3)")
    parser.add_argument("--drain-window", type=float, default=5.0, help="the drain window, seconds of real data (5)")
    parser.add_argument("--timeout", type=float, default=300.0, help="wall-clock seconds before a run is reported as stalled (300)")
    parser.add_argument("--calendar-limit-h", type=float, default=24.0,
                        help="calendar hours past the expected 26 h 15 min before a run is reported as stalled (24)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    print(json.dumps(asyncio.run(bench(parse(argv))), indent=2))


if __name__ == "__main__":
    main()
