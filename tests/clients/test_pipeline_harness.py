"""The CI-pipeline harness over real HTTP: pipelines of the sandbox's evaluation project, into the gate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gitlab
import pytest
import requests

from gitlab_sandbox.evaluation_job import EVALUATION_PROJECT
from gitlab_sandbox.gitlab import GitLabSandbox
from model_migration.clients.experiments import ExperimentRequest, ExperimentState, HarnessError
from model_migration.clients.gitlab import GitLabClient
from model_migration.clients.pipeline_harness import PipelineHarness
from model_migration.domain.commands import Verdict
from model_migration.domain.errors import ErrorType
from model_migration.domain.evaluation import EvaluationSpec
from model_migration.domain.gate import evaluate_gate
from model_migration.settings import Settings
from tests.conftest import SandboxInfo

DATASET = "duo_chat.questions.v3"


def request(model: str = "sim-pass", dataset: str = DATASET) -> ExperimentRequest:
    return ExperimentRequest(
        dataset=dataset, prompt_id="chat/react", prompt_version="1.1.0-dev", model=model,
        baseline_model="sim-baseline", baseline_prompt_version="1.0.0",
    )  # fmt: skip


def on(sandbox: SandboxInfo, project: str = EVALUATION_PROJECT, token: str | None = None) -> PipelineHarness:
    return PipelineHarness(GitLabClient(sandbox.url, token or sandbox.token, project, sandbox.group_path))


def pipeline(sandbox: SandboxInfo, run_id: str) -> Any:
    """The run's pipeline, as python-gitlab sees it."""
    return gitlab.Gitlab(sandbox.url, private_token=sandbox.token).projects.get(EVALUATION_PROJECT).pipelines.get(int(run_id))


@pytest.fixture
def harness(gitlab_sandbox: SandboxInfo) -> Iterator[PipelineHarness]:
    with on(gitlab_sandbox) as found:
        yield found


def settled(harness: PipelineHarness, run_id: str) -> tuple[list[str], ExperimentState]:
    """Poll as the activity does; the states seen while running, and the final one."""
    seen, deadline = [], time.monotonic() + 30
    while (state := harness.state(run_id)).state == "running":
        assert time.monotonic() < deadline, f"pipeline {run_id} never finished"
        seen.append(state.state)
        time.sleep(0.1)
    return seen, state


def test_the_products_default_evaluation_project_is_the_one_the_sandbox_seeds() -> None:
    """Settings.evaluation_project and the sandbox's own constant name the same project."""
    assert Settings.model_fields["evaluation_project"].default == EVALUATION_PROJECT


@pytest.mark.parametrize(("model", "verdict"), [("sim-pass", Verdict.PASS), ("sim-fail", Verdict.FAIL)])
def test_pipeline_results_go_through_the_gate(harness: PipelineHarness, gitlab_sandbox: SandboxInfo, model: str, verdict: Verdict) -> None:
    """register → running → complete (linking the pipeline) → results → the gate's verdict for the candidate."""
    run_id = harness.register(request(model))
    assert run_id.isdigit()
    _, state = settled(harness, run_id)
    started = pipeline(gitlab_sandbox, run_id)
    assert (state.state, state.results_url) == ("complete", started.web_url)
    assert {v.key: v.value for v in started.variables.list(get_all=True)}["MODEL"] == model
    examples = harness.results(run_id)
    assert len(examples) >= 200 and len({e.example_id for e in examples}) == len(examples)
    result = evaluate_gate(examples, EvaluationSpec().gate_config(), dataset=DATASET, baseline="sim-baseline", candidate=model)
    assert result.verdict == verdict, result.reason
    assert harness.results(run_id) == examples  # read again, the same results


def test_an_erroring_model_fails_the_run_with_the_jobs_reason(harness: PipelineHarness) -> None:
    """Too many errored examples fail the pipeline: state fail, naming the job, its failure reason and its own last word."""
    _, state = settled(harness, harness.register(request("sim-erroring")))
    assert state.state == "fail" and "\n" not in state.reason
    assert "job evaluate failed (script_failure)" in state.reason and "candidate sim-erroring errored on" in state.reason
    with pytest.raises(HarnessError) as no_results:
        harness.results(state.request_id)
    assert no_results.value.type == ErrorType.HARNESS_REFUSED and "is failed" in no_results.value.message


@pytest.fixture
def slow_runs(gitlab_sandbox: SandboxInfo) -> Iterator[None]:
    """Runs that take 30 s (the shared sandbox's configuration, restored afterwards)."""
    url, headers = f"{gitlab_sandbox.url}/api/evaluation/-/config", {"PRIVATE-TOKEN": gitlab_sandbox.token}
    assert requests.put(url, json={"run_seconds": 30}, headers=headers, timeout=10).ok
    yield
    assert requests.put(url, json={}, headers=headers, timeout=10).ok


