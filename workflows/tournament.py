"""TournamentWorkflow: K replacement candidates evaluated in parallel, then ranked.

Each candidate runs as its own ``EvaluationWorkflow`` child against the feature's current model
on its dataset (``<tournament id>:evaluation:<candidate>``), so the K harness runs go on side by
side and each is run once. The ranking is the pure ``domain/tournament.rank``: gate verdict, then
quality, latency and catalog cost. A candidate whose harness gave no verdict is left out of the
ranking and named, with its error, in the outcome. The deprecation process runs this to choose a
replacement.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from model_migration.domain.models import ModelDefinition
    from model_migration.domain.tournament import Contender, rank
    from workflows.messages import EvaluationInput, EvaluationResult, TournamentInput, TournamentOutcome


@workflow.defn
class TournamentWorkflow:
    @workflow.run
    async def run(self, input: TournamentInput) -> TournamentOutcome:
        me = workflow.info().workflow_id
        results = await asyncio.gather(*(
            workflow.execute_child_workflow(
                "EvaluationWorkflow", _evaluation(input, c), result_type=EvaluationResult, id=f"{me}:evaluation:{c.gitlab_identifier}",
            )
            for c in input.candidates
        ))
        contenders = [Contender.of(c, r.gate) for c, r in zip(input.candidates, results, strict=True) if r.gate is not None]
        errors = {c.gitlab_identifier: r.error for c, r in zip(input.candidates, results, strict=True) if r.gate is None}
        return TournamentOutcome(result=rank(contenders) if contenders else None, errors=errors)


def _evaluation(input: TournamentInput, candidate: ModelDefinition) -> EvaluationInput:
    f = input.feature
    return EvaluationInput(
        feature=f.name, dataset=f.dataset, prompt_id=f.prompt_id,
        baseline_model=input.baseline.gitlab_identifier, baseline_prompt_version=f.evaluation.baseline_prompt_version,
        candidate_model=candidate.gitlab_identifier, candidate_prompt_version=input.prompt_version,
        spec=f.evaluation, harness=f.evaluation.harness, tunables=input.tunables,
    )
