"""The experiment-service harness client, over real HTTP to the sandbox's service, into the gate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from model_migration.clients.experiments import ExperimentRequest, ExperimentServiceClient, HarnessError
from model_migration.domain.commands import Verdict
from model_migration.domain.errors import ErrorType
from model_migration.domain.gate import GateConfig, MetricSpec, evaluate_gate

DATASET = "duo_chat.questions.v3"
#: The margins the sandbox's profiles are calibrated for (judge points, similarity, ms); a
#: feature's own margins will come from its catalog entry.
GATE = GateConfig(
    metrics=(
        *(MetricSpec(name=name, margin=0.2) for name in ("correctness", "readability", "comprehensiveness")),
        MetricSpec(name="similarity", margin=0.03), MetricSpec(name="latency", margin=250.0),
    ),
    resamples=2000,
)


@pytest.fixture
def service(gitlab_sandbox) -> Iterator[ExperimentServiceClient]:  # type: ignore[no-untyped-def]
    base = f"{gitlab_sandbox.url}/api/evaluation"
    configured = requests.put(f"{base}/-/config", json={"run_seconds": 0}, headers={"PRIVATE-TOKEN": gitlab_sandbox.token}, timeout=10)
    assert configured.ok, configured.text
    client = ExperimentServiceClient(base, gitlab_sandbox.token)
    yield client
    client.close()
    requests.put(f"{base}/-/config", json={}, headers={"PRIVATE-TOKEN": gitlab_sandbox.token}, timeout=10)


def request(model: str) -> ExperimentRequest:
    return ExperimentRequest(
        dataset=DATASET, prompt_id="chat/react", prompt_version="1.0.0-dev", model=model,
        baseline_model="sim-baseline", baseline_prompt_version="1.0.0",
    )


def run(service: ExperimentServiceClient, model: str) -> str:
    request_id = service.register(request(model))
    state = service.state(request_id)
    assert state.state == "complete" and state.digest and state.example_count >= 200
    return request_id


@pytest.mark.parametrize(("model", "verdict"), [("sim-pass", Verdict.PASS), ("sim-fail", Verdict.FAIL)])
def test_service_results_go_through_the_gate(service: ExperimentServiceClient, model: str, verdict: Verdict) -> None:
    """A passing and a failing candidate, run by the service, get the gate's matching verdict."""
    examples = service.results(run(service, model))
    assert len(examples) >= 200 and len({e.example_id for e in examples}) == len(examples)
    assert {"correctness", "similarity"} <= set(examples[0].candidate.scores)
    result = evaluate_gate(examples, GATE, dataset=DATASET, baseline="sim-baseline", candidate=model)
    assert result.verdict == verdict, result.reason


def test_state_is_read_again_without_registering_again(service: ExperimentServiceClient) -> None:
    """Polling a known request id twice gives the same run; nothing new is registered."""
    request_id = run(service, "sim-pass")
    assert service.state(request_id) == service.state(request_id)
    assert service.results(request_id) == service.results(request_id)


def test_refusals_are_not_retried_and_outages_are(service: ExperimentServiceClient, gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """An unknown dataset or a bad token is refused for good; an unknown run id too; no server is retryable."""
    with pytest.raises(HarnessError) as unknown:
        service.register(request("sim-pass").model_copy(update={"dataset": "duo_chat.nothing.v1"}))
    assert unknown.value.type == ErrorType.HARNESS_REFUSED and "\n" not in unknown.value.message
    bad = ExperimentServiceClient(service.base_url, "not-the-token")
    with pytest.raises(HarnessError) as refused:
        bad.register(request("sim-pass"))
    assert refused.value.type == ErrorType.HARNESS_REFUSED and "not-the-token" not in refused.value.message
    with pytest.raises(HarnessError) as missing:
        service.state("0" * 32)
    assert missing.value.type == ErrorType.HARNESS_REFUSED
    gone = ExperimentServiceClient("http://127.0.0.1:9/api/evaluation", gitlab_sandbox.token, timeout=2)
    with pytest.raises(HarnessError) as down:
        gone.state("x")
    assert down.value.type == ErrorType.HARNESS_UNAVAILABLE
    assert ErrorType.HARNESS_UNAVAILABLE not in ErrorType.non_retryable()


def test_results_of_a_running_experiment_are_retryable(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """Asking for results before the run is complete is a retryable error, not a verdict."""
    base = f"{gitlab_sandbox.url}/api/evaluation"
    headers = {"PRIVATE-TOKEN": gitlab_sandbox.token}
    assert requests.put(f"{base}/-/config", json={"run_seconds": 30}, headers=headers, timeout=10).ok
    client = ExperimentServiceClient(base, gitlab_sandbox.token)
    try:
        request_id = client.register(request("sim-pass"))
        assert client.state(request_id).state == "running"
        with pytest.raises(HarnessError) as early:
            client.results(request_id)
        assert early.value.type == ErrorType.HARNESS_UNAVAILABLE
    finally:
        client.close()
        requests.put(f"{base}/-/config", json={}, headers=headers, timeout=10)
