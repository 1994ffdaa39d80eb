"""An experiment service in the shape of GitLab's Centralized Evaluation Framework, played by the model simulator.

The service lives under ``/api/evaluation`` on the sandbox's server, so the sandbox's token check,
rate limit and fault injection apply to it as to every ``/api/`` path. A client's base URL is
``<sandbox>/api/evaluation``; the endpoints below it are the service's own:

- ``POST /v1/experiments/register`` ``{dataset, prompt_id, prompt_version, model, evaluators,
  baseline?: {model, prompt_version}}`` → ``{"request_id"}``. 422 on a missing or malformed field,
  404 on an unknown dataset.
- ``GET /v1/experiments/state?request_id=`` → ``{"state": "running" | "complete" | "fail", ...}``.
- ``GET /v1/experiments/results?request_id=`` → per-example results, candidate and baseline paired
  by example id; 409 until the run is complete.
- ``GET`` / ``PUT /-/config``: the simulator's configuration (see ``model_simulator``); a ``PUT``
  body replaces the previous overrides, ``{}`` restores the defaults.

A run takes ``run_seconds`` and then settles on the first ``state`` or ``results`` request after
that: complete, or fail if a configured fault matches it or too many of its examples errored.
The profiles, seed and fault are taken when the run is registered, so a later configuration
change never alters a run already under way.

The run itself (``plan_run``, ``settle``, ``results_document``) and the configuration
(``configured_simulator``) are shared with the evaluation CI job (``evaluation_job``): one
``PUT /-/config`` configures both harnesses, and both report the same results for a request.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitlab_sandbox import datasets
from gitlab_sandbox.model_simulator import ExampleScores, ModelSimulator, Profile, load_config, score_with
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response
from gitlab_sandbox.store import Store, now_iso

BASE = "/api/evaluation"
EXPERIMENTS = f"{BASE}/v1/experiments"
#: Evaluator names are the metrics they report; latency, tokens and the error flag always come.
EVALUATORS = ("correctness", "readability", "comprehensiveness", "similarity", "exact_match")
REQUIRED = ("dataset", "prompt_id", "prompt_version", "model")

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY, request_id TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiment_results (
    id INTEGER PRIMARY KEY, request_id TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiment_config (id INTEGER PRIMARY KEY, data TEXT NOT NULL);
"""


def _detail(status: int, detail: Any, **extra: Any) -> ApiError:
    # FastAPI's error shape, which the evaluation framework's service answers with.
    return ApiError(status, {"detail": detail, **extra})


