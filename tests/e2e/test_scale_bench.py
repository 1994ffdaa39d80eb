"""bench/scale.py in a tiny configuration: it starts its servers and worker, and reports every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scale_bench_runs_tiny_and_reports_its_figures() -> None:
    """Five features on one migration: exit 0, one JSON object with the RSS, start and latency figures."""
    proc = subprocess.run(
        [sys.executable, "bench/scale.py", "--features", "5", "--migrations", "1", "--updates", "5", "--settle", "0.5", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert (report["features"], report["migrations"], report["open_workflows"]) == (5, 1, 8)
    rss = report["worker_rss_mb"]
    assert 30 < rss["idle"] <= rss["peak"], rss
    assert rss["all_open"] > 0 and rss["ratio_all_open_to_idle"] > 0
    assert report["start_s"]["all_settled"] >= report["start_s"]["all_features_running"] > 0
    for load in ("one_open", "all_open"):
        figures = report["update_ms"][load]
        assert figures["n"] == 5 and 0 < figures["p50"] <= figures["p99"] <= figures["max"], figures
    assert set(report["goal"]) == {"rss_mb_max", "update_p99_ms_max"} and isinstance(report["meets_goal"], bool)
