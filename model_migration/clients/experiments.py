"""The experiment-service harness: GitLab's Centralized Evaluation Framework's shape over HTTP.

``register`` starts a run and returns its ``request_id``; ``state`` polls it; ``results`` reads
its per-example scores, paired by example id, as the gate's ``PairedExample``s. A caller that
was stopped keeps the ``request_id`` and polls it again: registering again would start a second
run. Nothing here retries (Temporal does); each HTTP answer maps to one domain error type.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import requests
from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, ValidationError

from model_migration.clients.gitlab import WaitGate, wait_key
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.gate import PairedExample, SideResult

MODEL = ConfigDict(frozen=True)
#: The evaluators the service knows; their names are the gate's metric names.
EVALUATORS = ("correctness", "readability", "comprehensiveness", "similarity", "exact_match")


class ExperimentRequest(BaseModel):
    model_config = MODEL
    dataset: str
    prompt_id: str
    prompt_version: str
    model: str
    baseline_model: str
    baseline_prompt_version: str
    evaluators: tuple[str, ...] = EVALUATORS
    #: Only for a harness that imports published results: where they are.
    results_url: str = ""


#: The service sends null for what it does not know yet.
Text = Annotated[str, BeforeValidator(lambda value: value or "")]


class ExperimentState(BaseModel):
    model_config = MODEL
    request_id: str
    state: Literal["running", "complete", "fail"]
    reason: Text = ""
    digest: Text = ""
    results_url: Text = ""
    example_count: int = 0


class HarnessError(DomainError):
    """The harness refused, failed or could not be reached; ``type`` says whether to retry, and
    ``retry_after`` (seconds) when the service said how long to wait."""

    def __init__(self, message: str, *, type: ErrorType | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, type=type)
        self.retry_after = retry_after


class ExperimentServiceClient:
    """One service, one token. ``base_url`` is the service's root, e.g. ``<gitlab>/api/evaluation``."""

    def __init__(self, base_url: str, token: SecretStr | str, *, timeout: float = 10.0, gate: WaitGate | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        # A 429 or "0 remaining" holds every client of the worker that talks to this origin with
        # this token: the sandbox (and a GitLab-hosted service) counts these requests with GitLab's.
        self._gate = gate if gate is not None else WaitGate()
        self._gate_key = wait_key(self.base_url, secret)
        self._session = requests.Session()
        self._session.headers["PRIVATE-TOKEN"] = secret
        self._session.trust_env = False  # no .netrc or proxies picked up behind the token's back
        self._timeout = timeout

    def close(self) -> None:
        self._session.close()

    def register(self, request: ExperimentRequest) -> str:
        body = {
            "dataset": request.dataset, "prompt_id": request.prompt_id, "prompt_version": request.prompt_version,
            "model": request.model, "evaluators": list(request.evaluators),
            "baseline": {"model": request.baseline_model, "prompt_version": request.baseline_prompt_version},
        }
        answer = self._call("POST", "/v1/experiments/register", f"register an experiment on {request.dataset}", json=body)
        return str(answer["request_id"])

    def state(self, request_id: str) -> ExperimentState:
        answer = self._call("GET", "/v1/experiments/state", f"read experiment {request_id}", params={"request_id": request_id})
        try:
            return ExperimentState.model_validate(answer)
        except ValidationError as err:
            raise _malformed(f"experiment {request_id}'s state", err) from None

    def results(self, request_id: str) -> tuple[PairedExample, ...]:
        """The paired per-example results of a complete run; a run not complete yet is retryable."""
        answer = self._call("GET", "/v1/experiments/results", f"read results of {request_id}", params={"request_id": request_id})
        return parse_results(answer, f"experiment {request_id}")

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        wait = self._gate.remaining(self._gate_key)
        if wait > 0:
            raise HarnessError(f"cannot {what}: told to wait, retry in {wait:.1f}s", type=ErrorType.HARNESS_UNAVAILABLE, retry_after=wait)
        try:
            response = self._session.request(method, self.base_url + path, timeout=self._timeout, **kwargs)
        except requests.RequestException as err:
            message = f"cannot {what}: {type(err).__name__} reaching {self.base_url}"
            raise HarnessError(message, type=ErrorType.HARNESS_UNAVAILABLE) from None
        self._gate.observe(self._gate_key, response.status_code, response.headers)
        if response.ok:
            body: dict[str, Any] = response.json()
            return body
        detail = _detail(response)
        status = response.status_code
        if status == 409:  # not finished (or failed): poll again, the workflow decides when to stop
            raise HarnessError(f"cannot {what} yet: {detail}", type=ErrorType.HARNESS_UNAVAILABLE)
        if status in (401, 403):
            raise HarnessError(f"the evaluation service refused the token ({status}); check it", type=ErrorType.HARNESS_REFUSED)
        if status in (400, 404, 422):
            raise HarnessError(f"cannot {what}: {detail}", type=ErrorType.HARNESS_REFUSED)
        told = self._gate.remaining(self._gate_key) if status == 429 else 0.0
        raise HarnessError(f"cannot {what}: the service answered {status}", type=ErrorType.HARNESS_UNAVAILABLE, retry_after=told or None)


def parse_results(answer: object, what: str) -> tuple[PairedExample, ...]:
    """Per-example results in the service's shape (``{"evaluators", "examples": [{"example_id",
    "baseline": {...}, "candidate": {...}}]}``) as the gate's ``PairedExample``s. Every harness
    that writes this shape (a CI job's artifact, an imported file) is read by this one function."""
    if not isinstance(answer, dict) or not isinstance(answer.get("examples"), list):
        raise _malformed(f"{what}'s results", ValueError("not an object with a list of examples"))
    evaluators = tuple(answer.get("evaluators") or EVALUATORS)
    paired = []
    for example in answer["examples"]:
        if not isinstance(example, dict) or example.get("baseline") is None:
            raise HarnessError(f"{what} has an example with no baseline results to pair with", type=ErrorType.HARNESS_REFUSED)
        try:
            paired.append(PairedExample(
                example_id=str(example["example_id"]),
                baseline=_side(example["baseline"], evaluators),
                candidate=_side(example["candidate"], evaluators),
            ))
        except (KeyError, TypeError, ValueError) as err:  # ValidationError is a ValueError
            raise _malformed(f"{what}'s results", err) from None
    return tuple(paired)


def _malformed(what: str, err: Exception) -> HarnessError:
    reason = " ".join(str(err).split())[:200]
    return HarnessError(f"the evaluation service sent malformed {what}: {reason}", type=ErrorType.HARNESS_UNAVAILABLE)


def _side(raw: dict[str, Any], evaluators: tuple[str, ...]) -> SideResult:
    scores = {name: float(raw[name]) for name in evaluators if raw.get(name) is not None}
    return SideResult(scores=scores, latency_ms=float(raw.get("latency_ms") or 0.0), error=bool(raw.get("error")))


def _detail(response: requests.Response) -> str:
    """The service's own words, on one line, whatever shape its error body has."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    detail = body.get("detail", body.get("message", body)) if isinstance(body, dict) else body
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        detail = f"{where}: {first.get('msg', '')}"
    return " ".join(str(detail).split())[:300]
