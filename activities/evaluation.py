"""The evaluation activities: run a harness (register once, poll with heartbeats, store the
results), and judge stored results with the gate.

The harness run's id is the heartbeat detail. A retry after a worker died reads it back and
goes on polling that run instead of registering a second one. The per-example results go to
the results store; only their digest and count are returned into workflow history, and the
gate activity reads them back from there by that digest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import to_application_error
from activities.payloads import Activity, ExperimentRun, JudgeGateInput, RunExperimentInput
from model_migration.clients.harness import EVALUATORS, ExperimentRequest, Harness, HarnessKind
from model_migration.clients.results_store import ResultsStore
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.gate import GateResult, HarnessErrors, evaluate_gate

log = structlog.get_logger("activities.evaluation")


class EvaluationActivities:
    """``harnesses`` builds a client for each harness this worker can run; a feature whose
    harness is missing here gets a non-retryable error naming it."""

    def __init__(
        self,
        harnesses: Mapping[HarnessKind, Callable[[], Harness]],
        store: ResultsStore,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._harnesses = dict(harnesses)
        self._store = store
        self._sleep = sleep

    def all(self) -> list[Callable[..., object]]:
        return [self.run_experiment, self.judge_gate]

    @activity.defn(name=Activity.RUN_EXPERIMENT)
    def run_experiment(self, request: RunExperimentInput) -> ExperimentRun:
        info = activity.info()
        bound = log.bind(
            workflow_id=info.workflow_id, activity=Activity.RUN_EXPERIMENT.value, attempt=info.attempt, harness=request.harness.value,
        )
        try:
            harness = self._harness(request.harness)
            run_id = _resumed(info.heartbeat_details)
            if run_id is None:
                run_id = harness.register(_experiment(request))
                bound.info("experiment_registered", run_id=run_id, dataset=request.dataset)
            else:
                bound.info("experiment_resumed", run_id=run_id)
            activity.heartbeat(run_id)
            state = harness.state(run_id)
            while state.state == "running":
                self._sleep(request.poll_seconds)
                activity.heartbeat(run_id)  # also how a cancelled activity learns it
                state = harness.state(run_id)
            if state.state == "fail":
                raise DomainError(
                    f"the evaluation run {run_id} failed: {state.reason or 'no reason given'}", type=ErrorType.HARNESS_ERRORS,
                )
            examples = harness.results(run_id)
            digest = self._store.put(examples)
            return ExperimentRun(request_id=run_id, digest=digest, examples=len(examples), results_url=state.results_url)
        except DomainError as err:
            bound.warning("experiment_failed", error_type=str(err.type), error=err.message)
            raise to_application_error(err) from None

    @activity.defn(name=Activity.JUDGE_GATE)
    def judge_gate(self, request: JudgeGateInput) -> GateResult:
        """The gate over stored results. Too many harness errors is no verdict: a non-retryable
        ``HarnessErrors`` (judging the same results again would say the same), which the
        evaluation workflow answers by running the harness again."""
        try:
            examples = self._store.get(request.digest)
            return evaluate_gate(
                examples, request.config, dataset=request.dataset, baseline=request.baseline, candidate=request.candidate,
            )
        except HarnessErrors as err:
            raise ApplicationError(err.message, type=ErrorType.HARNESS_ERRORS.value, non_retryable=True) from None
        except DomainError as err:
            raise to_application_error(err) from None

    def _harness(self, kind: HarnessKind) -> Harness:
        make = self._harnesses.get(kind)
        if make is None:
            known = ", ".join(sorted(self._harnesses)) or "none"
            raise DomainError(
                f"this worker has no {kind.value} harness (it has: {known}); configure it and restart the worker",
                type=ErrorType.HARNESS_REFUSED,
            )
        return make()


def _resumed(details: object) -> str | None:
    """The run id an earlier attempt heartbeated, if any."""
    if isinstance(details, (list, tuple)) and details and isinstance(details[0], str) and details[0]:
        return details[0]
    return None


def _experiment(request: RunExperimentInput) -> ExperimentRequest:
    return ExperimentRequest(
        dataset=request.dataset, prompt_id=request.prompt_id, prompt_version=request.prompt_version, model=request.model,
        baseline_model=request.baseline_model, baseline_prompt_version=request.baseline_prompt_version,
        evaluators=request.evaluators or EVALUATORS, results_url=request.results_url,
    )
