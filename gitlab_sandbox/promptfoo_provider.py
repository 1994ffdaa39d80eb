"""A promptfoo Python provider that plays the models under evaluation with the sandbox's simulator.

promptfoo runs ``call_api`` once per (provider, test). The provider's ``config`` names the side's
``model`` and ``prompt_version`` (and may name the ``dataset``); the test's ``vars`` carry the
``example_id`` (and the ``dataset``, the ``reference``). ``ModelSimulator().score`` gives what a
harness would have measured on that example, the same draw the sandbox's experiment service makes
for the same (dataset, example, model, prompt version) under the same configuration (the defaults
and ``$GITLAB_SANDBOX_EVALUATION_CONFIG``; a running sandbox's ``PUT /-/config`` does not reach
here). This provider turns it into a model's answer:

- an errored example is a provider error (promptfoo records it; no assertion runs);
- the answer is the reference itself when the simulator says it matched exactly, else a stand-in;
- the simulated judge scores and similarity follow as one trailing HTML comment, the annotation
  ``<!-- simulated {...} -->``, which ``promptfoo_grader.js`` (the graders' stand-in) reads back; the
  exact-match check compares the answer without it;
- the call takes the simulated latency times ``GITLAB_SANDBOX_PROMPTFOO_LATENCY_SCALE`` (default 1),
  so promptfoo's own ``latencyMs`` measures it, plus the ~0.1 s promptfoo spends starting a
  Python process per call; a scale below 1 makes a run quicker and every latency smaller, both
  sides alike.

Loaded by promptfoo from its file path, so the imports are absolute and the sandbox must be
importable by the Python promptfoo runs (``PROMPTFOO_PYTHON``).
"""

from __future__ import annotations

import json
import os
import time
from functools import lru_cache
from typing import Any

from gitlab_sandbox import datasets
from gitlab_sandbox.model_simulator import ExampleScores, ModelSimulator, load_config

LATENCY_SCALE_ENV = "GITLAB_SANDBOX_PROMPTFOO_LATENCY_SCALE"
ANNOTATION = "<!-- simulated "
JUDGES = ("correctness", "readability", "comprehensiveness")


@lru_cache(maxsize=1)
def simulator() -> ModelSimulator:
    """The simulator as the sandbox configures it: defaults, then ``$GITLAB_SANDBOX_EVALUATION_CONFIG``."""
    return ModelSimulator(load_config())


def answer(scores: ExampleScores, reference: str, model: str, prompt_version: str) -> str:
    """A model's answer carrying its simulated scores: the reference on an exact match, else a stand-in."""
    text = reference if scores.exact_match else f"(an answer by {model} with prompt {prompt_version}, not the reference)"
    verdict = {name: getattr(scores, name) for name in (*JUDGES, "similarity", "exact_match")}
    return f"{text}\n{ANNOTATION}{json.dumps(verdict, sort_keys=True)} -->"


def call_api(prompt: str, options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    config = options.get("config") or {}
    test_vars = (context or {}).get("vars") or {}
    dataset = config.get("dataset") or test_vars.get("dataset")
    named = (config.get("model"), config.get("prompt_version"), dataset, test_vars.get("example_id"))
    if not all(isinstance(value, str) and value for value in named):
        return {"error": "the sandbox provider needs config.model, config.prompt_version, a dataset and vars.example_id"}
    model, prompt_version, dataset, example_id = (str(value) for value in named)
    sim = simulator()
    fault = sim.fault(dataset, model, prompt_version)
    if fault:
        return {"error": f"simulated provider fault: {fault}"}
    reference = test_vars.get("reference")
    if not isinstance(reference, str):
        try:
            reference = next((e.reference for e in datasets.load(dataset) if e.id == example_id), "")
        except datasets.DatasetNotFound:
            reference = ""
    scores = sim.score(dataset, example_id, model, prompt_version)
    time.sleep(scores.latency_ms / 1000 * _latency_scale())
    if scores.error:
        return {"error": f"simulated provider error: {model} failed on {example_id}"}
    return {
        "output": answer(scores, reference, model, prompt_version),
        "tokenUsage": {"total": scores.tokens, "completion": scores.tokens, "prompt": 0},
        "metadata": {"simulated_latency_ms": scores.latency_ms},
    }


def _latency_scale() -> float:
    try:
        scale = float(os.environ.get(LATENCY_SCALE_ENV, "1"))
    except ValueError:
        return 1.0
    return scale if 0.0 <= scale <= 1000.0 else 1.0
