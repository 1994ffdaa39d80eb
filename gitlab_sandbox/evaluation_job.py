"""The evaluation project's CI job: one experiment, candidate against baseline, run by a pipeline.

The prompt library evaluates a prompt version in CI: a pipeline started through the API with the
request in its variables, whose ``evaluate`` job leaves the per-example results as an artifact.
The sandbox seeds that project (``EVALUATION_PROJECT``, its ``.gitlab-ci.yml`` describing the
job) and plays the job with ``EvaluationJob``: the experiment service's own run
(``experiments.plan_run`` and ``settle``) on the simulator as ``PUT /api/evaluation/-/config``
configures it, so both harnesses report the same results for the same request.

The job fails, writing nothing, with one line at the end of its log: ``evaluation refused:
<reason>`` when the request is wrong (a missing or invalid variable, an unknown dataset), which
running it again cannot mend, or ``evaluation failed: <reason>`` when the run failed (a
configured fault, more errored examples than ``max_error_rate``).
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from gitlab_sandbox import datasets
from gitlab_sandbox.experiments import BAD_CONFIG, configured_simulator, plan_run, results_document, settle, validate
from gitlab_sandbox.git_objects import DEFAULT_BRANCH, Repository
from gitlab_sandbox.pipeline_runner import JobSpec
from gitlab_sandbox.store import Store

#: The product's default ``Settings.evaluation_project``; the sandbox keeps its own copy.
EVALUATION_PROJECT = "gitlab-org/modelops/ai-evaluation/prompt-library"
JOB_NAME = "evaluate"
RESULTS_PATH = "evaluation/results.json"
CI_FILE = ".gitlab-ci.yml"
#: Each pipeline variable and the field of the experiment service's request it fills.
VARIABLES: dict[str, tuple[str, ...]] = {
    "DATASET": ("dataset",), "PROMPT_ID": ("prompt_id",), "PROMPT_VERSION": ("prompt_version",), "MODEL": ("model",),
    "EVALUATORS": ("evaluators",), "BASELINE_MODEL": ("baseline", "model"), "BASELINE_PROMPT_VERSION": ("baseline", "prompt_version"),
}  # fmt: skip

CI_CONFIG = """\
# The prompt library's evaluation pipeline: a candidate model and prompt version against the
# baseline (the model and prompt version the feature serves now), on one evaluation dataset.
#
# Started through the API (POST /projects/:id/pipeline) with every variable below. The project
# lets Developers pass pipeline variables (ci_pipeline_variables_minimum_override_role:
# developer); GitLab refuses them on a project left at no_one_allowed.
#
# The evaluate job writes evaluation/results.json: per-example scores, candidate and baseline
# paired by example id, in the experiment service's results shape
#   {"evaluators", "dataset", "prompt_id", "candidate", "baseline", "digest",
#    "examples": [{"example_id", "baseline": {...}, "candidate": {...}}]}
# It fails, writing nothing, and its log ends with one line:
#   evaluation refused: <reason>  a missing or invalid variable, an unknown dataset
#   evaluation failed: <reason>   a provider fault, more errored examples than tolerated
# (The GitLab sandbox plays this job with its model simulator; the script is the real runner's.)

workflow:
  rules:
    - if: $CI_PIPELINE_SOURCE == "api" || $CI_PIPELINE_SOURCE == "trigger" || $CI_PIPELINE_SOURCE == "web"

variables:
  DATASET:
    value: ""
    description: "The evaluation dataset, <feature>.<name>.<version>, e.g. duo_chat.questions.v3"
  PROMPT_ID:
    value: ""
    description: "The prompt under evaluation, e.g. chat/react"
  PROMPT_VERSION:
    value: ""
    description: "The candidate's prompt version, e.g. 1.1.0-dev"
  MODEL:
    value: ""
    description: "The candidate model"
  EVALUATORS:
    value: "correctness,readability,comprehensiveness,similarity,exact_match"
    description: "Comma-separated evaluators; latency, tokens and errors are always reported"
  BASELINE_MODEL:
    value: ""
    description: "The model the feature serves now"
  BASELINE_PROMPT_VERSION:
    value: ""
    description: "The prompt version the feature serves now"

stages:
  - evaluate

