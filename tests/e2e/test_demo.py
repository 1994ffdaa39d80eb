"""The README's main job: ``model-migration demo --json``, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_demo_evaluates_every_feature_and_one_fails_once(tmp_path: Path) -> None:
    """Exit 0, every feature done; each has its gate verdicts with their per-metric tables; one failed before it passed."""
    done = subprocess.run(
        [sys.executable, "-m", "model_migration.cli", "demo", "--json", "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
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
