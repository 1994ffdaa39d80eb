"""Reading deploy/: its manifests, the Dockerfile's entrypoint, the metric names the docs list, and the tools that check them."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "model-migration.json"
BIN = Path(sys.executable).parent
JOB = "model-migration-worker"

#: Metrics the Temporal SDK's exporter serves with the worker's PrometheusConfig (durations in seconds, counters
#: ending in ``_total``), as scraped from a worker; model_migration/metrics.py lists the ones alerts use.
SDK_METRICS = frozenset({
    "temporal_activity_execution_failed_total", "temporal_activity_execution_latency_seconds",
    "temporal_activity_schedule_to_start_latency_seconds", "temporal_activity_succeed_endtoend_latency_seconds",
    "temporal_activity_task_received_total", "temporal_long_request_total", "temporal_long_request_failure_total",
    "temporal_long_request_latency_seconds", "temporal_num_pollers", "temporal_request_total", "temporal_request_failure_total",
    "temporal_request_latency_seconds", "temporal_sticky_cache_hit_total", "temporal_sticky_cache_size", "temporal_worker_start_total",
    "temporal_worker_task_slots_available", "temporal_worker_task_slots_used", "temporal_workflow_completed_total",
    "temporal_workflow_endtoend_latency_seconds", "temporal_workflow_task_execution_latency_seconds",
    "temporal_workflow_task_queue_poll_succeed_total", "temporal_workflow_task_replay_latency_seconds",
    "temporal_workflow_task_schedule_to_start_latency_seconds",
})
METRIC = re.compile(r"\b(?:temporal|model_migration)_[a-z0-9_]+\b")


def tool(name: str) -> Path:
    """A tool of the test extra, installed beside this interpreter; a failure naming the install otherwise."""
    exe = BIN / name
    if not exe.exists():
        pytest.fail(f"{name} is missing: install the test extra with: pip install -e '.[test]'", pytrace=False)
    return exe


def promtool() -> Path:
    """Debian's promtool (package prometheus); a failure naming the setup command otherwise."""
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None)
    if found is None:
        pytest.fail("promtool is missing (it comes with Debian's prometheus package): run model-migration setup-prometheus", pytrace=False)
    return Path(found)


def run(*command: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=120)


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object under deploy/kubernetes (the kustomization is not one)."""
    return [(p, d) for p in sorted(KUBERNETES.glob("*.yaml")) if p.name != "kustomization.yaml" for d in documents(p)]


def manifest(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for _, d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def worker_container() -> dict[str, Any]:
    (container,) = manifest("Deployment", "model-migration-worker")["spec"]["template"]["spec"]["containers"]
    return container


def dockerfile_command(target: str = "worker") -> list[str]:
    """ENTRYPOINT + CMD (exec form) of a stage of deploy/Dockerfile, as ``docker run`` would run them."""
    stage: str | None = None
    entrypoint: list[str] = []
    cmd: list[str] = []
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if m := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE):
            stage = m.group(1)
        elif stage == target and (m := re.match(r"(ENTRYPOINT|CMD)\s+(\[.*\])\s*$", line)):
            value = json.loads(m.group(2))
            if m.group(1) == "ENTRYPOINT":
                entrypoint = value
            else:
                cmd = value
    assert entrypoint, f"deploy/Dockerfile: the {target} stage has no exec-form ENTRYPOINT"
    return entrypoint + cmd


def documented_metrics() -> set[str]:
    """The metric names model_migration/metrics.py's docstring lists (with any suffix it writes)."""
    import model_migration.metrics as metrics

    return set(METRIC.findall(metrics.__doc__ or ""))


def known(name: str) -> bool:
    """A name documented in model_migration/metrics.py or served by the SDK, with or without a histogram's series suffix."""
    names = documented_metrics() | SDK_METRICS
    base = re.sub(r"_(bucket|count|sum)$", "", name)
    return name in names or base in names


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def env_names(text: str) -> set[str]:
    return set(re.findall(r"\bMODEL_MIGRATION_[A-Z0-9_]+\b", text))


def quoted(command: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in command)
