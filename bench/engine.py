"""Engine overhead benchmark: real feature migrations against a no-op baseline on one dev server.

Run from the repository root: ``python bench/engine.py --n 200``. One JSON object goes to
stdout; progress goes to stderr. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench`, `worker` and friends importable
    sys.path.insert(0, str(ROOT))

from pydantic import BaseModel  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.api.history.v1 import HistoryEvent  # noqa: E402
from temporalio.client import Client, WorkflowHandle  # noqa: E402
from temporalio.service import RPCError  # noqa: E402

import worker as worker_module  # noqa: E402
from activities.gitlab import GitLabActivities  # noqa: E402
from bench import baseline  # noqa: E402
from bench.baseline_payloads import BaselineInput, Step, StepResult  # noqa: E402
from model_migration.catalog import load_catalog  # noqa: E402
from model_migration.clients.gitlab import GitLabClient, WaitGate  # noqa: E402
from model_migration.clients.gitlab_labels import UserDirectory  # noqa: E402
from model_migration.devserver import free_port, local_environment  # noqa: E402
from model_migration.domain.feature_state import GATE_REVISION as GATED  # noqa: E402
from model_migration.domain.stages import FeatureStage  # noqa: E402
from model_migration.logging import configure  # noqa: E402
from model_migration.settings import Settings  # noqa: E402
from workflows import attributes  # noqa: E402
from workflows.feature import FeatureMigrationWorkflow  # noqa: E402
from workflows.messages import (  # noqa: E402
    MIGRATION_REVISION,
    CommandResult,
    CompleteStage,
    FeatureMigrationInput,
    FeatureStatus,
    MetricResult,
    MigrationInput,
    ReportEvaluation,
    ReportRollout,
    Status,
    Tunables,
    Verdict,
    feature_workflow_id,
)
from workflows.migration import ModelMigrationWorkflow  # noqa: E402

BAR = {"ratio_max": 1.5, "p50_ms_max": 80, "gitlab_calls_per_feature_max": 25}
CATALOG = load_catalog()
TARGET = CATALOG.model("claude_sonnet_4_5_20250929")
REPLACED = CATALOG.model("claude_3_7_sonnet_20250219")
FEATURES = [f.name for f in CATALOG.features]
#: The features on the replaced model: the target passes their gates, as it does in the demo.
REPLACING = [f.name for f in CATALOG.features_on(REPLACED.gitlab_identifier)]
ACTOR = "achen"
ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED

#: The happy path of tests/workflows/support.py's ``drive``.
ENGINE_UPDATES: list[tuple[str, BaseModel]] = [
    ("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor=ACTOR, prompt_version="1.0.0-dev")),
    ("report_evaluation", ReportEvaluation(
        actor=ACTOR, verdict=Verdict.PASS, metrics=(MetricResult(name="correctness", baseline=3.0, candidate=3.3),),
    )),
    *[("report_rollout", ReportRollout(actor=ACTOR, percentage=pct)) for pct in (1, 10, 25, 50, 75, 100)],
    ("complete_stage", CompleteStage(stage=FeatureStage.CLEANUP, actor=ACTOR)),
]

started_at = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - started_at:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Bench:
    client: Client
    engine_queue: str
    baseline_queue: str
    gitlab: GitLabActivities
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    seq: itertools.count = field(default_factory=itertools.count)  # type: ignore[type-arg]
    plan: BaselineInput | None = None
    #: Client-side send times (µs since the epoch) of each workflow's updates, in order.
    sent: dict[str, list[int]] = field(default_factory=dict)

    def gitlab_calls(self) -> int:
        return sum(self.gitlab.calls.values())


# -- one workflow of each kind -------------------------------------------------------------


async def quiesce(handle: WorkflowHandle, timeout: float = 30.0) -> None:
    """Wait until the workflow has no workflow task and no activity in flight."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        raw = (await handle.describe()).raw_description
        if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
            return
        if loop.time() > end:
            raise TimeoutError(f"{handle.id} still busy after {timeout:.0f}s")
        await asyncio.sleep(0.005)


