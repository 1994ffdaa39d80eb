"""The CI-pipeline harness: an evaluation run is a pipeline of the evaluation project.

``register`` starts a pipeline on the project's ref with the request in its variables and returns
the pipeline's id; ``state`` maps the pipeline's status; ``results`` reads the ``evaluate`` job's
``evaluation/results.json`` artifact (the experiment service's results shape) with
``parse_results``. GitLab's errors become ``HarnessError``: 429, 5xx and connection problems can
be retried (``HARNESS_UNAVAILABLE``); a refused token, a missing project or pipeline and a request
GitLab calls invalid cannot (``HARNESS_REFUSED``).

The job's side of the contract (the project's ``.gitlab-ci.yml`` says it too): a failed job's log
ends with ``evaluation refused: <reason>`` when the request is wrong (an unknown dataset, a bad
variable), which running it again cannot mend, or ``evaluation failed: <reason>`` when the run
itself failed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from model_migration.clients.experiments import ExperimentRequest, ExperimentState, HarnessError, parse_results
from model_migration.clients.gitlab import GitLabClient, WaitGate
from model_migration.clients.gitlab_labels import UserDirectory
from model_migration.domain.errors import DomainError, ErrorType, GitLabError
from model_migration.domain.gate import PairedExample
from model_migration.domain.models import Job, Pipeline
from model_migration.settings import Settings

JOB_NAME = "evaluate"
RESULTS_PATH = "evaluation/results.json"
#: Statuses a pipeline (or job) leaves on its own; any other that is not ``success`` ends the run.
UNFINISHED = frozenset(
    {"created", "waiting_for_resource", "preparing", "waiting_for_callback", "pending", "running", "scheduled", "canceling"}
)
#: Statuses that end a run without results; ``manual`` waits for a person who is not coming.
FAILED = frozenset({"failed", "canceled", "skipped", "manual"})
_SAID = re.compile(r"^(?:[\w.]+: )?evaluation (refused|failed): (.+)$", re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_VARIABLES_REFUSED = "Insufficient permissions to set pipeline variables"


class PipelineHarness:
    """Runs experiments as pipelines through ``client``, which is bound to the evaluation project."""

    def __init__(self, client: GitLabClient, ref: str = "main", *, job_name: str = JOB_NAME, results_path: str = RESULTS_PATH) -> None:
        self._client = client
        self._ref = ref
        self._job_name = job_name
        self._results_path = results_path

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PipelineHarness:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def register(self, request: ExperimentRequest) -> str:
        variables = {
            "DATASET": request.dataset, "PROMPT_ID": request.prompt_id, "PROMPT_VERSION": request.prompt_version,
            "MODEL": request.model, "EVALUATORS": ",".join(request.evaluators),
            "BASELINE_MODEL": request.baseline_model, "BASELINE_PROMPT_VERSION": request.baseline_prompt_version,
        }  # fmt: skip
        with _harness_errors():
            return str(self._client.create_pipeline(self._ref, variables).id)

    def state(self, run_id: str) -> ExperimentState:
        """``running`` until the pipeline finishes (a status GitLab adds later counts as running:
        the activity's timeout bounds a pipeline that never ends), then ``complete`` or ``fail``."""
        pipeline_id = _pipeline_id(run_id)
        with _harness_errors():
            pipeline = self._client.get_pipeline(pipeline_id)
            if pipeline.status == "success":
                return ExperimentState(request_id=run_id, state="complete", results_url=pipeline.web_url)
            if pipeline.status not in FAILED:
                return ExperimentState(request_id=run_id, state="running", results_url=pipeline.web_url)
            return ExperimentState(request_id=run_id, state="fail", reason=self._why(pipeline), results_url=pipeline.web_url)

    def results(self, run_id: str) -> tuple[PairedExample, ...]:
        pipeline_id = _pipeline_id(run_id)
        with _harness_errors():
            job = self._evaluation_job(pipeline_id)
            raw = self._client.job_artifact(job.id, self._results_path)
        try:
            answer = json.loads(raw)
        except ValueError:
            raise HarnessError(f"{self._results_path} of job {job.id} is not JSON", type=ErrorType.HARNESS_REFUSED) from None
        return parse_results(answer, f"pipeline {pipeline_id}'s {self._results_path}")

    def _evaluation_job(self, pipeline_id: int) -> Job:
        jobs = self._client.pipeline_jobs(pipeline_id)
        named = [job for job in jobs if job.name == self._job_name]
        if not named:
            ran = ", ".join(sorted({job.name for job in jobs})) or "no job"
            raise HarnessError(
                f"pipeline {pipeline_id} has no {self._job_name!r} job (it ran: {ran}); "
                f"is {self._client.project_path} the evaluation project?",
                type=ErrorType.HARNESS_REFUSED,
            )
        job = max(named, key=lambda found: found.id)  # the latest attempt
        if job.status != "success":
            kind = ErrorType.HARNESS_UNAVAILABLE if job.status in UNFINISHED else ErrorType.HARNESS_REFUSED
            raise HarnessError(f"job {job.name} of pipeline {pipeline_id} is {job.status}: it has no results", type=kind)
        return job

    def _why(self, pipeline: Pipeline) -> str:
        """The pipeline's status, the job that ended it and the job's own last word. A job that
        says the request is wrong is a refusal: ``HarnessError``, not a failed run."""
        jobs = self._client.pipeline_jobs(pipeline.id)
        culprit = next((j for j in jobs if j.status == "failed"), None) or next((j for j in jobs if j.status == pipeline.status), None)
        reason = f"pipeline {pipeline.id} {pipeline.status}"
        if culprit is None:
            return reason
        reason += f": job {culprit.name} {culprit.status}" + (f" ({culprit.failure_reason})" if culprit.failure_reason else "")
        if culprit.status != "failed":
            return reason
        said = _SAID.findall(_ANSI.sub("", self._client.job_trace(culprit.id)))
        if not said:
            return f"{reason}; see {culprit.web_url}" if culprit.web_url else reason
        verdict, words = said[-1]
        if verdict == "refused":
            raise HarnessError(f"{reason}: evaluation refused: {words.strip()[:300]}", type=ErrorType.HARNESS_REFUSED)
        return f"{reason}: {words.strip()[:300]}"


def pipeline_harness_factory(
    settings: Settings, gate: WaitGate | None = None, users: UserDirectory | None = None
) -> Callable[[], PipelineHarness]:
    """Builds a harness (and its client, on ``settings.evaluation_project``) per activity, as
    ``worker.gitlab_factory`` builds clients: every one shares ``gate`` and ``users``."""
    token = settings.resolved_gitlab_token()
    if token is None:
        raise DomainError(
            "no GitLab token for the CI pipeline harness: set MODEL_MIGRATION_GITLAB_TOKEN (or start the sandbox, which writes one)"
        )
    secret: SecretStr = token
    shared = gate if gate is not None else WaitGate()
    directory = users if users is not None else UserDirectory()

    def make() -> PipelineHarness:
        client = GitLabClient(
            settings.gitlab_url, secret, settings.evaluation_project, settings.gitlab_group,
            timeout=settings.gitlab_timeout, gate=shared, users=directory,
        )  # fmt: skip
        return PipelineHarness(client, settings.evaluation_ref)

    return make


def _pipeline_id(run_id: str) -> int:
    if not re.fullmatch(r"[1-9][0-9]{0,18}", run_id):
        raise HarnessError(f"{run_id[:80]!r} is not a pipeline id", type=ErrorType.HARNESS_REFUSED)
    return int(run_id)


@contextmanager
def _harness_errors() -> Iterator[None]:
    """GitLab's errors as the harness's: only a transient one is worth another try."""
    try:
        yield
    except GitLabError as err:
        kind = ErrorType.HARNESS_UNAVAILABLE if err.type == ErrorType.GITLAB_TRANSIENT else ErrorType.HARNESS_REFUSED
        message = err.message
        if _VARIABLES_REFUSED in message:
            message += "; the evaluation project must let the token's role pass them (ci_pipeline_variables_minimum_override_role)"
        raise HarnessError(message, type=kind) from None
