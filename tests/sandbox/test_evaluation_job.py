"""The evaluation project's CI job, through python-gitlab: the results artifact, its failures, and
GitLab's rule on who may pass pipeline variables."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gitlab
import pytest
import requests

from gitlab_sandbox import datasets
from gitlab_sandbox.evaluation_job import EVALUATION_PROJECT, RESULTS_PATH
from gitlab_sandbox.experiments import EVALUATORS
from gitlab_sandbox.gitlab import GitLabSandbox
from gitlab_sandbox.modules import full_schema
from gitlab_sandbox.pipelines import JobSpec
from gitlab_sandbox.store import Store

TOKEN = "evaluation-job-token"
DATASET = "duo_chat.questions.v3"
VARIABLES = {
    "DATASET": DATASET, "PROMPT_ID": "chat/react", "PROMPT_VERSION": "1.1.0-dev", "MODEL": "sim-pass",
    "EVALUATORS": ",".join(EVALUATORS), "BASELINE_MODEL": "sim-baseline", "BASELINE_PROMPT_VERSION": "1.0.0",
}  # fmt: skip
#: The same request, as the experiment service takes it.
BODY = {
    "dataset": DATASET, "prompt_id": "chat/react", "prompt_version": "1.1.0-dev", "model": "sim-pass",
    "evaluators": list(EVALUATORS), "baseline": {"model": "sim-baseline", "prompt_version": "1.0.0"},
}  # fmt: skip
REFUSED = {"base": ["Insufficient permissions to set pipeline variables"]}


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitLabSandbox]:
    """A sandbox of its own: its configuration and project settings change nobody else's tests."""
    with GitLabSandbox(tmp_path_factory.mktemp("evaluation-job") / "gitlab.sqlite", token=TOKEN) as sandbox:
        yield sandbox


@pytest.fixture
def config(box: GitLabSandbox) -> Iterator[Any]:
    """``PUT /api/evaluation/-/config`` with runs that take no time; the defaults again afterwards."""

    def put(**overrides: Any) -> None:
        answer = requests.put(f"{box.url}/api/evaluation/-/config", json={"run_seconds": 0, **overrides},
                              headers={"PRIVATE-TOKEN": TOKEN}, timeout=10)  # fmt: skip
        assert answer.status_code == 200, answer.text

    put()
    yield put
    put()


@pytest.fixture(scope="module")
def gl(box: GitLabSandbox) -> gitlab.Gitlab:
    return gitlab.Gitlab(box.url, private_token=TOKEN, retry_transient_errors=False)


@pytest.fixture(scope="module")
def project(gl: gitlab.Gitlab) -> Any:
    return gl.projects.get(EVALUATION_PROJECT)


def finished(project: Any, variables: dict[str, str]) -> Any:
    """A pipeline with ``variables`` on main, once it has finished (at most 30 s)."""
    pipeline = project.pipelines.create({"ref": "main", "variables": [{"key": k, "value": v} for k, v in variables.items()]})
    deadline = time.monotonic() + 30
    while pipeline.status not in ("success", "failed", "canceled", "skipped"):
        assert time.monotonic() < deadline, f"pipeline {pipeline.id} is still {pipeline.status}"
        time.sleep(0.05)
        pipeline.refresh()
    return pipeline


def results(project: Any, pipeline: Any) -> dict[str, Any]:
    [job] = pipeline.jobs.list(get_all=True)
    return dict(json.loads(project.jobs.get(job.id).artifact(RESULTS_PATH)))


def service_results(box: GitLabSandbox, body: dict[str, Any]) -> dict[str, Any]:
    """The experiment service's answer for ``body``: its state if it failed, else its results."""
    http = requests.Session()
    http.headers["PRIVATE-TOKEN"] = TOKEN
    base = f"{box.url}/api/evaluation/v1/experiments"
    request_id = http.post(f"{base}/register", json=body, timeout=10).json()["request_id"]
    state = http.get(f"{base}/state", params={"request_id": request_id}, timeout=10).json()
    if state["state"] != "complete":
        return dict(state)
    answer = http.get(f"{base}/results", params={"request_id": request_id}, timeout=10).json()
    return {k: v for k, v in answer.items() if k != "request_id"}


def last_line(project: Any, pipeline: Any) -> str:
    [job] = pipeline.jobs.list(get_all=True)
    assert (job.name, job.status, job.failure_reason) == ("evaluate", "failed", "script_failure")
    lines = [line for line in project.jobs.get(job.id).trace().decode().splitlines() if line.strip()]
    with pytest.raises(gitlab.GitlabGetError) as missing:
        project.jobs.get(job.id).artifact(RESULTS_PATH)
    assert missing.value.response_code == 404  # a failed evaluation leaves no results behind
    return lines[-1]


# -- the seeded project ------------------------------------------------------------------------


