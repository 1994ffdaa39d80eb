"""The simulated AI gateway: stable routing, the three scenarios, its config endpoint and its entry point."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from gitlab_sandbox.gateway_sim import FeatureTraffic, GatewaySim, actor_percentage, split_route
from model_migration.devserver import free_port

USERS = [f"User:{n}" for n in range(1, 5001)]


def traffic(**fields: object) -> FeatureTraffic:
    return FeatureTraffic.from_json({"candidate": "m2", "baseline": "m1", **fields})


def sample(sim: GatewaySim, name: str, feature: str, model: str) -> float:
    return sim.registry.get_sample_value(name, {"feature": feature, "model": model}) or 0.0


def ratio(sim: GatewaySim, numerator: str, denominator: str, feature: str, model: str) -> float:
    return sample(sim, numerator, feature, model) / sample(sim, denominator, feature, model)


def mean_latency(sim: GatewaySim, feature: str, model: str) -> float:
    return ratio(sim, "ai_gateway_request_duration_seconds_sum", "ai_gateway_request_duration_seconds_count", feature, model)


def run(sim: GatewaySim, ticks: int) -> GatewaySim:
    for _ in range(ticks):
        sim.tick()
    return sim


def test_the_users_on_the_candidate_stay_there_as_the_percentage_rises() -> None:
    """Each step's candidate users include the previous step's, and their share matches the percentage."""
    previous: set[str] = set()
    for percentage in (1, 10, 25, 50, 75, 100):
        split = traffic(percentage=percentage, flag="duo_code_suggestions_m2")
        on_candidate = {u for u in USERS if split_route("code_suggestions", split, u) == "m2"}
        assert previous <= on_candidate
        assert abs(100 * len(on_candidate) / len(USERS) - percentage) < 2.5
        previous = on_candidate


def test_the_split_hashes_the_flag_with_the_actor() -> None:
    """Two flags at one percentage pick different actors, as Flipper's percentage-of-actors gate does; the flag defaults to the feature."""
    assert all(0 <= actor_percentage("f", u) < 100 for u in USERS)
    first = {u for u in USERS if actor_percentage("flag_a", u) < 25}
    second = {u for u in USERS if actor_percentage("flag_b", u) < 25}
    assert first != second
    by_name, by_flag = traffic(percentage=25), traffic(percentage=25, flag="feature")
    assert [split_route("feature", by_name, u) for u in USERS] == [split_route("other", by_flag, u) for u in USERS]


def test_a_healthy_candidate_behaves_as_the_baseline() -> None:
    """Healthy: equal error and acceptance rates and a like latency for both models."""
    sim = GatewaySim(seed=3)
    sim.configure({"chat": traffic(percentage=50, error_rate=0.02, acceptance=0.4)})
    run(sim, 200)
    for model in ("m1", "m2"):
        assert sample(sim, "ai_gateway_requests_total", "chat", model) > 1500
        assert ratio(sim, "ai_gateway_request_errors_total", "ai_gateway_requests_total", "chat", model) == pytest.approx(0.02, abs=0.002)
        assert ratio(sim, "ai_gateway_suggestions_accepted_total", "ai_gateway_suggestions_shown_total", "chat", model) == pytest.approx(
            0.4, abs=0.002)
    assert mean_latency(sim, "chat", "m2") / mean_latency(sim, "chat", "m1") == pytest.approx(1.0, abs=0.05)


def test_a_regressing_candidate_degrades_only_above_its_share() -> None:
    """Regressing: at 25 % (above 10) the candidate errs more, is slower and is accepted less; at 5 % it is healthy."""
    sim = GatewaySim(seed=4)
    sim.configure({
        "above": traffic(scenario="regressing", percentage=25, regress_above=10),
        "below": traffic(scenario="regressing", percentage=5, regress_above=10),
    })
    run(sim, 300)
    assert sim.candidate_share("above") == pytest.approx(25, abs=6)
    errors = {m: ratio(sim, "ai_gateway_request_errors_total", "ai_gateway_requests_total", "above", m) for m in ("m1", "m2")}
    assert errors["m2"] - errors["m1"] == pytest.approx(0.10, abs=0.01)
    assert mean_latency(sim, "above", "m2") / mean_latency(sim, "above", "m1") == pytest.approx(3.0, rel=0.1)
    accepted = {m: ratio(sim, "ai_gateway_suggestions_accepted_total", "ai_gateway_suggestions_shown_total", "above", m)
                for m in ("m1", "m2")}
    assert accepted["m1"] - accepted["m2"] == pytest.approx(0.10, abs=0.01)
    below = {m: ratio(sim, "ai_gateway_request_errors_total", "ai_gateway_requests_total", "below", m) for m in ("m1", "m2")}
    assert below["m2"] == pytest.approx(below["m1"], abs=0.005)
    assert mean_latency(sim, "below", "m2") / mean_latency(sim, "below", "m1") == pytest.approx(1.0, abs=0.1)


