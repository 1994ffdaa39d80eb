"""The harness activity on the CI-pipeline harness: one pipeline per run, resumed from its heartbeat."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gitlab
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from activities.evaluation import EvaluationActivities
from activities.payloads import RunExperimentInput
from gitlab_sandbox.evaluation_job import EVALUATION_PROJECT
from model_migration.clients.harness import HarnessKind
from model_migration.clients.pipeline_harness import pipeline_harness_factory
from model_migration.clients.results_store import LocalResultsStore
from model_migration.settings import Settings
from tests.conftest import SandboxInfo


def test_a_pipeline_run_is_stored_and_a_retry_starts_no_second_pipeline(gitlab_sandbox: SandboxInfo, tmp_path: Path) -> None:
    """The activity runs a pipeline to its digest and stores its examples; a retry with the heartbeated id creates no pipeline."""
    settings = Settings(
        gitlab_url=gitlab_sandbox.url, gitlab_token=SecretStr(gitlab_sandbox.token), gitlab_group=gitlab_sandbox.group_path,
        evaluation_project=EVALUATION_PROJECT, evaluation_ref="main", state_dir=tmp_path,
    )  # fmt: skip
    store = LocalResultsStore(tmp_path / "results")
    acts = EvaluationActivities({HarnessKind.CI_PIPELINE: pipeline_harness_factory(settings)}, store)
    run_input = RunExperimentInput(
        dataset="code_generation.python_tasks.v2", prompt_id="code_generation/base", prompt_version="2.0.0-dev",
        model="sim-pass", baseline_model="sim-baseline", baseline_prompt_version="1.0.0", poll_seconds=0.1,
        harness=HarnessKind.CI_PIPELINE,
    )  # fmt: skip
    pipelines = gitlab.Gitlab(gitlab_sandbox.url, private_token=gitlab_sandbox.token).projects.get(EVALUATION_PROJECT).pipelines

    def count() -> int:
        return len(pipelines.list(get_all=True))

    before = count()
    env, beats = ActivityEnvironment(), []
    env.on_heartbeat = lambda *details: beats.append(details)
    run = env.run(acts.run_experiment, run_input)
    assert count() == before + 1 and pipelines.get(int(run.request_id)).status == "success"
    assert beats and all(details == (run.request_id,) for details in beats)
    assert run.digest and run.results_url.endswith(f"/-/pipelines/{run.request_id}")
    stored = store.get(run.digest)
    assert len(stored) == run.examples >= 200

    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2, heartbeat_details=[run.request_id])
    again = retry.run(acts.run_experiment, run_input)
    assert count() == before + 1
    assert (again.request_id, again.digest, again.examples) == (run.request_id, run.digest, run.examples)