def test_the_evaluation_project_is_seeded_with_its_pipeline(box: GitLabSandbox, project: Any) -> None:
    """Every sandbox has the evaluation project under its group, its main branch documenting the evaluate job."""
    assert project.namespace["full_path"] == "gitlab-org/modelops/ai-evaluation" and project.default_branch == "main"
    ci = project.files.raw(".gitlab-ci.yml", ref="main").decode()
    assert "\nevaluate:\n" in ci and RESULTS_PATH in ci and "evaluation refused: <reason>" in ci
    assert all(f"  {name}:\n" in ci for name in VARIABLES)


def test_a_restart_seeds_nothing_twice(tmp_path: Path) -> None:
    """A sandbox started again on the same file keeps one evaluation project with one CI commit."""
    box = GitLabSandbox(tmp_path / "gitlab.sqlite", token=TOKEN)
    for _ in range(2):
        with box:
            gl = gitlab.Gitlab(box.url, private_token=TOKEN)
            commits = gl.projects.get(EVALUATION_PROJECT).commits.list(ref_name="main", get_all=True)
            assert [c.title for c in commits] == ["Add the evaluation pipeline", "Initial commit"]
            assert [p.path_with_namespace for p in gl.projects.list(get_all=True)].count(EVALUATION_PROJECT) == 1


# -- results -----------------------------------------------------------------------------------


def test_the_artifact_is_the_experiment_services_results(box: GitLabSandbox, project: Any, config: Any) -> None:
    """The job's evaluation/results.json is what the experiment service answers for the same request, bar its request id."""
    pipeline = finished(project, VARIABLES)
    assert pipeline.status == "success"
    [job] = pipeline.jobs.list(get_all=True)
    assert (job.name, job.stage, job.status) == ("evaluate", "evaluate", "success")
    document = results(project, pipeline)
    assert set(document) == {"state", "dataset", "prompt_id", "evaluators", "candidate", "baseline", "digest", "examples"}
    assert [e["example_id"] for e in document["examples"]] == [e.id for e in datasets.load(DATASET)]
    first = document["examples"][0]
    assert set(first["candidate"]) == set(first["baseline"]) == {*EVALUATORS, "latency_ms", "tokens", "error"}
    assert document["baseline"] == {"model": "sim-baseline", "prompt_version": "1.0.0"}
    assert document == service_results(box, BODY)


def test_two_pipelines_give_the_same_results(project: Any, config: Any) -> None:
    """Run twice, the same variables give the same artifact, byte for byte; another model does not."""
    first, second = (finished(project, VARIABLES) for _ in range(2))
    assert results(project, first) == results(project, second)
    other = finished(project, VARIABLES | {"MODEL": "sim-fail"})
    assert results(project, other)["digest"] != results(project, first)["digest"]


def test_one_configuration_serves_both_harnesses(box: GitLabSandbox, project: Any, config: Any) -> None:
    """A profile or a fault set once through PUT /api/evaluation/-/config reaches the job as it reaches the service."""
    default = results(project, finished(project, VARIABLES))["digest"]
    config(profiles={"sim-pass": "fail"})
    overridden = results(project, finished(project, VARIABLES))
    assert overridden["digest"] != default and overridden == service_results(box, BODY)
    config(faults=[{"model": "sim-pass", "reason": "provider quota exhausted"}])
    failed = finished(project, VARIABLES)
    assert failed.status == "failed"
    assert last_line(project, failed).endswith("evaluation failed: provider quota exhausted")
    assert service_results(box, BODY)["reason"] == "provider quota exhausted"


def test_too_many_errored_examples_fail_the_job(project: Any, config: Any) -> None:
    """A candidate erroring above max_error_rate fails the job with the error rate in its last log line."""
    pipeline = finished(project, VARIABLES | {"MODEL": "sim-erroring"})
    assert pipeline.status == "failed"
    line = last_line(project, pipeline)
    assert "evaluation failed: candidate sim-erroring errored on" in line and "above the 10% tolerated" in line


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"DATASET": None}, "evaluation refused: invalid pipeline variables: DATASET: Field required"),
        ({"EVALUATORS": "correctness,vibes"}, "EVALUATORS item 'vibes': Input should be one of correctness"),
        ({"BASELINE_PROMPT_VERSION": ""}, "BASELINE_PROMPT_VERSION: Input should be a string"),
        ({"EVALUATORS": " , "}, "EVALUATORS: Input should be a non-empty list"),
        ({"DATASET": "duo_chat.nothing.v1"}, "evaluation refused: dataset 'duo_chat.nothing.v1' not found"),
    ],
)
def test_a_wrong_request_fails_the_job_with_one_clear_line(project: Any, config: Any, changes: dict[str, str | None], said: str) -> None:
    """A missing or invalid variable, or an unknown dataset, fails the job; its log ends with one line naming the problem."""
    variables = {k: v for k, v in (VARIABLES | changes).items() if v is not None}
    pipeline = finished(project, variables)
    assert pipeline.status == "failed"
    line = last_line(project, pipeline)
    assert said in line and line.count("evaluation refused:") == 1


