"""``model-migration worker`` as a deployment runs it: Prometheus metrics a real Prometheus scrapes,
OTLP traces, the health endpoint, and a SIGTERM that drains an activity in flight."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from model_migration.devserver import free_port
from model_migration.health import Health
from tests.e2e.cli import Cli, catalog_with_models, cli_env, one_line_error, wait_status
from tests.metrics_fixtures import MetricsStack

JOB = "model-migration-worker"
GRACE = 20.0
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TraceReceiver:
    """An OTLP/HTTP trace endpoint on a free port: it keeps the span names of every POST to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[str] = []
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    spans.extend(s.name for r in request.resource_spans for ss in r.scope_spans for s in ss.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Observed:
    cli: Cli
    worker: subprocess.Popen[bytes]
    metrics: str
    health: str
    models: list[str]
    traces: TraceReceiver


def get(url: str) -> tuple[int, str]:
    try:
        with OPENER.open(url, timeout=2) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_ready(health: str, worker: subprocess.Popen[bytes], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert worker.poll() is None, f"the worker exited with {worker.returncode}: {_stderr(worker)}"
        try:
            if get(f"{health}/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    worker.kill()
    worker.wait(timeout=10)
    raise AssertionError(f"the worker was not ready within {timeout}s: {_stderr(worker)}")


def _stderr(worker: subprocess.Popen[bytes]) -> str:
    return worker.stderr.read().decode()[-2000:] if worker.stderr is not None and worker.poll() is not None else ""


@pytest.fixture(scope="module")
def observed(dev_env: WorkflowEnvironment, gitlab_sandbox, tmp_path_factory) -> Iterator[Observed]:  # type: ignore[no-untyped-def]
    """One worker process with metrics, health and tracing on, over two fresh models of its own."""
    catalog, models = catalog_with_models(tmp_path_factory.mktemp("catalog"), "metrics", "drain")
    metrics, health, traces = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}", TraceReceiver()
    cli = Cli({
        **cli_env(dev_env, gitlab_sandbox),
        "MODEL_MIGRATION_CATALOG_DIR": str(catalog),
        "MODEL_MIGRATION_METRICS_ADDRESS": metrics,
        "MODEL_MIGRATION_HEALTH_ADDRESS": health,
        "MODEL_MIGRATION_GRACEFUL_SHUTDOWN": str(GRACE),
        "OTEL_EXPORTER_OTLP_ENDPOINT": traces.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    })
    worker = cli.start_worker()
    try:
        wait_ready(f"http://{health}", worker)
        yield Observed(cli, worker, f"http://{metrics}", f"http://{health}", models, traces)
    finally:
        cli.kill_workers()
        traces.close()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    def same(key: str, got: str | None, want: str) -> bool:
        return got is not None and (float(got) == float(want) if key == "le" else got == want)

    return sum(v for got, v in found.get(name, []) if all(same(k, got.get(k), want) for k, want in labels.items()))


def prometheus(stack: MetricsStack, query: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{stack.prometheus_url}/api/v1/query", params={"query": query}, timeout=5,
                          proxies={"http": "", "https": ""})
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def test_metrics_reach_prometheus_and_traces_reach_otlp(observed: Observed, metrics_stack: MetricsStack, gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """SDK and engine metrics on /metrics, with labels; a real Prometheus scrapes them; spans arrive over OTLP."""
    metrics_stack.scrape(JOB, observed.metrics.removeprefix("http://"))  # its next tick picks the worker up
    try:
        model = observed.models[0]
        migration = f"migration:anthropic/claude-sonnet-4-5/{model.rsplit('_', 1)[1]}"
        # GitLab fails the merge request's creation once: the activity retries, blocked for a second.
        gitlab_sandbox.server.inject_fault(r"/merge_requests$", "500", method="POST", count=1)
        observed.cli("start", "--model", model, "-f", "duo_chat", "--day-seconds", "600")
        wait_status(observed.cli, migration, lambda s: s["config_mr_url"])

        status, text = get(f"{observed.metrics}/metrics")
        assert status == 200
        found = samples(text)
        for sdk in ("temporal_workflow_task_schedule_to_start_latency_seconds_bucket", "temporal_activity_execution_latency_seconds_count",
                    "temporal_activity_schedule_to_start_latency_seconds_bucket", "temporal_worker_task_slots_available"):
            assert sdk in found, sorted(n for n in found if n.startswith("temporal_"))
        entered = value(found, "model_migration_stage_entered_total", workflow="migration", stage="init",
                        workflow_type="ModelMigrationWorkflow")
        assert entered >= 1, found.get("model_migration_stage_entered_total")
        tracking = {"endpoint": "issues", "status": "201", "activity_type": "write_tracking_issue"}
        assert value(found, "model_migration_gitlab_requests_total", **tracking) >= 1
        assert value(found, "model_migration_gitlab_requests_total", endpoint="repository") >= 1  # the config merge request's branch
        assert value(found, "model_migration_gitlab_requests_total", endpoint="merge_requests", status="500") == 1
        config_mr = {"activity_type": "ensure_model_config_mr"}
        assert value(found, "model_migration_gitlab_failing_seconds_count", **config_mr) == 1
        assert value(found, "model_migration_gitlab_failing_seconds_bucket", le="3600", **config_mr) == 1
        assert value(found, "model_migration_gitlab_blocked_seconds_count", **config_mr) == 1
        assert value(found, "temporal_activity_execution_failed_total", activity_type="ensure_model_config_mr") == 1
        # The failure-rate alert's denominator counts every attempt, the failed one included.
        assert value(found, "temporal_activity_execution_latency_seconds_count", activity_type="ensure_model_config_mr") == 2

        up = f'up{{job="{JOB}"}}'
        engine = f'model_migration_stage_entered_total{{job="{JOB}", workflow="migration", stage="init"}}'
        end = time.monotonic() + 20
        while not (prometheus(metrics_stack, f"{up} == 1") and prometheus(metrics_stack, engine)):
            assert time.monotonic() < end, f"Prometheus never scraped the worker: {prometheus(metrics_stack, up)}"
            time.sleep(0.5)

        end = time.monotonic() + 10
        spans = {"RunWorkflow:ModelMigrationWorkflow", "StartActivity:write_tracking_issue", "RunActivity:write_tracking_issue"}
        while not spans <= set(observed.traces.spans):
            assert time.monotonic() < end, f"spans received: {sorted(set(observed.traces.spans))}"
            time.sleep(0.2)
    finally:
        metrics_stack.scrape(JOB, None)
        gitlab_sandbox.server.clear_faults()


def test_sigterm_drains_the_activity_in_flight(observed: Observed, dev_env: WorkflowEnvironment, gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM while GitLab takes 3 s to open the configuration merge request: /ready turns 503 at
    once, the activity completes on its first attempt and writes once, and the worker exits 0 within the grace."""
    server = gitlab_sandbox.server
    model = observed.models[1]
    migration = f"migration:anthropic/claude-sonnet-4-5/{model.rsplit('_', 1)[1]}"
    since = time.time()
    server.inject_fault(r"/merge_requests$", "slow", method="POST", count=1, delay=3)
    try:
        observed.cli("start", "--model", model, "-f", "duo_chat", "--day-seconds", "600")
        end = time.monotonic() + 20
        while not any(rule["fault"] == "slow" and rule["fired"] for rule in server.faults()):
            assert time.monotonic() < end, "the merge request was never requested"
            time.sleep(0.05)
        sent = time.monotonic()
        observed.worker.send_signal(signal.SIGTERM)
        ready = []
        while observed.worker.poll() is None and time.monotonic() - sent < GRACE + 5:
            try:
                ready.append(get(f"{observed.health}/ready")[0])
            except OSError:
                pass  # the endpoint closes as the process ends
            time.sleep(0.1)
        code = observed.worker.wait(timeout=5)
        took = time.monotonic() - sent
    finally:
        server.clear_faults()
    assert code == 0, _stderr(observed.worker)
    assert 2 < took < GRACE, took  # it waited for the slow write, not for the whole grace
    assert ready and set(ready) == {503}, ready

    def merge_requests_opened() -> list[int]:
        return [e[3] for e in server.requests.entries() if e[0] >= since and e[1] == "POST" and e[2].endswith("/merge_requests")]

    assert merge_requests_opened() == [201]
    history = asyncio.run(_history(dev_env, migration))
    scheduled = [e.event_id for e in history if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and e.activity_task_scheduled_event_attributes.activity_type.name == "ensure_model_config_mr"]
    started = [e.activity_task_started_event_attributes.attempt for e in history
               if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
               and e.activity_task_started_event_attributes.scheduled_event_id in scheduled]
    completed = [e for e in history if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                 and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled]
    assert len(scheduled) == 1 and started == [1] and len(completed) == 1, [EventType.Name(e.event_type) for e in history]

    # Nothing lost: the next worker carries on from the completed activity and opens no second merge request.
    env = {k: v for k, v in observed.cli.env.items() if k not in ("MODEL_MIGRATION_METRICS_ADDRESS", "MODEL_MIGRATION_HEALTH_ADDRESS")}
    after = Cli(env)
    after.start_worker()
    try:
        wait_status(after, migration, lambda s: s["config_mr_url"])
    finally:
        after.kill_workers()
    assert merge_requests_opened() == [201]


async def _history(dev_env: WorkflowEnvironment, workflow_id: str) -> list[Any]:
    """Through a client of this loop's own: the session's belongs to the session's loop."""
    client = await Client.connect(dev_env.client.service_client.config.target_host, namespace=dev_env.client.namespace)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return list(history.events)


def test_a_taken_or_malformed_address_stops_the_start_with_one_line(observed: Observed) -> None:
    """A metrics address another process listens on, or one that is no address: the worker does not start."""
    console = {**observed.cli.env, "MODEL_MIGRATION_LOG_FORMAT": "console"}
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        line = one_line_error(Cli({**console, "MODEL_MIGRATION_METRICS_ADDRESS": address})("worker", check=False))
        assert f"cannot serve metrics on {address}: Address already in use" in line and "MODEL_MIGRATION_METRICS_ADDRESS" in line, line
        line = one_line_error(Cli({**console, "MODEL_MIGRATION_HEALTH_ADDRESS": address})("worker", check=False))
        assert f"cannot serve the health endpoint on {address}" in line and "MODEL_MIGRATION_HEALTH_ADDRESS" in line, line
    line = one_line_error(Cli({**console, "MODEL_MIGRATION_METRICS_ADDRESS": "localhost"})("worker", check=False))
    assert "MODEL_MIGRATION_METRICS_ADDRESS='localhost' is not host:port" in line, line


def test_health_answers_live_and_ready() -> None:
    """/live 200 from the start; /ready 503 until the worker polls, 200 while it does, 503 once it drains."""

    async def probe() -> list[int]:
        health = Health()
        address = f"127.0.0.1:{free_port()}"
        await health.start(address)
        try:
            seen = [await asyncio.to_thread(lambda p=p: get(f"http://{address}{p}")[0]) for p in ("/live", "/ready")]  # type: ignore[misc]
            health.ready = True
            seen.append(await asyncio.to_thread(lambda: get(f"http://{address}/ready")[0]))
            health.ready = False
            seen.append(await asyncio.to_thread(lambda: get(f"http://{address}/ready")[0]))
            seen.append(await asyncio.to_thread(lambda: get(f"http://{address}/metrics")[0]))
            return seen
        finally:
            await health.stop()

    assert asyncio.run(probe()) == [200, 503, 200, 503, 404]
