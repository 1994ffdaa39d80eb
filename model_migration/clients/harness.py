"""The harness interface: what every evaluation harness offers the harness activity.

A harness runs one experiment (candidate against baseline on a dataset) somewhere else: the
experiment service, a CI pipeline, the promptfoo CLI, or a team's published results. The activity
``register``s it once, keeps the returned run id in its heartbeat, polls ``state`` until the run
is ``complete`` or ``fail``, then reads ``results``. A worker that died mid-poll resumes with the
same run id, so a run is never started twice. Each method raises ``HarnessError`` with a type that
says whether a retry can help (``HARNESS_UNAVAILABLE``) or not (``HARNESS_REFUSED``).
"""

from __future__ import annotations

from typing import Protocol

from model_migration.clients.experiments import EVALUATORS, ExperimentRequest, ExperimentState, HarnessError, parse_results
from model_migration.domain.evaluation import HarnessKind
from model_migration.domain.gate import PairedExample

__all__ = ["EVALUATORS", "ExperimentRequest", "ExperimentState", "Harness", "HarnessError", "HarnessKind", "parse_results"]


class Harness(Protocol):
    def register(self, request: ExperimentRequest) -> str:
        """Start the run; return its id (a request id, a pipeline id, a run directory's name)."""

    def state(self, run_id: str) -> ExperimentState:
        """``running``, ``complete`` or ``fail`` (with a reason), and a link to the run."""

    def results(self, run_id: str) -> tuple[PairedExample, ...]:
        """The paired per-example results of a complete run."""