def test_a_project_without_the_evaluation_job_gives_no_results(box: GitLabSandbox, gl: gitlab.Gitlab, config: Any) -> None:
    """The sandbox's other project runs its own job on the same variables: no evaluate job, no results artifact."""
    other = gl.projects.get(box.project_path)
    pipeline = finished(other, VARIABLES)
    [job] = pipeline.jobs.list(get_all=True)
    assert (pipeline.status, job.name) == ("success", "echo_variables")
    with pytest.raises(gitlab.GitlabGetError) as missing:
        other.jobs.get(job.id).artifact(RESULTS_PATH)
    assert missing.value.response_code == 404


def test_jobs_given_for_the_evaluation_project_win(tmp_path: Path) -> None:
    """A caller's jobs for the evaluation project replace the evaluation job; no evaluation project when asked for none."""
    custom = {EVALUATION_PROJECT: [JobSpec("custom", handler=lambda variables: {"out.txt": b"mine"})]}
    with GitLabSandbox(tmp_path / "custom.sqlite", token=TOKEN, jobs=custom) as box:
        gl = gitlab.Gitlab(box.url, private_token=TOKEN)
        pipeline = finished(gl.projects.get(EVALUATION_PROJECT), VARIABLES)
        assert [job.name for job in pipeline.jobs.list(get_all=True)] == ["custom"]
    with GitLabSandbox(tmp_path / "none.sqlite", token=TOKEN, evaluation_project=None) as box:
        with pytest.raises(gitlab.GitlabGetError) as missing:
            gitlab.Gitlab(box.url, private_token=TOKEN).projects.get(EVALUATION_PROJECT)
        assert missing.value.response_code == 404


# -- who may pass pipeline variables -----------------------------------------------------------


def test_no_one_allowed_refuses_variables_as_gitlab_does(box: GitLabSandbox, gl: gitlab.Gitlab) -> None:
    """At no_one_allowed a pipeline or trigger with variables is GitLab's 400; without variables it runs; developer allows them again."""
    project = gl.projects.get(box.project_path)
    project.ci_pipeline_variables_minimum_override_role = "no_one_allowed"
    project.save()
    try:
        assert project.ci_pipeline_variables_minimum_override_role == "no_one_allowed" and project.restrict_user_defined_variables
        with pytest.raises(gitlab.GitlabCreateError) as refused:
            project.pipelines.create({"ref": "main", "variables": [{"key": "X", "value": "1"}]})
        assert (refused.value.response_code, refused.value.error_message) == (400, REFUSED)
        with pytest.raises(gitlab.GitlabCreateError) as triggered:
            project.trigger_pipeline("main", token="any", variables={"X": "1"})
        assert (triggered.value.response_code, triggered.value.error_message) == (400, REFUSED)
        assert project.pipelines.create({"ref": "main"}).status == "created"
    finally:
        project.ci_pipeline_variables_minimum_override_role = "developer"
        project.save()
    assert project.pipelines.create({"ref": "main", "variables": [{"key": "X", "value": "1"}]}).status == "created"


def test_a_project_stored_without_the_setting_refuses_variables(box: GitLabSandbox, gl: gitlab.Gitlab) -> None:
    """A project the sandbox did not seed has GitLab.com's default for new projects, no_one_allowed."""
    store = Store(Path(box.state_file), schema=full_schema())
    try:
        group = store.find("groups", full_path="gitlab-org")
        assert group is not None
        data = {"name": "unseeded", "path": "unseeded", "path_with_namespace": "gitlab-org/unseeded",
                "name_with_namespace": "gitlab-org / unseeded", "namespace_id": group["id"],
                "created_at": "2025-01-21T09:30:00.000Z"}  # fmt: skip
        store.insert_if_absent("projects", data, path_with_namespace="gitlab-org/unseeded")
    finally:
        store.close()
    unseeded = gl.projects.get("gitlab-org/unseeded")
    with pytest.raises(gitlab.GitlabCreateError) as refused:
        unseeded.pipelines.create({"ref": "main", "variables": [{"key": "X", "value": "1"}]})
    assert (refused.value.response_code, refused.value.error_message) == (400, REFUSED)


def test_the_setting_takes_only_gitlabs_values(box: GitLabSandbox, gl: gitlab.Gitlab) -> None:
    """An unknown role is Grape's 400, and an attribute the sandbox does not keep is refused by name, not dropped."""
    project = gl.projects.get(box.project_path)
    with pytest.raises(gitlab.GitlabUpdateError) as bad:
        gl.projects.update(project.id, {"ci_pipeline_variables_minimum_override_role": "guest"})
    assert bad.value.response_code == 400 and "does not have a valid value" in str(bad.value.error_message)
    with pytest.raises(gitlab.GitlabUpdateError) as other:
        gl.projects.update(project.id, {"description": "kept?"})
    assert other.value.response_code == 400 and "description" in str(other.value.error_message)
