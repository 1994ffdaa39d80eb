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
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr

from model_migration.clients.experiments import EVALUATORS, ExperimentRequest, ExperimentState, HarnessError, parse_results
from model_migration.domain.errors import ErrorType
from model_migration.domain.evaluation import HarnessKind
from model_migration.domain.gate import PairedExample

__all__ = [
    "EVALUATORS", "ExperimentRequest", "ExperimentState", "Harness", "HarnessError", "HarnessKind", "ImportedResults", "parse_results",
]


class Harness(Protocol):
    def register(self, request: ExperimentRequest) -> str:
        """Start the run; return its id (a request id, a pipeline id, a run directory's name)."""

    def state(self, run_id: str) -> ExperimentState:
        """``running``, ``complete`` or ``fail`` (with a reason), and a link to the run."""

    def results(self, run_id: str) -> tuple[PairedExample, ...]:
        """The paired per-example results of a complete run."""


class ImportedResults:
    """A team's own harness: its per-example results, published at a URL in the experiment
    service's results shape, read once. The run id is the URL itself.

    The token goes only to the origins given (the GitLab instance and the experiment service);
    any other address is read without it, so a link in a team's report cannot collect it."""

    def __init__(self, tokens: dict[str, SecretStr], *, timeout: float = 30.0) -> None:
        self._tokens = {_origin(url): token for url, token in tokens.items()}
        self._timeout = timeout

    def register(self, request: ExperimentRequest) -> str:
        if urlsplit(request.results_url).scheme not in ("http", "https"):
            raise HarnessError(f"results URL {request.results_url!r} is not an http(s) URL", type=ErrorType.HARNESS_REFUSED)
        return request.results_url

    def state(self, run_id: str) -> ExperimentState:
        return ExperimentState(request_id=run_id, state="complete", results_url=run_id)

    def results(self, run_id: str) -> tuple[PairedExample, ...]:
        headers = {}
        token = self._tokens.get(_origin(run_id))
        if token is not None:
            headers["PRIVATE-TOKEN"] = token.get_secret_value()
        try:
            with requests.Session() as session:
                session.trust_env = False
                response = session.get(run_id, headers=headers, timeout=self._timeout)
        except requests.RequestException as err:
            raise HarnessError(f"cannot read the results at {run_id}: {type(err).__name__}", type=ErrorType.HARNESS_UNAVAILABLE) from None
        if response.status_code >= 500 or response.status_code in (409, 429):
            raise HarnessError(f"cannot read the results at {run_id} yet: HTTP {response.status_code}", type=ErrorType.HARNESS_UNAVAILABLE)
        if not response.ok:
            raise HarnessError(f"cannot read the results at {run_id}: HTTP {response.status_code}", type=ErrorType.HARNESS_REFUSED)
        try:
            answer = response.json()
        except ValueError:
            raise HarnessError(f"the results at {run_id} are not JSON", type=ErrorType.HARNESS_REFUSED) from None
        return parse_results(answer, f"the results at {run_id}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