async def engine_one(b: Bench, serial: bool = False) -> WorkflowHandle:
    """One feature migration from start to result; ``serial`` waits for quiet between updates."""
    n = next(b.seq)
    unique = f"bench{b.tag}{n}"
    feature = FEATURES[n % len(FEATURES)]
    # A model of its own, as each real migration has: the issue title (feature + model name)
    # then matches one issue, not every earlier benchmark issue of the same feature.
    model = TARGET.model_copy(update={"version": unique, "name": f"{TARGET.name} {unique}"})
    migration = f"migration:{model.key}"
    request = FeatureMigrationInput(
        migration_id=migration, feature=CATALOG.feature(feature), model=model, replaced=REPLACED,
        # Revision 3: the team reports its evaluation, the same work the bare-Temporal baseline
        # does. The engine's own evaluation (a child workflow, the harness, the gate) has no
        # counterpart there; bench/gate.py measures the gate, and the tests the rest.
        tunables=Tunables(), planned_from=datetime.now(UTC), revision=GATED - 1,
    )
    # Started as the parent starts its children: with the first search attributes.
    handle = await b.client.start_workflow(
        FeatureMigrationWorkflow.run, request, id=f"{migration}:feature:{feature}", task_queue=b.engine_queue,
        search_attributes=attributes.at_feature_start(request),
    )
    if serial:
        await quiesce(handle)
    for name, arg in ENGINE_UPDATES:
        b.sent.setdefault(handle.id, []).append(time.time_ns() // 1000)
        await handle.execute_update(name, arg, result_type=CommandResult)
        if serial:
            await quiesce(handle)
    outcome = await handle.result()
    if outcome.stage != FeatureStage.DONE or outcome.escalations:
        raise RuntimeError(f"{handle.id} ended in {outcome.stage} with {outcome.escalations} escalations")
    return handle


async def baseline_one(b: Bench, serial: bool = False) -> WorkflowHandle:
    assert b.plan is not None
    handle = await b.client.start_workflow(
        baseline.BaselineWorkflow.run, b.plan, id=f"bench-baseline:{b.tag}:{next(b.seq)}",
        task_queue=b.baseline_queue,
    )
    if serial:
        await quiesce(handle)
    for i in range(len(b.plan.per_update)):
        b.sent.setdefault(handle.id, []).append(time.time_ns() // 1000)
        await handle.execute_update(baseline.BaselineWorkflow.step, Step(index=i), result_type=StepResult)
        if serial:
            await quiesce(handle)
    result = await handle.result()
    expected = b.plan.initial + sum(b.plan.per_update)
    if result.activities != expected:
        raise RuntimeError(f"{handle.id} ran {result.activities} activities, not {expected}")
    return handle


async def many(n: int, concurrency: int, one: Callable[[], Awaitable[object]]) -> float:
    """Run ``n`` workflows, at most ``concurrency`` at once; the wall time in seconds."""
    gate = asyncio.Semaphore(concurrency)

    async def gated() -> None:
        async with gate:
            await one()

    t0 = time.perf_counter()
    await asyncio.gather(*(gated() for _ in range(n)))
    return time.perf_counter() - t0


# -- histories -----------------------------------------------------------------------------


async def events(handle: WorkflowHandle) -> Sequence[HistoryEvent]:
    return (await handle.fetch_history()).events


def activity_plan(history: Sequence[HistoryEvent]) -> BaselineInput:
    """Activities scheduled before the first accepted update, and after each one."""
    initial, per_update = 0, []
    for event in history:
        if event.event_type == ACCEPTED:
            per_update.append(0)
        elif event.event_type == SCHEDULED:
            if per_update:
                per_update[-1] += 1
            else:
                initial += 1
    return BaselineInput(initial=initial, per_update=tuple(per_update))


def update_to_activity_ms(history: Sequence[HistoryEvent], sent: Sequence[int]) -> list[float]:
    """For each update: ms from the client sending it to the start of the next activity the
    workflow scheduled after accepting it (one machine, so one clock)."""
    started = sorted(
        (e.activity_task_started_event_attributes.scheduled_event_id, e.event_time.ToMicroseconds())
        for e in history if e.event_type == STARTED
    )
    accepted = [e.event_id for e in history if e.event_type == ACCEPTED]
    out = []
    for event_id, sent_at in zip(accepted, sent, strict=True):
        after = [at for scheduled, at in started if scheduled > event_id]
        if after:
            out.append((after[0] - sent_at) / 1000)
    return out


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50": float("nan"), "p99": float("nan")}
    cuts = statistics.quantiles(samples, n=100, method="inclusive") if len(samples) > 1 else samples * 99
    return {"p50": round(statistics.median(samples), 2), "p99": round(cuts[98], 2)}


# -- phases --------------------------------------------------------------------------------


async def whole_migration_calls(b: Bench, make: Callable[[], GitLabClient], features: int = 3) -> float:
    """GitLab calls per feature for one whole migration: tracking issue, model-config MR,
    children, table updates, summary; the happy path, driven as the demo does."""
    n = next(b.seq)
    model = TARGET.model_copy(update={"version": f"whole{b.tag}{n}", "name": f"{TARGET.name} whole{b.tag}{n}"})
    request = MigrationInput(
        model=model, replaced=REPLACED, features=tuple(CATALOG.feature(f) for f in REPLACING[:features]),
        tunables=Tunables(merge_poll=timedelta(milliseconds=200), evaluation_poll=timedelta(milliseconds=200)),
        planned_from=datetime.now(UTC),
        revision=MIGRATION_REVISION,
    )
    before = b.gitlab_calls()
    parent = await b.client.start_workflow(
        ModelMigrationWorkflow.run, request, id=f"migration:{model.key}", task_queue=b.engine_queue,
        search_attributes=attributes.at_migration_start(request),
    )
    while not (st := await parent.query("status", result_type=Status)).config_mr_url:
        await asyncio.sleep(0.05)
    gitlab = make()
    merge_request = int(st.config_mr_url.rsplit("/", 1)[1])
    await asyncio.to_thread(gitlab.merge_merge_request, merge_request)

    async def drive(feature: str) -> None:
        child = b.client.get_workflow_handle(feature_workflow_id(parent.id, feature))
        while True:
            try:
                if (await child.query("status", result_type=Status)).issue is not None:
                    break
            except RPCError:
                pass  # not started yet
            await asyncio.sleep(0.05)
        # The parent starts its features at the current revision: the engine's gate evaluates
        # them (no GitLab call of its own: its verdict rides on the transition note).
        for name, arg in ENGINE_UPDATES:
            if name == "report_evaluation":
                while (st := await child.query("status", result_type=Status)).stage != FeatureStage.ROLLOUT:
                    gate = st.gates[-1] if isinstance(st, FeatureStatus) and st.gates else None
                    if st.stage != FeatureStage.EVALUATE or (gate is not None and not gate.running):
                        raise RuntimeError(f"{child.id} did not pass its gate: {gate or st.stage}")
                    await asyncio.sleep(0.05)
                continue
            await child.execute_update(name, arg, result_type=CommandResult)

    await asyncio.gather(*(drive(f) for f in REPLACING[:features]))
    result = await parent.result()
    if result.stage != FeatureStage.DONE:
        raise RuntimeError(f"{parent.id} ended in {result.stage}")
    return (b.gitlab_calls() - before) / features


async def warm_up(b: Bench, count: int, concurrency: int) -> int:
    """A few untimed workflows of each kind; the first engine one gives the activity plan."""
    first = await engine_one(b, serial=True)
    history = await events(first)
    b.plan = activity_plan(history)
    activities = b.plan.initial + sum(b.plan.per_update)
    say(f"engine activity plan: {b.plan.initial} before the first update, then {list(b.plan.per_update)}")
    await baseline_one(b, serial=True)
    await many(count, concurrency, lambda: engine_one(b))
    await many(count, concurrency, lambda: baseline_one(b))
    return activities


async def throughput(b: Bench, n: int, concurrency: int) -> tuple[float, float, int, Counter[str]]:
    """ABBA halves: engine, baseline, baseline, engine. Both kinds see the same average point
    of the run, so drift (growing stores, warming caches) cancels to first order."""
    halves = [n // 2, n - n // 2]
    engine_s = baseline_s = 0.0
    before = Counter(b.gitlab.calls)
    for kind, size in (("engine", halves[0]), ("baseline", halves[0]), ("baseline", halves[1]), ("engine", halves[1])):
        if size == 0:
            continue
        one = (lambda: engine_one(b)) if kind == "engine" else (lambda: baseline_one(b))
        wall = await many(size, concurrency, one)
        say(f"{kind}: {size} workflows in {wall:.2f}s ({size / wall:.1f}/s)")
        if kind == "engine":
            engine_s += wall
        else:
            baseline_s += wall
    spent = Counter(b.gitlab.calls)
    spent.subtract(before)
    return engine_s, baseline_s, sum(spent.values()), spent


async def latency(b: Bench, k: int, activities: int) -> tuple[list[float], list[float]]:
    """K features of each kind, one at a time, alternating, quiet between updates."""
    engine_handles, baseline_handles = [], []
    for _ in range(k):
        engine_handles.append(await engine_one(b, serial=True))
        baseline_handles.append(await baseline_one(b, serial=True))
    engine_ms: list[float] = []
    baseline_ms: list[float] = []
    for handles, samples in ((engine_handles, engine_ms), (baseline_handles, baseline_ms)):
        for handle in handles:
            history = await events(handle)
            scheduled = sum(1 for e in history if e.event_type == SCHEDULED)
            if scheduled != activities:
                say(f"warning: {handle.id} scheduled {scheduled} activities, the plan says {activities}")
            samples.extend(update_to_activity_ms(history, b.sent[handle.id]))
    return engine_ms, baseline_ms


# -- set-up --------------------------------------------------------------------------------


class SandboxProcess:
    """``model-migration sandbox`` in a process of its own, on a free loopback port."""

    def __init__(self, state: Path, token: str) -> None:
        port = free_port()
        env = {**os.environ, "MODEL_MIGRATION_GITLAB_TOKEN": token, "MODEL_MIGRATION_LOG_LEVEL": "warning"}
        self.url = f"http://127.0.0.1:{port}"
        self.project_path = "gitlab-org/modelops/ai-model-migrations"
        self.group_path = "gitlab-org"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "model_migration.cli", "sandbox", "--port", str(port), "--state-dir", str(state)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        end = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > end or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("the GitLab sandbox did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


async def bench(args: argparse.Namespace, state: Path) -> dict[str, object]:
    token = secrets.token_urlsafe()
    # GitLab is always another process; so is the sandbox here, so it does not share this
    # process's interpreter lock with the worker being measured.
    sandbox = SandboxProcess(state, token)
    try:
        async with await local_environment() as env:
            say(f"dev server on {env.client.service_client.config.target_host}, GitLab sandbox on {sandbox.url}")

            # As the worker does: one wait gate and one user directory for every thread's client.
            gate, users = WaitGate(), UserDirectory()

            def make() -> GitLabClient:
                return GitLabClient(sandbox.url, token, sandbox.project_path, sandbox.group_path, gate=gate, users=users)

            gitlab = GitLabActivities(make)
            b = Bench(env.client, f"bench-engine-{uuid.uuid4().hex[:6]}", f"bench-baseline-{uuid.uuid4().hex[:6]}", gitlab)
            with ThreadPoolExecutor(max_workers=args.threads) as engine_pool, \
                    ThreadPoolExecutor(max_workers=args.threads) as baseline_pool:
                # The worker's own harnesses (the experiment service, the evaluation project's pipelines), on the sandbox.
                settings = Settings(gitlab_url=sandbox.url, gitlab_token=token, gitlab_project=sandbox.project_path,
                                    gitlab_group=sandbox.group_path, state_dir=state)
                evaluation = worker_module.evaluation_activities(settings, gate, users)
                engine_worker = worker_module.build_worker(b.client, b.engine_queue, gitlab, engine_pool, evaluation=evaluation)
                baseline_worker = baseline.build_worker(b.client, b.baseline_queue, baseline_pool)
                async with engine_worker, baseline_worker:
                    say(f"warm-up: {args.warmup + 1} workflows of each kind")
                    activities = await warm_up(b, args.warmup, args.concurrency)
                    say(f"throughput: {args.n} of each kind, {args.concurrency} at a time")
                    engine_s, baseline_s, calls, by_activity = await throughput(b, args.n, args.concurrency)
                    say(f"GitLab calls in the engine run by activity: {dict(by_activity)}")
                    say(f"latency: {args.k} of each kind, one at a time")
                    engine_ms, baseline_ms = await latency(b, args.k, activities)
                    say("a whole 3-feature migration, for GitLab calls per feature")
                    whole = await whole_migration_calls(b, make)
    finally:
        sandbox.stop()

    ratio = engine_s / baseline_s
    update_ms = {"engine": percentiles(engine_ms), "baseline": percentiles(baseline_ms)}
    per_feature = whole
    return {
        "n": args.n,
        "concurrency": args.concurrency,
        "engine_wall_s": round(engine_s, 3),
        "baseline_wall_s": round(baseline_s, 3),
        "ratio": round(ratio, 3),
        "update_to_activity_ms": update_ms,
        "gitlab_calls_per_feature": round(per_feature, 2),
        "gitlab_calls_per_feature_workflow": round(calls / args.n, 2),
        "activities_per_feature": activities,
        "bar": BAR,
        "meets_bar": bool(
            ratio <= BAR["ratio_max"]
            and update_ms["engine"]["p50"] <= BAR["p50_ms_max"]
            and per_feature <= BAR["gitlab_calls_per_feature_max"]
        ),
    }


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="feature migrations per kind in the throughput run")
    parser.add_argument("--concurrency", type=int, default=20, help="workflows in flight at once")
    parser.add_argument("--k", type=int, default=30, help="workflows per kind in the serial latency run")
    parser.add_argument("--warmup", type=int, default=4, help="untimed workflows per kind, after the first")
    parser.add_argument("--threads", type=int, default=32, help="activity threads per worker (worker.run uses 32)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.concurrency < 1 or args.k < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--n, --concurrency, --k and --threads must be positive, --warmup not negative")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    # The dev server inherits file descriptor 1 and prints a banner there: point it at stderr
    # and keep the real stdout for the one JSON object.
    sys.stdout.flush()
    stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    configure(level="warning")
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as state:
        try:
            result = asyncio.run(until_terminated(bench(args, Path(state))))
        except BaseException:
            if not TERMINATED:
                raise
            say("terminated; servers stopped")
            sys.exit(143)
    say("done")
    print(json.dumps(result), file=stdout, flush=True)


TERMINATED: list[int] = []


async def until_terminated(work: Awaitable[dict[str, object]]) -> dict[str, object]:
    """SIGTERM cancels the run, so the ``finally`` blocks stop the dev server and the sandbox
    (Python's default SIGTERM exits at once and leaves both running)."""
    task = asyncio.current_task()
    assert task is not None

    def cancel() -> None:
        TERMINATED.append(signal.SIGTERM)
        task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, cancel)
    return await work


if __name__ == "__main__":
    main()
