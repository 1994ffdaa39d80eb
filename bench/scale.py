"""Scale benchmark: many open feature migrations on one worker process.

Run from the repository root: ``python bench/scale.py`` (1,000 features over 100 migrations).
Figures go to stdout (``--json``: one JSON object); progress goes to stderr. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `model_migration` and friends importable
    sys.path.insert(0, str(ROOT))

from temporalio.client import Client  # noqa: E402
from temporalio.service import RPCError, RPCStatusCode  # noqa: E402

from model_migration import operations as ops  # noqa: E402
from model_migration.catalog import load_catalog  # noqa: E402
from model_migration.devserver import DevServer, free_port  # noqa: E402
from model_migration.domain.errors import CommandRejected  # noqa: E402
from model_migration.domain.stages import MigrationStage  # noqa: E402
from model_migration.settings import Settings  # noqa: E402
from model_migration.temporal import connect  # noqa: E402
from workflows.messages import MIGRATION_REVISION, CompleteStage, MigrationInput, Resume, feature_workflow_id, migration_id  # noqa: E402

GOAL = {"rss_mb_max": 200, "update_p99_ms_max": 250}
CATALOG = load_catalog()
TARGET = CATALOG.model("claude_sonnet_4_5_20250929")
REPLACED = CATALOG.model("claude_3_7_sonnet_20250219")
FEATURES = list(CATALOG.features)
ACTOR = "ai-lead"
#: The update measured: someone asks to resume a feature that is not paused. The
#: validator refuses it ("the workflow is not paused"), so nothing changes and nothing is
#: written to history, yet it makes the whole trip a person's command makes: the server, a
#: workflow task on the worker (a replay of the history first, if the workflow is not in the
#: worker's cache) and the stage machine's ``decide``.
UPDATE = "resume"
REFUSAL = "not paused"

started_at = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - started_at:6.1f}s] {message}", file=sys.stderr, flush=True)


# -- the processes -------------------------------------------------------------------------


def cli() -> list[str]:
    """The ``model-migration`` command of this virtualenv."""
    script = Path(sys.executable).parent / "model-migration"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "model_migration.cli"]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without the caller's own MODEL_MIGRATION_* and OTEL_* settings, plus ``extra``.

    The processes run the code of the tree this file is in (``PYTHONPATH``), as the bench does,
    whichever checkout the virtualenv's editable install points at."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_MIGRATION_", "OTEL_"))}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f}s; see {log}")


def wait_for_line(path: Path, text: str, process: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}: {tail(path)}")
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not log {text!r} within {timeout:.0f}s: {tail(path)}")


def tail(path: Path, lines: int = 3) -> str:
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def spawn(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        yield process
    finally:
        stop(process)


class MemoryDevServer(DevServer):
    """The dev server in memory, as the tests and bench/engine.py run it; its output goes to its log."""

    def command(self) -> list[str]:
        cmd = super().command()
        at = cmd.index("--db-filename")
        return [*cmd[:at], *cmd[at + 2:], "--http-port", str(free_port()), "--metrics-port", str(free_port())]


def rss_mb(pid: int) -> dict[str, float]:
    """The process's resident set now and at its peak (VmRSS, VmHWM), in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return {"rss": round(fields["VmRSS"], 1), "peak": round(fields["VmHWM"], 1)}


def settled_rss(pid: int, seconds: float = 3.0) -> dict[str, float]:
    """VmRSS after ``seconds`` of quiet: the median of a reading per half second."""
    readings = []
    for _ in range(max(1, int(seconds / 0.5))):
        time.sleep(0.5)
        readings.append(rss_mb(pid))
    return {"rss": round(statistics.median(r["rss"] for r in readings), 1), "peak": readings[-1]["peak"]}


# -- the workflows -------------------------------------------------------------------------


def spread(features: int, migrations: int) -> list[int]:
    """How many features each migration gets: as even as it can be."""
    base, extra = divmod(features, migrations)
    return [base + (1 if i < extra else 0) for i in range(migrations)]


