"""The rollout's Prometheus activities against the simulated gateway and a real Prometheus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests

from activities.rollout import RolloutActivities
from activities.rollout_payloads import BaselineInput, OldModelRateInput
from model_migration.clients.prometheus import PrometheusClient
from tests.metrics_fixtures import MetricsStack

#: Everyone on the new model from the start: the old model never had a series for this feature.
ALL_NEW, HALF, QUIET = "act_all_new", "act_half", "act_quiet"
SCENARIOS = {
    ALL_NEW: {"candidate": "m2", "baseline": "m1", "percentage": 100},
    HALF: {"candidate": "m2", "baseline": "m1", "percentage": 50},
    QUIET: {"candidate": "m2", "baseline": "m1", "percentage": 50, "scenario": "no_traffic"},
}
WINDOW = timedelta(seconds=5)


@pytest.fixture(scope="module")
def rollout(metrics_stack: MetricsStack) -> Iterator[RolloutActivities]:
    requests.put(f"{metrics_stack.gateway_url}/-/config", json={"features": SCENARIOS}, timeout=5).raise_for_status()
    time.sleep(3)  # a few scrapes of every feature
    yield RolloutActivities({}, lambda: PrometheusClient(metrics_stack.prometheus_url))
    requests.put(f"{metrics_stack.gateway_url}/-/config", json={"features": dict.fromkeys(SCENARIOS)}, timeout=5)


def test_the_old_models_rate_is_zero_when_only_the_new_one_serves_and_unknown_when_nothing_is_seen(rollout: RolloutActivities) -> None:
    """The gateway exports its series at zero; an old model without any series proves nothing by
    itself, but with the feature served (by the new model) it is zero; a feature Prometheus has never
    seen is unknown."""
    assert rollout.old_model_rate(OldModelRateInput(feature=ALL_NEW, model="m1", window=WINDOW)) == 0.0
    assert rollout.old_model_rate(OldModelRateInput(feature=ALL_NEW, model="never_served", window=WINDOW)) == 0.0
    half = rollout.old_model_rate(OldModelRateInput(feature=HALF, model="m1", window=WINDOW))
    assert half is not None and half > 0
    assert rollout.old_model_rate(OldModelRateInput(feature=QUIET, model="m1", window=WINDOW)) == 0.0
    assert rollout.old_model_rate(OldModelRateInput(feature="act_unknown", model="m1", window=WINDOW)) is None


def test_the_baseline_is_the_old_models_latency_percentiles_and_acceptance(rollout: RolloutActivities) -> None:
    baseline = rollout.observe_baseline(BaselineInput(feature=HALF, model="m1", window=WINDOW))
    assert baseline.latency_p50 is not None and baseline.latency_p95 is not None
    assert baseline.latency_p50 <= (baseline.latency_p90 or 0) <= baseline.latency_p95
    assert baseline.acceptance_rate is not None and 0.1 < baseline.acceptance_rate < 0.5  # the simulator's 0.3
    assert baseline.model == "m1" and baseline.since is not None and baseline.until is not None
    none = rollout.observe_baseline(BaselineInput(feature=QUIET, model="m1", window=WINDOW))
    assert (none.latency_p95, none.acceptance_rate) == (None, None)
