"""EvaluationWorkflow: run a harness, then the gate, and return the ``GateResult``.

A child of the feature workflow, one per evaluation attempt (``evaluation_workflow_id``), so a
retried start never runs an attempt's harness twice. Its history stays small: the harness
activity keeps the per-example results in the results store and returns their digest, and the
gate activity reads them back from there. Only the digest and the gate's summary travel.

A harness run whose examples errored too often (or that failed outright) is not a verdict: it is
run again, up to ``tunables.harness_attempts`` times, and then the workflow returns the error for
the feature to escalate. A harness that refuses (a bad token, an unknown dataset) is not retried.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import interface
    from activities.payloads import ExperimentRun, JudgeGateInput, RunExperimentInput
    from model_migration.domain.errors import ErrorType
    from workflows.messages import EvaluationInput, EvaluationResult

#: A harness that cannot be reached is retried with backoff for about ten minutes; then the
#: evaluation reports it instead of waiting without end.
HARNESS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=8,
    non_retryable_error_types=[*ErrorType.non_retryable(), ErrorType.HARNESS_ERRORS.value],
)
GATE_RETRY = RetryPolicy(maximum_attempts=3, non_retryable_error_types=[*ErrorType.non_retryable(), ErrorType.HARNESS_ERRORS.value])


@workflow.defn
class EvaluationWorkflow:
    def __init__(self) -> None:
        self.phase = "starting"
        self.attempt = 0
        self.errors: list[str] = []

    @workflow.run
    async def run(self, input: EvaluationInput) -> EvaluationResult:
        tunables = input.tunables
        for attempt in range(1, tunables.harness_attempts + 1):
            self.attempt = attempt
            try:
                self.phase = "harness"
                run = await workflow.execute_activity(
                    interface.run_experiment, _experiment(input),
                    start_to_close_timeout=tunables.harness_timeout, heartbeat_timeout=tunables.evaluation_heartbeat,
                    retry_policy=HARNESS_RETRY,
                )
                self.phase = "gate"
                gate = await workflow.execute_activity(
                    interface.judge_gate, _judge(input, run), start_to_close_timeout=timedelta(minutes=10), retry_policy=GATE_RETRY,
                )
            except ActivityError as err:
                message, again = _why(err)
                self.errors.append(message)
                workflow.logger.warning("evaluation attempt %d gave no verdict: %s", attempt, message)
                if again:
                    continue
                break
            self.phase = "done"
            return EvaluationResult(
                gate=gate, run_id=run.request_id, digest=run.digest, run_url=run.results_url, attempts=attempt,
            )
        self.phase = "failed"
        tried = f" (after {self.attempt} harness runs)" if self.attempt > 1 else ""
        return EvaluationResult(error=f"{self.errors[-1]}{tried}", attempts=self.attempt)

    @workflow.query
    def progress(self) -> str:
        return f"attempt {self.attempt}: {self.phase}"


def _why(err: ActivityError) -> tuple[str, bool]:
    """The error's one line, and whether running the harness again can help."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.message, cause.type == ErrorType.HARNESS_ERRORS.value
    if cause is not None:  # a timeout: the harness never finished
        return f"the harness did not finish: {cause}", True
    return str(err), True


def _experiment(input: EvaluationInput) -> RunExperimentInput:
    return RunExperimentInput(
        dataset=input.dataset, prompt_id=input.prompt_id, prompt_version=input.candidate_prompt_version,
        model=input.candidate_model, baseline_model=input.baseline_model, baseline_prompt_version=input.baseline_prompt_version,
        evaluators=input.spec.evaluators, poll_seconds=input.tunables.evaluation_poll.total_seconds(),
        harness=input.harness, results_url=input.results_url,
    )


def _judge(input: EvaluationInput, run: ExperimentRun) -> JudgeGateInput:
    return JudgeGateInput(
        digest=run.digest, config=input.spec.gate_config(input.seed), dataset=input.dataset,
        baseline=f"{input.baseline_model}@{input.baseline_prompt_version}",
        candidate=f"{input.candidate_model}@{input.candidate_prompt_version}",
    )