def migration_input(tag: str, n: int, count: int) -> MigrationInput:
    """Migration ``n``: its own copy of the target model (so its ids and issue titles are its own)
    and ``count`` catalog features, starting at a different one each time."""
    unique = f"scale{tag}{n}"
    model = TARGET.model_copy(update={"version": unique, "name": f"{TARGET.name} {unique}"})
    features = tuple(FEATURES[(n + i) % len(FEATURES)] for i in range(count))
    return MigrationInput(
        model=model, replaced=REPLACED, features=features, tunables=ops.tunables(), started_by=ACTOR,
        revision=MIGRATION_REVISION,
    )


async def gather_limited(limit: int, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


async def start_migration(client: Client, queue: str, request: MigrationInput) -> list[str]:
    """Start it as ``model-migration start`` does, then complete init as its lead does; its features' ids."""
    wid = await ops.start(client, queue, request)
    await ops.send(client, wid, "complete_stage", CompleteStage(stage=MigrationStage.INIT, actor=ACTOR))
    return [feature_workflow_id(wid, f.name) for f in request.features]


async def busy(client: Client, workflow_id: str) -> bool:
    """True while the workflow does not exist yet, or has a workflow task or an activity in flight."""
    try:
        raw = (await client.get_workflow_handle(workflow_id).describe()).raw_description
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    return bool(raw.pending_activities) or raw.HasField("pending_workflow_task")


async def until_quiet(client: Client, ids: Sequence[str], timeout: float) -> float:
    """Seconds until every workflow of ``ids`` exists and is idle, waiting for people."""
    t0 = time.perf_counter()
    waiting = list(ids)
    while waiting:
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{len(waiting)} workflows still busy after {timeout:.0f}s, e.g. {waiting[0]}")
        flags = await gather_limited(20, [lambda wid=wid: busy(client, wid) for wid in waiting])  # type: ignore[misc]
        waiting = [wid for wid, b in zip(waiting, flags, strict=True) if b]
        if waiting:
            await asyncio.sleep(1.0)
    return time.perf_counter() - t0


async def count_running(client: Client, queue: str, workflow_type: str) -> int:
    query = f"TaskQueue = '{queue}' AND WorkflowType = '{workflow_type}' AND ExecutionStatus = 'Running'"
    return (await client.count_workflows(query)).count


async def update_latencies(client: Client, targets: Sequence[str], n: int, rng: random.Random) -> list[float]:
    """Send ``n`` refused resumes, one at a time, each to a random target; milliseconds each."""
    out = []
    for _ in range(n):
        wid = rng.choice(targets)
        t0 = time.perf_counter()
        try:
            await ops.send(client, wid, UPDATE, Resume(actor=ACTOR, note="scale bench"))
        except CommandRejected as err:
            if REFUSAL not in str(err):
                raise
        else:
            raise RuntimeError(f"{wid} accepted a resume it should have refused")
        out.append((time.perf_counter() - t0) * 1000)
    return out


def percentiles(ms: Sequence[float]) -> dict[str, float]:
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return {"n": len(ms), "p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "p99": round(cuts[98], 1),
            "max": round(max(ms), 1)}


# -- the run -------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    queue = f"scale-{tag}"
    sandbox_port = free_port()
    gitlab_url = f"http://127.0.0.1:{sandbox_port}"
    common = {"MODEL_MIGRATION_STATE_DIR": str(state), "MODEL_MIGRATION_GITLAB_URL": gitlab_url}
    load_before = os.getloadavg()

    async with AsyncExitStack() as stack:
        server = (DevServer if args.persisted else MemoryDevServer)(state / "temporal", headless=True)
        server.start()
        stack.callback(server.stop)
        address = server.address
        sandbox_log = state / "sandbox.log"
        with spawn([*cli(), "sandbox", "--port", str(sandbox_port)], clean_env(common), sandbox_log) as box:
            wait_for_port(sandbox_port, box, "the GitLab sandbox", sandbox_log)
            worker_env = {
                **common, "MODEL_MIGRATION_TEMPORAL_ADDRESS": address, "MODEL_MIGRATION_TASK_QUEUE": queue,
                "MODEL_MIGRATION_LOG_FORMAT": "json", "MODEL_MIGRATION_LOG_LEVEL": "info",
            }
            if args.cache is not None:
                worker_env["MODEL_MIGRATION_MAX_CACHED_WORKFLOWS"] = str(args.cache)
            worker_log = state / "worker.log"
            with spawn([*cli(), "worker"], clean_env(worker_env), worker_log) as worker:
                wait_for_line(worker_log, "worker_started", worker, "the worker")
                say(f"worker {worker.pid} polling {queue}; dev server {address}, sandbox {gitlab_url}")
                client = await connect(Settings(temporal_address=address), wait=30)
                idle = settled_rss(worker.pid, args.settle)
                say(f"idle: {idle['rss']} MB")
                return await measure(args, client, queue, worker, tag, idle, load_before)
    raise AssertionError("unreachable")


async def measure(
    args: argparse.Namespace, client: Client, queue: str, worker: subprocess.Popen[bytes], tag: str,
    idle: dict[str, float], load_before: tuple[float, float, float],
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    # Baseline: one migration of one feature, the same update sent to that one feature.
    first = await start_migration(client, queue, migration_input(tag, 0, 1))
    await until_quiet(client, [*first, migration_id(migration_input(tag, 0, 1).model)], timeout=120)
    await update_latencies(client, first, 5, rng)  # warm-up: connections, the first replay
    baseline_ms = await update_latencies(client, first, args.updates, rng)
    one_open = settled_rss(worker.pid, args.settle / 3)
    say(f"baseline: 1 feature open, {one_open['rss']} MB; p99 {percentiles(baseline_ms)['p99']} ms")

    # The load: --features over --migrations, started as people start them.
    sizes = spread(args.features, args.migrations)
    requests = [migration_input(tag, i + 1, k) for i, k in enumerate(sizes)]
    t0 = time.perf_counter()
    started = await gather_limited(args.concurrency, [lambda r=r: start_migration(client, queue, r) for r in requests])  # type: ignore[misc]
    starts_sent_s = time.perf_counter() - t0
    feature_ids = [wid for ids in started for wid in ids]
    say(f"{len(requests)} migrations started and their init completed in {starts_sent_s:.1f}s")
    while await count_running(client, queue, "FeatureMigrationWorkflow") < len(feature_ids) + len(first):
        if time.perf_counter() - t0 > args.timeout:
            raise TimeoutError(f"not every feature started within {args.timeout:.0f}s")
        await asyncio.sleep(0.5)
    all_started_s = time.perf_counter() - t0
    say(f"{len(feature_ids)} feature workflows running after {all_started_s:.1f}s")
    migration_ids = [migration_id(r.model) for r in requests]
    await until_quiet(client, [*feature_ids, *migration_ids], timeout=args.timeout)
    settled_s = time.perf_counter() - t0
    say(f"every feature's issue filed and every workflow idle after {settled_s:.1f}s")
    loaded = settled_rss(worker.pid, args.settle)
    say(f"all open: {loaded['rss']} MB (peak {loaded['peak']} MB)")

    await update_latencies(client, feature_ids, 5, rng)
    load_ms = await update_latencies(client, feature_ids, args.updates, rng)
    after = rss_mb(worker.pid)
    base, under = percentiles(baseline_ms), percentiles(load_ms)
    open_workflows = len(feature_ids) + len(migration_ids) + 2
    result = {
        "features": len(feature_ids), "migrations": len(migration_ids), "open_workflows": open_workflows,
        "max_cached_workflows": args.cache if args.cache is not None else "default",
        "dev_server": "sqlite on disk" if args.persisted else "in memory",
        "worker_rss_mb": {
            "idle": idle["rss"], "one_feature_open": one_open["rss"], "all_open": loaded["rss"],
            "after_updates": after["rss"], "peak": after["peak"],
            "ratio_all_open_to_idle": round(loaded["rss"] / idle["rss"], 2),
            "kb_per_open_workflow": round((loaded["rss"] - idle["rss"]) * 1024 / open_workflows, 1),
        },
        "start_s": {
            "starts_and_inits_sent": round(starts_sent_s, 1), "all_features_running": round(all_started_s, 1),
            "all_settled": round(settled_s, 1),
            "features_per_s_settled": round(len(feature_ids) / settled_s, 1),
        },
        "update": UPDATE + " (refused: not paused)",
        "update_ms": {"one_open": base, "all_open": under,
                      "ratio_p50": round(under["p50"] / base["p50"], 2), "ratio_p99": round(under["p99"] / base["p99"], 2)},
        "goal": GOAL,
        "meets_goal": loaded["rss"] <= GOAL["rss_mb_max"] and under["p99"] <= GOAL["update_p99_ms_max"],
        "machine": {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
    }
    return result


def report(r: dict[str, Any]) -> str:
    rss, start, upd = r["worker_rss_mb"], r["start_s"], r["update_ms"]
    lines = [
        f"{r['features']} features over {r['migrations']} migrations ({r['open_workflows']} open workflows), one worker,"
        f" max_cached_workflows {r['max_cached_workflows']}, dev server {r['dev_server']}",
        f"worker RSS MB: idle {rss['idle']}, 1 feature open {rss['one_feature_open']}, all open {rss['all_open']}"
        f" ({rss['ratio_all_open_to_idle']}x idle; {rss['kb_per_open_workflow']} kB per open workflow),"
        f" after the updates {rss['after_updates']}, peak {rss['peak']}",
        f"start: starts and inits sent {start['starts_and_inits_sent']} s,"
        f" every feature running {start['all_features_running']} s, every first activity done and all idle"
        f" {start['all_settled']} s ({start['features_per_s_settled']} features/s)",
        f"update latency ms ({r['update']}), p50/p95/p99:"
        f" 1 open {upd['one_open']['p50']}/{upd['one_open']['p95']}/{upd['one_open']['p99']},"
        f" all open {upd['all_open']['p50']}/{upd['all_open']['p95']}/{upd['all_open']['p99']}"
        f" (ratio p50 {upd['ratio_p50']}, p99 {upd['ratio_p99']})",
        f"goal: RSS <= {GOAL['rss_mb_max']} MB, p99 <= {GOAL['update_p99_ms_max']} ms: {'met' if r['meets_goal'] else 'NOT met'}",
        f"machine: {r['machine']['cpus']} cpus, load {r['machine']['load_before']} before, {r['machine']['load_after']} after",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=1000, help="open feature workflows (1000)")
    parser.add_argument("--migrations", type=int, default=100, help="migrations they are spread over (100)")
    parser.add_argument("--updates", type=int, default=200, help="updates timed, at each load (200)")
    parser.add_argument("--cache", type=int, default=None,
                        help="the worker's MODEL_MIGRATION_MAX_CACHED_WORKFLOWS (default: the setting's default)")
    parser.add_argument("--concurrency", type=int, default=10, help="migrations being started at once (10)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds the start may take (900)")
    parser.add_argument("--persisted", action="store_true",
                        help="the dev server on SQLite on disk, as `model-migration dev-server` runs it (default: in memory)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of quiet before an RSS reading (3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.migrations < 1 or args.features < args.migrations:
        parser.error("--migrations must be at least 1 and at most --features")
    if max(spread(args.features, args.migrations)) > len(FEATURES):
        parser.error(f"a migration holds at most {len(FEATURES)} features (the catalog's): raise --migrations")
    if args.updates < 1:
        parser.error("--updates must be at least 1")
    # Ctrl-C or SIGTERM stops the run through its clean-up (the worker, the sandbox and the dev
    # server stop too), also when started in the background, where SIGINT comes ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
            result = asyncio.run(bench(args, Path(tmp)))
    except KeyboardInterrupt:
        say("interrupted; the worker, the sandbox and the dev server are stopped")
        return 130
    print(json.dumps(result, indent=2) if args.json else report(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