evaluate:
  stage: evaluate
  image: python:3.12-slim
  script:
    - pip install --quiet --requirement requirements/evaluation.txt
    - python -m evaluation.run --output evaluation/results.json
  artifacts:
    paths:
      - evaluation/results.json
    expire_in: 90 days
"""


class EvaluationError(Exception):
    """Ends the job as failed; the message is the log's last line."""


def experiment_request(variables: Mapping[str, str]) -> dict[str, Any]:
    """The experiment service's request body the variables spell; ``EvaluationError`` naming each
    missing or invalid variable, as the service's own checks (``validate``) find them."""
    given = {name: variables.get(name) for name in VARIABLES}
    evaluators = given["EVALUATORS"]
    body: dict[str, Any] = {
        "dataset": given["DATASET"], "prompt_id": given["PROMPT_ID"], "prompt_version": given["PROMPT_VERSION"],
        "model": given["MODEL"], "evaluators": None if evaluators is None else [e.strip() for e in evaluators.split(",") if e.strip()],
        "baseline": {"model": given["BASELINE_MODEL"], "prompt_version": given["BASELINE_PROMPT_VERSION"]},
    }  # fmt: skip
    fields = {path: name for name, path in VARIABLES.items()}
    problems = []
    for error in validate(body):
        where = tuple(error["loc"][1:])  # ("body", field[, index or subfield])
        name = fields.get(where) or fields.get(where[:1], "?")
        if where[:1] == ("evaluators",) and len(where) == 2:
            name = f"EVALUATORS item {body['evaluators'][where[1]]!r}"
        problems.append(f"{name}: {error['msg']}")
    if problems:
        raise EvaluationError(f"evaluation refused: invalid pipeline variables: {'; '.join(problems)}")
    return body


class EvaluationJob:
    """The ``evaluate`` job's handler: ``{RESULTS_PATH: results}``, or ``EvaluationError``.

    It takes the run's configured time (``run_seconds``), as the service's runs do. It holds the
    store weakly, so that a stopped sandbox's store is not kept alive by its job table."""

    def __init__(self, store: Store, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._store = weakref.ref(store)
        self._sleep = sleep

    def __call__(self, variables: dict[str, str]) -> dict[str, bytes]:
        body = experiment_request(variables)
        store = self._store()
        if store is None:
            raise EvaluationError("evaluation failed: the sandbox has stopped")
        try:
            simulator = configured_simulator(store)
        except BAD_CONFIG as err:
            raise EvaluationError(f"evaluation failed: invalid simulator configuration: {err}") from None
        try:
            run = plan_run(body, simulator)
        except datasets.DatasetNotFound:
            raise EvaluationError(f"evaluation refused: dataset {body['dataset']!r} not found") from None
        self._sleep(run["run_seconds"])
        settled = settle(run)
        if settled.state != "complete" or settled.digest is None or settled.examples is None:
            raise EvaluationError(f"evaluation failed: {settled.reason}")
        return {RESULTS_PATH: json.dumps(results_document(run, settled.digest, settled.examples)).encode()}


def evaluation_jobs(store: Store, project_path: str | None = EVALUATION_PROJECT) -> dict[str, list[JobSpec]]:
    """The job table entry for the evaluation project (none if ``project_path`` is None)."""
    if project_path is None:
        return {}
    return {project_path: [JobSpec(JOB_NAME, handler=EvaluationJob(store), stage="evaluate")]}


def seed_ci_config(store: Store, project_path: str) -> None:
    """Put ``CI_CONFIG`` on the project's default branch, once: a file already there, even a
    changed one, is left as it is."""
    project = store.find("projects", path_with_namespace=project_path)
    if project is None:
        raise ValueError(f"seed the project {project_path!r} first")
    repo = Repository(store)
    with store.lock:
        repo.init(project)
        branch = repo.branch(project["id"], DEFAULT_BRANCH)
        head = repo.commit(project["id"], branch["commit"]) if branch else None
        if head is None or CI_FILE in head["tree"]:
            return
        tree = {**head["tree"], CI_FILE: repo.put_blob(project["id"], CI_CONFIG.encode())}
        repo.write_commit(project["id"], DEFAULT_BRANCH, [head["sha"]], tree, "Add the evaluation pipeline")
