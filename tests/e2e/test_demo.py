"""The README's main job: ``model-migration demo --json``, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from model_migration.domain.errors import DomainError
from model_migration.prometheus_setup import check_prometheus

#: The demo as ``model-migration demo`` runs it, but as if Prometheus were not installed.
WITHOUT_PROMETHEUS = (
    "import sys; import model_migration.demo as demo; demo.find_prometheus = lambda: None; "
    "from model_migration.cli import main; main(sys.argv[1:])"
)

#: The demo's analysis metrics, each measured every round.
METRICS = ("error_ratio", "latency_p95", "acceptance_rate")


def run_demo(state: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *(prefix or ("-m", "model_migration.cli")), "demo", "--json", "--state-dir", str(state)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the standard demo, with Prometheus (a missing one fails the test, naming the install command)."""
    try:
        check_prometheus()
    except DomainError as err:
        pytest.fail(str(err), pytrace=False)
    done = run_demo(tmp_path_factory.mktemp("demo"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Prometheus http://127.0.0.1:" in " ".join(done.stderr.split()), done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_demo_evaluates_every_feature_and_one_fails_once(summary: dict[str, Any]) -> None:
    """Exit 0, every feature done; each has its gate verdicts with their per-metric tables; one failed before it passed."""
    assert [f["stage"] for f in summary["features"]] == ["done"] * 3
    verdicts = {f["name"]: [g["verdict"] for g in f["gates"]] for f in summary["features"]}
    assert verdicts == {"duo_chat": ["pass"], "code_generation": ["pass"], "code_explanation": ["fail", "pass"]}
    harnesses = {f["name"]: {g["harness"] for g in f["gates"]} for f in summary["features"]}
    assert harnesses["code_generation"] == {"ci_pipeline"} and harnesses["duo_chat"] == {"experiment_service"}  # from the catalog
    for feature in summary["features"]:
        for gate in feature["gates"]:
            names = {m["name"] for m in gate["metrics"]}
            assert {"correctness", "similarity", "latency"} <= names, gate
            assert all({"baseline_mean", "candidate_mean", "delta", "ci_low", "ci_high", "margin", "decision"} <= m.keys()
                       for m in gate["metrics"])
            assert {b["name"] for b in gate["bars"]} == {"poor_answers", "latency_p95"}
    failed = next(f for f in summary["features"] if f["name"] == "code_explanation")["gates"][0]
    assert failed["prompt_version"] == "1.0.0-dev" and any(m["decision"] == "fail" for m in failed["metrics"])
    assert summary["escalations"] >= 3


def test_the_deprecation_demo_replaces_the_retiring_model_end_to_end(tmp_path: Path) -> None:
    """``demo --deprecation``: the epic, the tournament table, the chosen replacement, every feature done, exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "model_migration.cli", "demo", "--deprecation", "--day-seconds", "0.5", "--json",
         "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["deprecation_id"] == "deprecation:anthropic/claude-3-7-sonnet"
    assert "/-/epics/" in summary["epic_url"]
    assert summary["replacement"] == "claude_sonnet_4_5_20250929" and summary["fallback"] == "claude_haiku_4_5_20251001"
    affected = {
        "duo_chat", "code_generation", "code_explanation", "root_cause_analysis", "vulnerability_resolution", "merge_request_summary",
    }
    assert summary["features"] == dict.fromkeys(affected, "done")
    table = summary["tournament"].splitlines()
    assert len(table) == 2 + 2 * len(affected) and all(" | pass | " in row for row in table[2:])
    # The late team heard from the deprecation before it started.
    assert any(line.endswith(": root_cause_analysis") for line in summary["escalations"]), summary["escalations"]


def test_the_engine_rolls_every_feature_out_and_rolls_one_back_then_retries_it(summary: dict[str, Any]) -> None:
    """Each feature's rollouts step by step with Prometheus's measurements; duo_chat's candidate regresses at 25 %, is
    rolled back automatically, and passes on ``retry_rollout`` once healed."""
    assert summary["rollout"]["driven_by"] == "engine" and summary["rollout"]["prometheus_url"].startswith("http://127.0.0.1:")
    assert summary["rollout"]["rolled_back"] == ["duo_chat"] and summary["rollout"]["retried"] == ["duo_chat"]
    rollouts = {f["name"]: f["rollouts"] for f in summary["features"]}
    both = ["production: 25 % of actors", "production: 100 % of actors"]
    for name, runs in rollouts.items():
        last = runs[-1]
        assert last["phase"] == "done" and [(s["label"], s["outcome"]) for s in last["steps"]] == [(b, "successful") for b in both], name
        for step in (s for run in runs for s in run["steps"]):
            assert {m["metric"] for m in step["measurements"]} == set(METRICS), step
            assert all({"round", "value", "requests", "success", "failure", "result"} <= m.keys() for m in step["measurements"])
            if step["outcome"] == "successful":  # judged on every metric's latest measurement
                latest = {m["metric"]: m for m in step["measurements"]}
                assert all(m["result"] == "successful" and m["requests"] >= 20 for m in latest.values()), latest
    assert [len(runs) for runs in rollouts.values()] == [2, 1, 1]
    failed, retried = rollouts["duo_chat"]
    assert failed["phase"] == "rolled_back" and failed["failed_step"] == 0
    [step] = failed["steps"]
    assert step["label"] == both[0] and step["outcome"] == "failed"
    # Rolled back once a metric failed twice in a row: the regressed candidate's errors, latency or acceptance.
    results = {name: [m["result"] for m in step["measurements"] if m["metric"] == name] for name in METRICS}
    assert any(r[-2:] == ["failed", "failed"] for r in results.values()), step["measurements"]
    assert retried["phase"] == "done"


def test_without_prometheus_the_demo_says_so_and_the_teams_report_their_rollout(tmp_path: Path) -> None:
    """Prometheus missing: one line naming ``model-migration setup-prometheus``; every feature done, its steps reported by hand."""
    done = run_demo(tmp_path, "-c", WITHOUT_PROMETHEUS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Prometheus is not installed (model-migration setup-prometheus installs it)" in " ".join(done.stderr.split())
    summary = json.loads(done.stdout)
    assert [f["stage"] for f in summary["features"]] == ["done"] * 3
    assert summary["rollout"] == {"driven_by": "team", "prometheus_url": "", "rolled_back": [], "retried": []}
    for feature in summary["features"]:
        [run] = feature["rollouts"]
        assert [s["outcome"] for s in run["steps"]] == ["reported"] * 6 and not any(s["measurements"] for s in run["steps"])
