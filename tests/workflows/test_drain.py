"""Nothing is lost when a command lands while the feature tells its parent where it is."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import worker as worker_module
from model_migration.domain.stages import FeatureStage
from tests.temporal_fixtures import Engine
from tests.workflows.interceptors import SlowParentSignals
from tests.workflows.support import CATALOG, REPLACED, SLOW, model_for, status, wait_issue
from workflows import attributes
from workflows.feature import FeatureMigrationWorkflow
from workflows.messages import CompleteStage, FeatureMigrationInput, MetricResult, ReportEvaluation, ReportRollout, Verdict


async def test_a_command_during_the_parent_signal_keeps_its_note(engine: Engine, unique: str) -> None:
    """cleanup → done sent while the parent is told: its note (and /unlabel) lands before the close."""
    queue = f"drain-{uuid.uuid4().hex[:8]}"
    model = model_for(unique)
    migration = f"migration:{model.key}"
    request = FeatureMigrationInput(
        migration_id=migration,
        feature=CATALOG.feature("duo_chat"),
        model=model,
        replaced=REPLACED,
        tunables=SLOW,
        parent_id=f"{migration}-absent-parent",
        planned_from=datetime.now(UTC),
        revision=3,  # the team reports its evaluation: this test is about the notes, not the gate
    )
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with worker_module.build_worker(
            engine.client,
            queue,
            engine.gitlab,
            executor,
            interceptors=[SlowParentSignals()],
        ):
            handle = await engine.client.start_workflow(
                FeatureMigrationWorkflow.run,
                request,
                id=f"{migration}:feature:duo_chat",
                task_queue=queue,
                search_attributes=attributes.at_feature_start(request),
            )
            st = await wait_issue(handle)
            actor = "achen"
            await handle.execute_update(
                "complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor=actor, prompt_version="1.0.0-dev")
            )
            metric = MetricResult(name="correctness", baseline=3.0, candidate=3.2)
            await handle.execute_update("report_evaluation", ReportEvaluation(actor=actor, verdict=Verdict.PASS, metrics=(metric,)))
            await handle.execute_update("report_rollout", ReportRollout(actor=actor, percentage=100))
            # The loop is now posting the rollout's note and then telling the (slow) parent.
            await asyncio.sleep(0.5)
            await handle.execute_update("complete_stage", CompleteStage(stage=FeatureStage.CLEANUP, actor=actor))
            outcome = await handle.result()
            final = await status(handle)
    assert outcome.stage == FeatureStage.DONE
    assert st.issue is not None
    gl = engine.gitlab_client()
    notes = [n.body for n in gl.list_notes(st.issue.iid)]
    transitions = Counter(
        arrow
        for arrow in ("implement → evaluate", "evaluate → rollout", "rollout → cleanup", "cleanup → done")
        for body in notes
        if f"**{arrow}**" in body
    )
    assert transitions == Counter({"implement → evaluate": 1, "evaluate → rollout": 1, "rollout → cleanup": 1, "cleanup → done": 1})
    markers = [line for body in notes for line in body.splitlines() if "model-migration:" in line]
    assert len(markers) == len(set(markers))
    issue = gl.get_issue(st.issue.iid)
    assert issue.state == "closed"
    assert final.stage == FeatureStage.DONE and not final.blocked
