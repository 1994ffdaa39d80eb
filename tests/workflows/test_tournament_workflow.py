"""TournamentWorkflow: K candidates evaluated side by side as children, then ranked."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from model_migration.domain.commands import Verdict
from tests.temporal_fixtures import Engine
from tests.workflows.support import CATALOG, SLOW
from tests.workflows.test_evaluation_gate import simulator  # noqa: F401 - the fixture
from workflows.messages import TournamentInput, TournamentOutcome
from workflows.tournament import TournamentWorkflow

CANDIDATES = ("claude_sonnet_4_5_20250929", "claude_haiku_4_5_20251001", "code_gecko_002")


async def test_candidates_run_in_parallel_and_are_ranked(engine: Engine, simulator: str) -> None:  # noqa: F811
    """Two passing candidates and one failing: the failing one ranks last; each ran exactly once, side by side."""
    feature = CATALOG.feature("duo_chat")
    request = TournamentInput(
        feature=feature, baseline=CATALOG.model(feature.current_model),
        candidates=tuple(CATALOG.model(c) for c in CANDIDATES), tunables=SLOW,
    )
    wid = f"tournament:{uuid.uuid4().hex[:8]}"
    handle = await engine.client.start_workflow(TournamentWorkflow.run, request, id=wid, task_queue=engine.task_queue)
    outcome = await handle.result()
    assert isinstance(outcome, TournamentOutcome) and outcome.result is not None and not outcome.errors
    table = outcome.result.table
    assert [row.verdict for row in table] == [Verdict.PASS, Verdict.PASS, Verdict.FAIL]
    assert table[-1].candidate == CATALOG.model("code_gecko_002").key
    assert outcome.result.winner == table[0].candidate and outcome.result.runner_up == table[1].candidate
    assert table[0].ahead_by in ("quality", "latency", "cost", "name")
    # The children: one per candidate, all started before the first finished.
    spans = []
    for candidate in CANDIDATES:
        child = await engine.client.get_workflow_handle(f"{wid}:evaluation:{candidate}").describe()
        assert child.close_time is not None
        spans.append((child.start_time, child.close_time))
    assert max(start for start, _ in spans) < min(end for _, end in spans)


def test_a_candidate_twice_or_the_baseline_as_candidate_is_refused() -> None:
    feature = CATALOG.feature("duo_chat")
    baseline, candidate = CATALOG.model(feature.current_model), CATALOG.model(CANDIDATES[0])
    with pytest.raises(ValidationError, match="listed twice"):
        TournamentInput(feature=feature, baseline=baseline, candidates=(candidate, candidate))
    with pytest.raises(ValidationError, match="is the baseline"):
        TournamentInput(feature=feature, baseline=baseline, candidates=(candidate, baseline))
