"""The evaluation harness as an activity: register once, poll with heartbeats, store the results.

The experiment's ``request_id`` is the heartbeat detail. A retry after a worker died reads it
back and goes on polling that run instead of registering a second one. The per-example results
go to the results store; only their digest and count are returned into workflow history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import structlog
from temporalio import activity

from activities.errors import to_application_error
from activities.payloads import Activity, ExperimentRun, RunExperimentInput
from model_migration.clients.experiments import EVALUATORS, ExperimentRequest, ExperimentState
from model_migration.clients.results_store import ResultsStore
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.gate import PairedExample

log = structlog.get_logger("activities.evaluation")


class ExperimentService(Protocol):
    def register(self, request: ExperimentRequest) -> str: ...

    def state(self, request_id: str) -> ExperimentState: ...

    def results(self, request_id: str) -> tuple[PairedExample, ...]: ...


class EvaluationActivities:
    def __init__(
        self, service: Callable[[], ExperimentService], store: ResultsStore, *, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._service = service
        self._store = store
        self._sleep = sleep

    @activity.defn(name=Activity.RUN_EXPERIMENT)
    def run_experiment(self, request: RunExperimentInput) -> ExperimentRun:
        info = activity.info()
        bound = log.bind(workflow_id=info.workflow_id, activity=Activity.RUN_EXPERIMENT.value, attempt=info.attempt)
        service = self._service()
        try:
            request_id = _resumed(info.heartbeat_details)
            if request_id is None:
                request_id = service.register(_experiment(request))
                bound.info("experiment_registered", request_id=request_id, dataset=request.dataset)
            else:
                bound.info("experiment_resumed", request_id=request_id)
            activity.heartbeat(request_id)
            state = service.state(request_id)
            while state.state == "running":
                self._sleep(request.poll_seconds)
                activity.heartbeat(request_id)  # also how a cancelled activity learns it
                state = service.state(request_id)
            if state.state == "fail":
                raise DomainError(
                    f"the evaluation run {request_id} failed: {state.reason or 'no reason given'}", type=ErrorType.HARNESS_ERRORS,
                )
            examples = service.results(request_id)
            digest = self._store.put(examples)
            return ExperimentRun(request_id=request_id, digest=digest, examples=len(examples), results_url=state.results_url)
        except DomainError as err:
            bound.warning("experiment_failed", error_type=str(err.type), error=err.message)
            raise to_application_error(err) from None


def _resumed(details: object) -> str | None:
    """The request id an earlier attempt heartbeated, if any."""
    if isinstance(details, (list, tuple)) and details and isinstance(details[0], str) and details[0]:
        return details[0]
    return None


def _experiment(request: RunExperimentInput) -> ExperimentRequest:
    return ExperimentRequest(
        dataset=request.dataset, prompt_id=request.prompt_id, prompt_version=request.prompt_version, model=request.model,
        baseline_model=request.baseline_model, baseline_prompt_version=request.baseline_prompt_version,
        evaluators=request.evaluators or EVALUATORS,
    )