def _field_error(loc: list[str | int], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


def validate(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's field errors, FastAPI style; empty when it is well formed."""
    errors = []
    for name in REQUIRED:
        value = body.get(name)
        if value is None:
            errors.append(_field_error([name], "Field required", "missing"))
        elif not isinstance(value, str) or not value.strip():
            errors.append(_field_error([name], "Input should be a non-empty string", "string_type"))
    evaluators = body.get("evaluators")
    if evaluators is None:
        errors.append(_field_error(["evaluators"], "Field required", "missing"))
    elif not isinstance(evaluators, list) or not evaluators:
        errors.append(_field_error(["evaluators"], "Input should be a non-empty list", "list_type"))
    else:
        for index, name in enumerate(evaluators):
            if name not in EVALUATORS:
                errors.append(_field_error(["evaluators", index], f"Input should be one of {', '.join(EVALUATORS)}", "enum"))
    baseline = body.get("baseline")
    if baseline is not None:
        if not isinstance(baseline, dict):
            errors.append(_field_error(["baseline"], "Input should be an object", "dict_type"))
        else:
            for name in ("model", "prompt_version"):
                value = baseline.get(name)
                if not isinstance(value, str) or not value.strip():
                    kind = "missing" if value is None else "string_type"
                    errors.append(_field_error(["baseline", name], "Field required" if value is None else "Input should be a string", kind))
    return errors


#: What a configuration that ``ModelSimulator`` cannot build raises.
BAD_CONFIG = (ValueError, TypeError, KeyError)


def configured_simulator(store: Store, overrides: Mapping[str, Any] | None = None) -> ModelSimulator:
    """The simulator as configured now: the defaults, the operator's file, then the overrides last
    ``PUT`` to ``/-/config`` (or ``overrides``, to try them). Raises one of ``BAD_CONFIG``."""
    if overrides is None:
        rows = store.select("experiment_config")
        overrides = rows[-1]["overrides"] if rows else {}
    return ModelSimulator(load_config(overrides=overrides))


def plan_run(body: dict[str, Any], simulator: ModelSimulator) -> dict[str, Any]:
    """A run of a request that ``validate`` passed, with the profiles, seed, tolerance and fault
    the configuration gives it now. ``datasets.DatasetNotFound`` if the dataset does not ship."""
    count = len(datasets.load(body["dataset"]))
    candidate = {"model": body["model"], "prompt_version": body["prompt_version"]}
    baseline = body.get("baseline")
    if baseline:  # only the fields the service knows travel on
        baseline = {"model": baseline["model"], "prompt_version": baseline["prompt_version"]}
    sides = [("candidate", candidate)] + ([("baseline", baseline)] if baseline else [])
    faults = (simulator.fault(body["dataset"], side["model"], side["prompt_version"]) for _, side in sides)
    return {
        "dataset": body["dataset"], "prompt_id": body["prompt_id"], "evaluators": list(dict.fromkeys(body["evaluators"])),
        "candidate": candidate, "baseline": baseline or None, "example_count": count,
        "run_seconds": float(simulator.config["run_seconds"]), "seed": simulator.seed,
        "max_error_rate": float(simulator.config["max_error_rate"]), "fault": next((reason for reason in faults if reason), None),
        "profiles": {name: simulator.profile(side["model"], side["prompt_version"], body["dataset"]).to_json() for name, side in sides},
    }  # fmt: skip


@dataclass(frozen=True)
class Settled:
    """How a run ended: ``complete`` with its digest and paired examples, or ``fail`` with a reason."""

    state: str
    reason: str | None = None
    digest: str | None = None
    examples: list[dict[str, Any]] | None = None


def settle(run: dict[str, Any]) -> Settled:
    """Score a planned run: deterministic in the run, so settling it again gives the same results."""
    if run["fault"]:
        return Settled("fail", reason=run["fault"])
    dataset, seed = run["dataset"], run["seed"]
    ids = [example.id for example in datasets.load(dataset)]
    scored: dict[str, list[ExampleScores]] = {}
    for side, profile in run["profiles"].items():
        model, version = run[side]["model"], run[side]["prompt_version"]
        scored[side] = [score_with(Profile.from_fields(profile), seed, dataset, i, model, version) for i in ids]
    for side, scores in scored.items():
        errored = sum(s.error for s in scores)
        if errored / len(scores) > run["max_error_rate"]:
            reason = (f"{side} {run[side]['model']} errored on {errored} of {len(scores)} examples "
                      f"({errored / len(scores):.0%}), above the {run['max_error_rate']:.0%} tolerated (max_error_rate)")  # fmt: skip
            return Settled("fail", reason=reason)
    metrics = (*run["evaluators"], "latency_ms", "tokens", "error")

    def measured(side: str, n: int) -> dict[str, Any] | None:
        return {m: getattr(scored[side][n], m) for m in metrics} if side in scored else None

    examples = [{"example_id": i, "candidate": measured("candidate", n), "baseline": measured("baseline", n)} for n, i in enumerate(ids)]
    canonical = json.dumps(examples, sort_keys=True, separators=(",", ":")).encode()
    return Settled("complete", digest=f"sha256:{hashlib.sha256(canonical).hexdigest()}", examples=examples)


def results_document(run: dict[str, Any], digest: str, examples: list[dict[str, Any]]) -> dict[str, Any]:
    """A complete run's results, the shape every harness of the sandbox reports them in."""
    summary = {k: run[k] for k in ("dataset", "prompt_id", "evaluators", "candidate", "baseline")}
    return {"state": "complete", **summary, "digest": digest, "examples": examples}


class ExperimentsApi:
    SCHEMA = SCHEMA

    def __init__(self, store: Store) -> None:
        self.store = store

    def register(self, router: Router) -> None:
        router.add("POST", f"{EXPERIMENTS}/register", self.register_experiment)
        router.add("GET", f"{EXPERIMENTS}/state", self.state)
        router.add("GET", f"{EXPERIMENTS}/results", self.results)
        router.add("GET", f"{BASE}/-/config", self.get_config)
        router.add("PUT", f"{BASE}/-/config", self.put_config)

    # -- configuration -----------------------------------------------------------------------

    def _simulator(self, overrides: dict[str, Any] | None = None) -> ModelSimulator:
        try:
            return configured_simulator(self.store, overrides)
        except BAD_CONFIG as err:
            raise _detail(422, f"invalid simulator configuration: {err}") from None

    def get_config(self, req: Request) -> Response:
        return json_response(self._simulator().config)

    def put_config(self, req: Request) -> Response:
        simulator = self._simulator(req.body)  # refuses a bad configuration before it is kept
        self.store.insert("experiment_config", {"overrides": req.body, "at": now_iso()})
        return json_response(simulator.config)

    # -- experiments -------------------------------------------------------------------------

    def register_experiment(self, req: Request) -> Response:
        errors = validate(req.body)
        if errors:
            raise _detail(422, errors)
        body = req.body
        simulator = self._simulator()
        try:
            run = plan_run(body, simulator)
        except datasets.DatasetNotFound:
            raise _detail(404, f"Dataset '{body['dataset']}' not found") from None
        experiment = {
            "request_id": uuid.uuid4().hex,  # a new run for every register, as the real service does
            **run, "state": "running", "reason": None, "created_at": now_iso(), "finished_at": None, "started": time.time(),
        }
        self.store.insert("experiments", experiment, request_id=experiment["request_id"])
        return json_response({"request_id": experiment["request_id"]})

    def state(self, req: Request) -> Response:
        experiment = self._settled(self._request_id(req))
        return json_response(self._state_json(experiment, req.base_url))

    def results(self, req: Request) -> Response:
        experiment = self._settled(self._request_id(req))
        if experiment["state"] != "complete":
            reason = f": {experiment['reason']}" if experiment["reason"] else ""
            raise _detail(409, f"Experiment is {experiment['state']}{reason}", state=experiment["state"])
        stored = self.store.find("experiment_results", request_id=experiment["request_id"])
        assert stored is not None, "a complete experiment has its results"
        document = results_document(experiment, stored["digest"], stored["examples"])
        return json_response({"request_id": experiment["request_id"], **document})

    # -- the run -----------------------------------------------------------------------------

    def _request_id(self, req: Request) -> str:
        request_id = req.get("request_id")
        if not request_id:
            raise _detail(422, [{"loc": ["query", "request_id"], "msg": "Field required", "type": "missing"}])
        return str(request_id)

    def _settled(self, request_id: str) -> dict[str, Any]:
        """The experiment, finished first if its time is up. Under the store's lock, so two polls
        at once settle it once, and every later poll reads the same outcome."""
        with self.store.lock:
            experiment = self.store.find("experiments", request_id=request_id)
            if experiment is None:
                raise _detail(404, f"Experiment '{request_id}' not found")
            if experiment["state"] == "running" and time.time() >= experiment["started"] + experiment["run_seconds"]:
                experiment = self._finish(experiment)
            return experiment

    def _finish(self, experiment: dict[str, Any]) -> dict[str, Any]:
        settled = settle(experiment)
        outcome: dict[str, Any] = {"finished_at": now_iso(), "state": settled.state, "reason": settled.reason}
        if settled.state == "complete":
            # If-absent: a process stopped between this write and the state's leaves the results in place,
            # and the next poll settles the run again on the same (deterministic) results.
            results = {"digest": settled.digest, "examples": settled.examples}
            self.store.insert_if_absent("experiment_results", results, request_id=experiment["request_id"])
            outcome["digest"] = settled.digest
        return self.store.update("experiments", {**experiment, **outcome})

    def _state_json(self, experiment: dict[str, Any], base_url: str) -> dict[str, Any]:
        request_id = experiment["request_id"]
        keys = ("request_id", "state", "reason", "dataset", "prompt_id", "evaluators", "candidate", "baseline", "example_count",
                "created_at", "finished_at")  # fmt: skip
        answer = {k: experiment[k] for k in keys}
        if experiment["state"] == "complete":
            answer["digest"] = experiment["digest"]
            answer["results_url"] = f"{base_url}{EXPERIMENTS}/results?request_id={request_id}"
        return answer