def test_no_traffic_exports_only_zeros_for_the_feature() -> None:
    """no_traffic: the feature's series are exported from its configuration, at zero (a counter
    born at its first increment would miss rate()'s first samples), while another feature's flows."""
    sim = GatewaySim(seed=5)
    sim.configure({"quiet": traffic(scenario="no_traffic", percentage=50), "busy": traffic(percentage=50)})
    run(sim, 20)
    assert sample(sim, "ai_gateway_requests_total", "busy", "m1") > 0
    quiet = [s for metric in sim.registry.collect() for s in metric.samples if s.labels.get("feature") == "quiet"]
    counters = {(s.name, s.labels["model"]) for s in quiet if s.name.endswith("_total")}
    assert {name for name, _ in counters} == {
        "ai_gateway_requests_total", "ai_gateway_request_errors_total", "ai_gateway_suggestions_shown_total",
        "ai_gateway_suggestions_accepted_total",
    } and {model for _, model in counters} == {"m1", "m2"}
    assert all(s.value == 0 for s in quiet if not s.name.endswith("_created"))


def test_one_seed_and_config_export_the_same_numbers() -> None:
    """Two sims with one seed count the same requests, errors and latency sums."""
    sims = [GatewaySim(seed=11) for _ in range(2)]
    for sim in sims:
        sim.configure({"f": traffic(percentage=30, scenario="regressing", regress_above=20)})
        run(sim, 50)
    names = ("ai_gateway_requests_total", "ai_gateway_request_errors_total", "ai_gateway_request_duration_seconds_sum")
    numbers = [[sample(s, n, "f", m) for n in names for m in ("m1", "m2")] for s in sims]
    assert numbers[0] == numbers[1] and all(numbers[0])


def test_a_router_plugged_in_decides_the_model() -> None:
    """A router passed in replaces the configured split, and is asked per feature and user."""
    asked: list[tuple[str, str]] = []

    def route(feature: str, user: str) -> str:
        asked.append((feature, user))
        return "m2" if user.endswith(("1", "3", "5", "7", "9")) else "m1"

    sim = GatewaySim(seed=6, router=route)
    sim.configure({"f": traffic(percentage=0, requests_per_tick=10)})
    run(sim, 10)
    assert len(asked) == 100 and {f for f, _ in asked} == {"f"}
    assert sample(sim, "ai_gateway_requests_total", "f", "m2") == sum(u[-1] in "13579" for _, u in asked)


@pytest.mark.parametrize(("entry", "problem"), [
    ({"candidate": "m2", "baseline": "m1", "scenario": "flaky"}, "scenario 'flaky' is not one of healthy, regressing, no_traffic"),
    ({"candidate": "m2", "baseline": "m1", "percent": 5}, "unknown field 'percent'"),
    ({"baseline": "m1"}, "candidate must be a model name"),
    ({"candidate": "m2", "baseline": "m1", "percentage": 101}, "percentage must be a number from 0 to 100"),
    ({"candidate": "m2", "baseline": "m1", "requests_per_tick": 2.5}, "requests_per_tick must be an integer"),
])
def test_a_bad_config_entry_is_refused_with_its_reason(entry: dict[str, object], problem: str) -> None:
    """Each bad field is named."""
    with pytest.raises(ValueError, match=problem):
        FeatureTraffic.from_json(entry)


@pytest.fixture
def served() -> Iterator[GatewaySim]:
    with GatewaySim(seed=8, tick_seconds=0.02) as sim:
        yield sim


def test_the_config_endpoint_replaces_named_features_and_metrics_are_served(served: GatewaySim) -> None:
    """PUT /-/config replaces the named features (null stops one); GET /metrics serves the counters."""
    body = {"features": {"a": {"candidate": "m2", "baseline": "m1", "percentage": 50}, "b": {"candidate": "x", "baseline": "y"}}}
    answer = requests.put(f"{served.url}/-/config", json=body, timeout=5)
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()["features"]) == ["a", "b"]
    answer = requests.put(f"{served.url}/-/config", json={"features": {"b": None}}, timeout=5)
    assert sorted(answer.json()["features"]) == ["a"] and answer.json()["features"]["a"]["flag"] == "a"
    bad = requests.put(f"{served.url}/-/config", json={"features": {"a": {"candidate": "m2"}}}, timeout=5)
    assert bad.status_code == 400 and bad.json() == {"error": "features.a: baseline must be a model name"}
    for _ in range(100):
        text = requests.get(f"{served.url}/metrics", timeout=5).text
        if 'ai_gateway_requests_total{feature="a",model="m2"}' in text:
            break
    assert 'ai_gateway_request_duration_seconds_bucket{feature="a",le="0.5",model="m1"}' in text
    assert requests.get(f"{served.url}/nothing", timeout=5).status_code == 404


def test_it_runs_alone_with_a_port() -> None:
    """``python -m gitlab_sandbox.gateway_sim --port P`` serves /metrics on that port until stopped."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gitlab_sandbox.gateway_sim", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"AI gateway sim serving http://127.0.0.1:{port}/metrics"
        answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert answer.status_code == 200 and "text/plain" in answer.headers["Content-Type"]
    finally:
        process.terminate()
        process.wait(timeout=10)
