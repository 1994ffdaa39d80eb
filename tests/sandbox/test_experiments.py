"""The sandbox's experiment service over real HTTP: register, poll the state, fetch paired results."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gitlab_sandbox import datasets
from gitlab_sandbox.experiments import EVALUATORS
from gitlab_sandbox.gitlab import GitLabSandbox
from gitlab_sandbox.model_simulator import ModelSimulator

TOKEN = "experiments-token"
DATASET = "duo_chat.questions.v3"
BODY: dict[str, Any] = {
    "dataset": DATASET,
    "prompt_id": "chat/react",
    "prompt_version": "1.1.0-dev",
    "model": "sim-pass",
    "evaluators": list(EVALUATORS),
    "baseline": {"model": "claude_3_7_sonnet_20250219", "prompt_version": "1.0.0"},
}


class Service:
    """A thin HTTP client for the service under test, so that each test reads as the calls it makes."""

    def __init__(self, sandbox: GitLabSandbox, token: str = TOKEN) -> None:
        self.sandbox = sandbox
        self.http = requests.Session()
        self.http.headers["PRIVATE-TOKEN"] = token

    @property
    def base(self) -> str:
        return f"{self.sandbox.url}/api/evaluation"

    def configure(self, **overrides: Any) -> requests.Response:
        return self.http.put(f"{self.base}/-/config", json=overrides, timeout=10)

    def register(self, body: dict[str, Any]) -> requests.Response:
        return self.http.post(f"{self.base}/v1/experiments/register", json=body, timeout=10)

    def state(self, request_id: str) -> requests.Response:
        return self.http.get(f"{self.base}/v1/experiments/state", params={"request_id": request_id}, timeout=10)

    def results(self, request_id: str) -> requests.Response:
        return self.http.get(f"{self.base}/v1/experiments/results", params={"request_id": request_id}, timeout=10)

    def run(self, body: dict[str, Any]) -> str:
        """Register ``body`` and return its request id, checking the registration succeeded."""
        answer = self.register(body)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["request_id"])


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitLabSandbox]:
    """A sandbox of its own on a free loopback port: configuration changes here reach no other test."""
    with GitLabSandbox(tmp_path_factory.mktemp("experiments") / "gitlab.sqlite", token=TOKEN) as box:
        yield box


@pytest.fixture
def service(sandbox: GitLabSandbox) -> Iterator[Service]:
    """The service with runs that settle at once; faults and overrides are cleared after each test."""
    client = Service(sandbox)
    assert client.configure(run_seconds=0).status_code == 200
    yield client
    sandbox.clear_faults()
    client.configure(run_seconds=0)


def test_register_state_results_cycle(service: Service) -> None:
    """A registered run completes, and its results pair candidate and baseline on every example of the dataset."""
    request_id = service.run(BODY)
    state = service.state(request_id).json()
    assert state["state"] == "complete" and state["reason"] is None
    assert state["candidate"] == {"model": "sim-pass", "prompt_version": "1.1.0-dev"}
    assert state["baseline"] == BODY["baseline"] and state["example_count"] == len(datasets.load(DATASET))
    assert state["results_url"].endswith(f"/api/evaluation/v1/experiments/results?request_id={request_id}")

    results = service.results(request_id)
    assert results.status_code == 200
    payload = results.json()
    assert payload["digest"] == state["digest"]
    assert [e["example_id"] for e in payload["examples"]] == [example.id for example in datasets.load(DATASET)]
    first = payload["examples"][0]
    assert set(first["candidate"]) == set(first["baseline"]) == {*EVALUATORS, "latency_ms", "tokens", "error"}


def test_results_are_the_simulators_scores(service: Service) -> None:
    """The service reports exactly what the simulator draws for each side, so every harness sees the same model."""
    payload = service.results(service.run(BODY)).json()
    sim = ModelSimulator()
    for example in payload["examples"][:25]:
        candidate = sim.score(DATASET, example["example_id"], "sim-pass", "1.1.0-dev").to_json()
        baseline = sim.score(DATASET, example["example_id"], "claude_3_7_sonnet_20250219", "1.0.0").to_json()
        assert example["candidate"] == {k: candidate[k] for k in example["candidate"]}
        assert example["baseline"] == {k: baseline[k] for k in example["baseline"]}


def test_only_requested_evaluators_are_reported(service: Service) -> None:
    """A run asked for two evaluators reports those two metrics plus latency, tokens and the error flag; no baseline is null."""
    body = {k: v for k, v in BODY.items() if k != "baseline"} | {"evaluators": ["correctness", "similarity"]}
    example = service.results(service.run(body)).json()["examples"][0]
    assert set(example["candidate"]) == {"correctness", "similarity", "latency_ms", "tokens", "error"}
    assert example["baseline"] is None


def test_same_body_registers_a_new_run_with_the_same_results(service: Service) -> None:
    """Registering the same body twice gives two request ids; being reproducible, their results are the same."""
    first, second = service.run(BODY), service.run(BODY)
    assert first != second
    assert service.results(first).json()["digest"] == service.results(second).json()["digest"]


def test_state_is_idempotent(service: Service) -> None:
    """Polling a finished run again answers the same state, digest and finish time."""
    request_id = service.run(BODY)
    answers = [service.state(request_id).json() for _ in range(3)]
    assert answers[0]["state"] == "complete"
    assert answers[0] == answers[1] == answers[2]


def test_a_run_takes_its_configured_time(service: Service) -> None:
    """With run_seconds set, a run is running (results 409) until its time is up, then complete."""
    assert service.configure(run_seconds=1.0).status_code == 200
    request_id = service.run(BODY)
    assert service.state(request_id).json()["state"] == "running"
    conflict = service.results(request_id)
    assert conflict.status_code == 409 and conflict.json()["state"] == "running"
    deadline = time.monotonic() + 15
    while service.state(request_id).json()["state"] == "running":
        assert time.monotonic() < deadline, "the run never settled"
        time.sleep(0.1)
    assert service.state(request_id).json()["state"] == "complete"
    assert service.results(request_id).status_code == 200


def test_configuration_is_taken_at_registration(service: Service) -> None:
    """A run keeps the profiles it was registered with: changing the configuration later does not change its results."""
    before = service.run(BODY)
    assert service.configure(run_seconds=0, profiles={"sim-pass": "fail"}).status_code == 200
    after = service.run(BODY)
    assert service.results(before).json()["digest"] != service.results(after).json()["digest"]
    assert service.configure(run_seconds=0).status_code == 200
    assert service.results(service.run(BODY)).json()["digest"] == service.results(before).json()["digest"]


def test_erroring_profile_fails_the_run(service: Service) -> None:
    """A candidate whose error rate is above the service's tolerance fails the run with a reason; results answer 409."""
    request_id = service.run(BODY | {"model": "sim-erroring"})
    state = service.state(request_id).json()
    assert state["state"] == "fail"
    assert "sim-erroring errored on" in state["reason"] and "above the 10%" in state["reason"]
    conflict = service.results(request_id)
    assert conflict.status_code == 409 and state["reason"] in conflict.json()["detail"]