def test_a_run_is_running_until_someone_cancels_it(harness: PipelineHarness, gitlab_sandbox: SandboxInfo, slow_runs: None) -> None:
    """While its job runs the run is running, with the pipeline's link; cancelled, it ends as fail, saying so."""
    run_id = harness.register(request())
    started = pipeline(gitlab_sandbox, run_id)
    deadline = time.monotonic() + 10
    while started.jobs.list(get_all=True)[0].status != "running":
        assert time.monotonic() < deadline, "the evaluate job never started"
        time.sleep(0.05)
    assert harness.state(run_id) == ExperimentState(request_id=run_id, state="running", results_url=started.web_url)
    with pytest.raises(HarnessError) as early:
        harness.results(run_id)
    assert early.value.type == ErrorType.HARNESS_UNAVAILABLE  # not finished: worth asking again
    started.cancel()
    state = harness.state(run_id)
    assert state.state == "fail" and state.reason == f"pipeline {run_id} canceled: job evaluate canceled"


def test_an_unknown_dataset_is_refused_not_retried(harness: PipelineHarness) -> None:
    """The job says the request is wrong: a refusal, never retried, naming the dataset."""
    run_id = harness.register(request(dataset="duo_chat.nothing.v1"))
    with pytest.raises(HarnessError) as refused:
        settled(harness, run_id)
    assert refused.value.type == ErrorType.HARNESS_REFUSED
    assert "dataset 'duo_chat.nothing.v1' not found" in refused.value.message and "\n" not in refused.value.message


def test_a_bad_token_is_refused_and_never_shown(gitlab_sandbox: SandboxInfo) -> None:
    """GitLab's 401 is a refusal, and the message does not carry the token."""
    with on(gitlab_sandbox, token="glpat-not-the-token-at-all") as intruder:
        with pytest.raises(HarnessError) as refused:
            intruder.register(request())
    assert refused.value.type == ErrorType.HARNESS_REFUSED and "401" in refused.value.message
    assert "not-the-token" not in refused.value.message


def test_run_ids_that_are_no_pipeline_are_refused(harness: PipelineHarness) -> None:
    """A non-numeric run id is refused before any request; an unknown pipeline is GitLab's 404, refused too."""
    for run_id in ("abc", "", "12a", "-3", "0"):
        with pytest.raises(HarnessError) as bad:
            harness.state(run_id)
        assert bad.value.type == ErrorType.HARNESS_REFUSED and "is not a pipeline id" in bad.value.message
    with pytest.raises(HarnessError) as missing:
        harness.state("999")
    assert missing.value.type == ErrorType.HARNESS_REFUSED and "404" in missing.value.message


def test_an_outage_is_retryable(harness: PipelineHarness, gitlab_sandbox: SandboxInfo) -> None:
    """A 502 from GitLab while polling is HARNESS_UNAVAILABLE; the next poll goes on."""
    run_id = harness.register(request())
    gitlab_sandbox.server.inject_fault(rf"/pipelines/{run_id}$", "502", count=1)
    with pytest.raises(HarnessError) as outage:
        harness.state(run_id)
    assert outage.value.type == ErrorType.HARNESS_UNAVAILABLE
    assert settled(harness, run_id)[1].state == "complete"


def test_a_project_without_the_evaluation_job_has_no_results(gitlab_sandbox: SandboxInfo) -> None:
    """Pointed at a project whose pipeline has no evaluate job, results are refused, naming what ran."""
    with on(gitlab_sandbox, project=gitlab_sandbox.project_path) as wrong:
        run_id = wrong.register(request())
        assert settled(wrong, run_id)[1].state == "complete"
        with pytest.raises(HarnessError) as refused:
            wrong.results(run_id)
    assert refused.value.type == ErrorType.HARNESS_REFUSED
    assert "has no 'evaluate' job (it ran: echo_variables)" in refused.value.message


def test_a_project_refusing_pipeline_variables_is_a_refusal(tmp_path: Path) -> None:
    """An evaluation project left at no_one_allowed refuses the run with GitLab's words and the setting to change."""
    token = "a-token-of-its-own"
    with GitLabSandbox(tmp_path / "gitlab.sqlite", token=token) as box:
        gitlab.Gitlab(box.url, private_token=token).projects.update(
            EVALUATION_PROJECT, {"ci_pipeline_variables_minimum_override_role": "no_one_allowed"}
        )
        with PipelineHarness(GitLabClient(box.url, token, EVALUATION_PROJECT)) as harness:
            with pytest.raises(HarnessError) as refused:
                harness.register(request())
    assert refused.value.type == ErrorType.HARNESS_REFUSED
    assert "Insufficient permissions to set pipeline variables" in refused.value.message
    assert "ci_pipeline_variables_minimum_override_role" in refused.value.message
