"""The harness activity: one registration per run, resumed from its heartbeat, results stored by digest."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.evaluation import EvaluationActivities
from activities.payloads import RunExperimentInput
from model_migration.clients.experiments import ExperimentRequest, ExperimentServiceClient
from model_migration.clients.harness import HarnessKind
from model_migration.clients.results_store import LocalResultsStore
from model_migration.domain.errors import ErrorType


class Counting(ExperimentServiceClient):
    """The real client, counting registrations."""

    registrations = 0

    def register(self, request: ExperimentRequest) -> str:
        Counting.registrations += 1
        return super().register(request)


@pytest.fixture
def service(gitlab_sandbox) -> Iterator[str]:  # type: ignore[no-untyped-def]
    base = f"{gitlab_sandbox.url}/api/evaluation"
    headers = {"PRIVATE-TOKEN": gitlab_sandbox.token}
    assert requests.put(f"{base}/-/config", json={"run_seconds": 0.3}, headers=headers, timeout=10).ok
    Counting.registrations = 0
    yield base
    requests.put(f"{base}/-/config", json={}, headers=headers, timeout=10)


def activities(base: str, token: str, tmp_path: Path) -> EvaluationActivities:
    harnesses = {HarnessKind.EXPERIMENT_SERVICE: lambda: Counting(base, token)}
    return EvaluationActivities(harnesses, LocalResultsStore(tmp_path / "results"))


def run_input(model: str = "sim-pass", dataset: str = "duo_chat.questions.v3") -> RunExperimentInput:
    return RunExperimentInput(
        dataset=dataset, prompt_id="chat/react", prompt_version="1.0.0-dev", model=model,
        baseline_model="sim-baseline", baseline_prompt_version="1.0.0", poll_seconds=0.1,
    )


def test_a_run_registers_once_polls_and_stores_its_results(service: str, gitlab_sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A fresh attempt registers, heartbeats the request id while it polls, and returns only the digest."""
    env, beats = ActivityEnvironment(), []
    env.on_heartbeat = lambda *details: beats.append(details)
    acts = activities(service, gitlab_sandbox.token, tmp_path)
    run = env.run(acts.run_experiment, run_input())
    assert Counting.registrations == 1
    assert beats and all(details == (run.request_id,) for details in beats)
    assert run.examples >= 200 and len(LocalResultsStore(tmp_path / "results").get(run.digest)) == run.examples


def test_a_retry_resumes_the_heartbeated_run_without_registering(service: str, gitlab_sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """After a worker died mid-poll, the retry reads the request id back and registers nothing."""
    acts = activities(service, gitlab_sandbox.token, tmp_path)
    first = ActivityEnvironment().run(acts.run_experiment, run_input())
    Counting.registrations = 0
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2, heartbeat_details=[first.request_id])
    again = retry.run(acts.run_experiment, run_input())
    assert Counting.registrations == 0
    assert (again.request_id, again.digest) == (first.request_id, first.digest)


def test_a_failed_run_is_retried_and_a_refusal_is_not(service: str, gitlab_sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Too many harness errors is a retryable HarnessErrors; an unknown dataset is refused for good."""
    acts = activities(service, gitlab_sandbox.token, tmp_path)
    with pytest.raises(ApplicationError) as failed:
        ActivityEnvironment().run(acts.run_experiment, run_input(model="sim-erroring"))
    assert failed.value.type == ErrorType.HARNESS_ERRORS and not failed.value.non_retryable
    assert "\n" not in failed.value.message
    with pytest.raises(ApplicationError) as refused:
        ActivityEnvironment().run(acts.run_experiment, run_input(dataset="duo_chat.nothing.v1"))
    assert refused.value.type == ErrorType.HARNESS_REFUSED and refused.value.non_retryable