def test_an_error_rate_under_the_tolerance_completes_with_flags(service: Service) -> None:
    """Below max_error_rate the run completes, and errored examples come flagged with no metrics."""
    assert service.configure(run_seconds=0, max_error_rate=0.5).status_code == 200
    examples = service.results(service.run(BODY | {"model": "sim-erroring"})).json()["examples"]
    errored = [e["candidate"] for e in examples if e["candidate"]["error"]]
    assert 0.2 < len(errored) / len(examples) < 0.4
    assert all(e["correctness"] is None and e["similarity"] is None for e in errored)


def test_injected_fault_fails_the_run(service: Service) -> None:
    """A configured fault that matches the run fails it with the fault's reason; other runs are untouched."""
    fault = {"model": "sim-pass", "prompt_version": "1.1.0-dev", "reason": "provider quota exhausted"}
    assert service.configure(run_seconds=0, faults=[fault]).status_code == 200
    state = service.state(service.run(BODY)).json()
    assert (state["state"], state["reason"]) == ("fail", "provider quota exhausted")
    assert service.state(service.run(BODY | {"prompt_version": "1.2.0"})).json()["state"] == "complete"


def test_http_faults_reach_the_service(service: Service) -> None:
    """The sandbox's fault injector applies to the service: one injected 502 on state, then the answer is normal."""
    request_id = service.run(BODY)
    service.sandbox.inject_fault(r"/experiments/state$", "502", count=1)
    assert service.state(request_id).status_code == 502
    assert service.state(request_id).json()["state"] == "complete"


