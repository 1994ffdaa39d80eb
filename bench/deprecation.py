"""Deprecation benchmark: a 12-week deprecation of 3 features on the time-skipping server.

Run from the repository root: ``python bench/deprecation.py [--runs 3]``. One JSON object goes
to stdout; progress to stderr. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `worker` and friends importable
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from temporalio import workflow  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import WorkflowHandle  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

import worker as worker_module  # noqa: E402
from activities.gitlab import GitLabActivities  # noqa: E402
from gitlab_sandbox.gitlab import GitLabSandbox  # noqa: E402
from model_migration.catalog import load_catalog  # noqa: E402
from model_migration.clients.gitlab import GitLabClient, WaitGate  # noqa: E402
from model_migration.converter import data_converter  # noqa: E402
from model_migration.devserver import free_port  # noqa: E402
from model_migration.domain.deprecation import DeprecationRequest, PlanRules  # noqa: E402
from model_migration.domain.stages import MigrationStage  # noqa: E402
from model_migration.logging import configure  # noqa: E402
from model_migration.temporal import binary, register_search_attributes  # noqa: E402
from tests.conftest import SandboxInfo  # noqa: E402
from tests.temporal_fixtures import _evaluation  # noqa: E402
from workflows.deprecation_messages import DeprecationInput, DeprecationResult, DeprecationStage, DeprecationStatus  # noqa: E402
from workflows.messages import Abort, CompleteStage, Status, Tunables, feature_workflow_id  # noqa: E402

CATALOG = load_catalog()
FEATURES = ("duo_chat", "code_explanation", "root_cause_analysis")
WEEKS = 12
TIMER_STARTED = EventType.EVENT_TYPE_TIMER_STARTED


@workflow.defn(sandboxed=False)
class TimerChain:
    """The baseline: bare Temporal sleeping through the same span in as many timers."""

    @workflow.run
    async def run(self, timers: int) -> int:
        step = timedelta(weeks=WEEKS) / max(1, timers)
        for _ in range(timers):
            await workflow.sleep(step)
        return timers


def request(today_iso: str) -> DeprecationInput:
    from datetime import date

    today = date.fromisoformat(today_iso)
    retiring = CATALOG.model("claude_3_7_sonnet_20250219")
    winner, loser = CATALOG.model("claude_sonnet_4_5_20250929"), CATALOG.model("code_gecko_002")
    ask = DeprecationRequest(
        model=retiring.gitlab_identifier, deprecation_date=today, cutoff=today + timedelta(weeks=WEEKS),
        recommended=winner.gitlab_identifier, candidates=(loser.gitlab_identifier,),
    )
    tunables = Tunables(
        activity_timeout=timedelta(seconds=10), merge_poll=timedelta(hours=1), evaluation_poll=timedelta(seconds=0.2),
        evaluation_heartbeat=timedelta(seconds=5),
    )
    return DeprecationInput(
        request=ask, retiring=retiring, recommended=winner, candidates=(loser,),
        features=tuple(CATALOG.feature(f) for f in FEATURES), tunables=tunables,
        rules=PlanRules(bake=timedelta(days=2)),  # a feature still implementing is late from T−15: every step reaches it
    )


async def _poll(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while True:
        try:
            found = await check()
            if found:
                return found
        except Exception:  # not started yet  # noqa: S110
            pass
        if time.monotonic() > end:
            raise TimeoutError("the deprecation did not get there")
        await asyncio.sleep(0.05)


async def one_deprecation(env: WorkflowEnvironment, queue: str) -> tuple[dict[str, float], DeprecationResult, int]:
    """Start to epic closed: the tournament, init, every escalation to the cutoff, then the teams abort."""
    client = env.client
    now = await env.get_current_time()
    started = time.perf_counter()
    handle = await client.start_workflow(
        "ModelDeprecationWorkflow", request(now.date().isoformat()), id=f"deprecation:bench/{uuid.uuid4().hex[:8]}",
        task_queue=queue, result_type=DeprecationResult,
    )
    migration = client.get_workflow_handle(f"{handle.id}:migration")

    async def migrating() -> bool:
        st = await handle.query("status", result_type=DeprecationStatus)
        return st.stage == DeprecationStage.MIGRATING and bool((await migration.query("status", result_type=Status)).config_mr_url)

    await _poll(migrating)
    await migration.execute_update("complete_stage", CompleteStage(stage=MigrationStage.INIT, actor="ai-lead"))
    features = [client.get_workflow_handle(feature_workflow_id(migration.id, f)) for f in FEATURES]
    for feature in features:
        await _poll(lambda f=feature: _has_issue(f))
    started_weeks = time.perf_counter()
    await env.sleep(timedelta(weeks=WEEKS, days=1))  # every escalation, to the day after the cutoff
    finishing = time.perf_counter()
    for feature in features:
        await feature.execute_update("abort", Abort(actor="ai-lead", reason="benchmark over"))
    result: DeprecationResult = await handle.result()
    done = time.perf_counter()
    history = await handle.fetch_history()
    phases = {
        "total": done - started, "to_features": started_weeks - started, "weeks": finishing - started_weeks, "closing": done - finishing,
    }
    return phases, result, sum(e.event_type == TIMER_STARTED for e in history.events)


async def _has_issue(handle: WorkflowHandle) -> bool:
    return (await handle.query("status", result_type=Status)).issue is not None


async def baseline(env: WorkflowEnvironment, queue: str, timers: int) -> float:
    started = time.perf_counter()
    await env.client.execute_workflow(TimerChain.run, timers, id=f"timers-{uuid.uuid4().hex[:8]}", task_queue=queue)
    return time.perf_counter() - started


async def bench(args: argparse.Namespace) -> dict[str, object]:
    configure("error", "console")
    with tempfile.TemporaryDirectory() as tmp:
        token = secrets.token_urlsafe(16)
        box = GitLabSandbox(Path(tmp) / "gitlab.db", token=token, usernames=CATALOG.usernames())
        box.start()
        knobs = {"run_seconds": 0, "profiles": {}}
        requests.put(f"{box.url}/api/evaluation/-/config", json=knobs, headers={"PRIVATE-TOKEN": token}, timeout=10).raise_for_status()
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(binary("temporal-test-server")), port=free_port(), data_converter=data_converter,
        )
        try:
            await register_search_attributes(env.client)
            gate = WaitGate()
            gitlab = GitLabActivities(lambda: GitLabClient(box.url, token, box.project_path, box.group_path, gate=gate))
            info = SandboxInfo(box.url, token, box.project_path, box.group_path, Path(tmp), ())
            evaluation = _evaluation(info, Path(tmp) / "results", gate)
            with ThreadPoolExecutor(max_workers=16) as executor:
                async with (
                    worker_module.build_worker(env.client, "bench", gitlab, executor, evaluation=evaluation),
                    Worker(env.client, task_queue="bench-baseline", workflows=[TimerChain]),
                ):
                    return await _measure(env, args.runs)
        finally:
            await env.shutdown()
            box.stop()


async def _measure(env: WorkflowEnvironment, runs: int) -> dict[str, object]:
    timed: list[dict[str, float]] = []
    bases: list[float] = []
    fired = timers = 0
    for i in range(runs + 1):  # the first is a warm-up
        phases, result, timers = await one_deprecation(env, "bench")
        base = await baseline(env, "bench-baseline", timers)
        fired = sum(1 for e in result.escalations if e.features)
        print(f"run {i}: deprecation {phases['total']:.2f} s, bare timers {base:.2f} s, {fired} escalations", file=sys.stderr)
        if i:
            timed.append(phases)
            bases.append(base)

    def median(key: str) -> float:
        return round(statistics.median(p[key] for p in timed), 3)

    wall, base = median("total"), statistics.median(bases)
    return {
        "weeks": WEEKS, "features": len(FEATURES), "escalations_reaching_features": fired, "deprecation_timers": timers,
        "deprecation_wall_s": wall, "to_features_s": median("to_features"), "twelve_weeks_s": median("weeks"),
        "closing_s": median("closing"), "bare_timers_wall_s": round(base, 3), "ratio_to_bare_timers": round(wall / base, 1),
        "bar_s": 5.0, "goal_s": 3.0, "runs": runs,
    }


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up (3)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    print(json.dumps(asyncio.run(bench(parse(argv))), indent=2))


if __name__ == "__main__":
    main()