def test_bad_token_is_401(sandbox: GitLabSandbox, service: Service) -> None:
    """Every endpoint refuses a wrong token with 401, and the refused register creates nothing."""
    intruder = Service(sandbox, token="wrong")
    request_id = service.run(BODY)
    assert intruder.register(BODY).status_code == 401
    assert intruder.state(request_id).status_code == 401
    assert intruder.results(request_id).status_code == 401
    assert intruder.configure(run_seconds=5).status_code == 401
    assert Service(sandbox, token="").state(request_id).status_code == 401


def test_unknown_dataset_or_request_is_404(service: Service) -> None:
    """An unknown dataset on register, or an unknown request id on state and results, answers 404 with a JSON detail."""
    missing = service.register(BODY | {"dataset": "duo_chat.questions.v99"})
    assert missing.status_code == 404 and "duo_chat.questions.v99" in missing.json()["detail"]
    for answer in (service.state("0" * 32), service.results("0" * 32)):
        assert answer.status_code == 404 and "not found" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({k: v for k, v in BODY.items() if k != "model"}, ["body", "model"]),
        ({k: v for k, v in BODY.items() if k != "evaluators"}, ["body", "evaluators"]),
        (BODY | {"prompt_version": ""}, ["body", "prompt_version"]),
        (BODY | {"evaluators": []}, ["body", "evaluators"]),
        (BODY | {"evaluators": ["correctness", "vibes"]}, ["body", "evaluators", 1]),
        (BODY | {"baseline": {"model": "m"}}, ["body", "baseline", "prompt_version"]),
        (BODY | {"baseline": "claude"}, ["body", "baseline"]),
    ],
)
def test_malformed_register_is_422(service: Service, body: dict[str, Any], loc: list[Any]) -> None:
    """A missing or malformed field answers 422 naming the field, before the dataset is even looked up."""
    answer = service.register(body | {"dataset": "not.a.dataset"})  # unknown too: the 422 must come first
    assert answer.status_code == 422
    assert loc in [error["loc"] for error in answer.json()["detail"]]


def test_state_without_request_id_is_422(service: Service) -> None:
    """Polling without a request id answers 422 naming the query parameter."""
    answer = service.http.get(f"{service.base}/v1/experiments/state", timeout=10)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", "request_id"]


def test_bad_configuration_is_422_and_not_kept(service: Service) -> None:
    """A configuration naming an unknown preset is refused with 422, and the previous one stays in force."""
    refused = service.configure(run_seconds=0, profiles={"sim-pass": "no-such-preset"})
    assert refused.status_code == 422 and "no-such-preset" in refused.json()["detail"]
    assert service.http.get(f"{service.base}/-/config", timeout=10).json()["profiles"]["sim-pass"] == "pass"


def test_runs_survive_a_sandbox_restart(tmp_path: Path) -> None:
    """A run's state and results live in the sandbox's SQLite file: a restarted sandbox answers the same."""
    box = GitLabSandbox(tmp_path / "gitlab.sqlite", token=TOKEN)
    with box:
        service = Service(box)
        service.configure(run_seconds=0)
        request_id = service.run(BODY)
        digest = service.results(request_id).json()["digest"]
    with box:
        assert service.state(request_id).json()["state"] == "complete"
        assert service.results(request_id).json()["digest"] == digest
