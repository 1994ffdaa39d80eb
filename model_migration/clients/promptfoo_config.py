"""What the promptfoo harness asks promptfoo to run, and how it reads the answer back.

``promptfoo_config`` builds a run's ``promptfooconfig.yaml`` (as a dict); ``paired_examples``
turns promptfoo's ``results.json`` into the gate's ``PairedExample``s. Both are pure, so the
shape of a run is tested without the CLI. ``model_migration.clients.promptfoo_harness`` says
why the config looks as it does.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_migration.clients.experiments import ExperimentRequest, HarnessError
from model_migration.domain.errors import ErrorType
from model_migration.domain.gate import JUDGE_METRICS, SIMILARITY, PairedExample, SideResult
from model_migration.domain.models import ModelDefinition

EXACT_MATCH = "exact_match"
SIDES = ("baseline", "candidate")
#: ``<feature>.<name>.<version>``; anything else could be a path and is never opened.
DATASET_NAME = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+\.v\d+$")
#: promptfoo's ``ResultFailureReason.ERROR``: the provider failed, no assertion ran.
PROVIDER_ERROR = 2
#: Judges grade 1–4; promptfoo scores run 0–1, so a grade travels as ``(grade - 1) / 3``.
JUDGE_LOW, JUDGE_HIGH = 1.0, 4.0
_GRADING = (
    "Request:\n{{input}}\n\nReference answer:\n{{reference}}\n\n"
    "Grade it from 1 to 4 and reply with score = (grade - 1) / 3 and pass = (grade >= 3)."
)
RUBRICS = {
    "correctness": "Judge the correctness of the output as an answer to the request: 1 wrong or harmful, 2 partly wrong, "
    "3 correct with small gaps, 4 fully correct.",
    "readability": "Judge the readability of the output: 1 unreadable, 2 hard to follow, 3 clear, 4 clear, concise and well structured.",
    "comprehensiveness": "Judge the comprehensiveness of the output against the reference answer: 1 misses the point, "
    "2 misses important parts, 3 covers the essentials, 4 covers everything the reference does.",
}
#: A provider may end its output with one HTML comment of annotations (the sandbox's simulator
#: does); it is not part of the answer an exact match compares.
ANSWER_ONLY = r"String(output).replace(/\s*<!--[\s\S]*?-->\s*$/, '')"
#: GitLab's AI gateway providers, as promptfoo names them: ``<prefix><params.model>``.
PROVIDER_PREFIXES = {
    "anthropic": "anthropic:messages:", "vertex_ai": "vertex:", "mistral": "mistral:", "fireworks_ai": "fireworks:",
    "bedrock": "bedrock:", "openai": "openai:chat:",
}


@dataclass(frozen=True)
class Example:
    id: str
    input: str
    reference: str


def read_dataset(directory: Path | None, name: str) -> list[Example]:
    """The examples of ``<directory>/<name>.jsonl``; refused for an unknown or unreadable dataset."""
    if directory is None:
        message = "the promptfoo harness has no datasets directory: set MODEL_MIGRATION_DATASETS_DIR"
        raise HarnessError(message, type=ErrorType.HARNESS_REFUSED)
    path = directory / f"{name}.jsonl"
    if not DATASET_NAME.match(name) or not path.is_file():
        raise HarnessError(f"dataset {name!r} not found in {directory}", type=ErrorType.HARNESS_REFUSED)
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        examples = [Example(id=str(row["id"]), input=str(row["input"]), reference=str(row.get("reference", ""))) for row in rows]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise HarnessError(f"dataset {name!r} is unreadable: {type(err).__name__}: {err}", type=ErrorType.HARNESS_REFUSED) from None
    if not examples:
        raise HarnessError(f"dataset {name!r} has no examples", type=ErrorType.HARNESS_REFUSED)
    return examples


def provider_id(model: ModelDefinition) -> str:
    """The promptfoo provider that serves a catalog model itself, e.g. ``anthropic:messages:claude-sonnet-4-20250514``."""
    return PROVIDER_PREFIXES.get(model.provider, f"{model.provider}:") + model.params.model


def promptfoo_config(
    request: ExperimentRequest,
    examples: Sequence[Example],
    *,
    models: Mapping[str, ModelDefinition],
    provider: str | None = None,
    grader: str | None = None,
    embedder: str | None = None,
) -> dict[str, Any]:
    """The run's config: baseline and candidate providers, one test per example, one assertion per evaluator."""
    sides = {"baseline": (request.baseline_model, request.baseline_prompt_version), "candidate": (request.model, request.prompt_version)}
    providers = []
    for label, (model, version) in sides.items():
        config: dict[str, Any] = {"model": model, "prompt_id": request.prompt_id, "prompt_version": version, "dataset": request.dataset}
        if provider is None:
            definition = models.get(model)
            if definition is None:
                raise HarnessError(
                    f"no promptfoo provider for model {model!r}: it is not in the catalog (set MODEL_MIGRATION_PROMPTFOO_PROVIDER)",
                    type=ErrorType.HARNESS_REFUSED,
                )
            config |= {"temperature": definition.params.temperature, "max_tokens": definition.params.max_tokens}
        providers.append({"id": provider or provider_id(models[model]), "label": label, "config": config})
    default_test: dict[str, Any] = {"assert": [_assertion(name) for name in request.evaluators]}
    grading = {kind: value for kind, value in (("text", grader), ("embedding", embedder or grader)) if value}
    if grading:
        default_test["options"] = {"provider": grading}
    return {
        "description": f"{request.dataset}: {request.model}@{request.prompt_version} against {request.baseline_model}@"
        f"{request.baseline_prompt_version}",
        "prompts": [{"label": request.prompt_id, "raw": "{{input}}"}],
        "providers": providers,
        "defaultTest": default_test,
        "tests": [
            {"description": e.id, "vars": {"example_id": e.id, "input": e.input, "reference": e.reference}} for e in examples
        ],
    }


def _assertion(evaluator: str) -> dict[str, Any]:
    if evaluator in JUDGE_METRICS:
        return {"type": "llm-rubric", "metric": evaluator, "value": f"{RUBRICS[evaluator]}\n\n{_GRADING}", "threshold": 2 / 3}
    if evaluator == SIMILARITY:
        return {"type": "similar", "metric": evaluator, "value": "{{reference}}", "threshold": 0.8}
    if evaluator == EXACT_MATCH:
        return {"type": "equals", "metric": evaluator, "value": "{{reference}}", "transform": ANSWER_ONLY}
    raise HarnessError(f"the promptfoo harness has no evaluator {evaluator!r}", type=ErrorType.HARNESS_REFUSED)


def paired_examples(document: object, evaluators: Iterable[str], what: str) -> tuple[PairedExample, ...]:
    """promptfoo's ``results.json`` as the gate's examples: each test's baseline and candidate rows,
    paired by ``testIdx`` and checked by the example id, with each score back on its metric's scale."""
    rows = document.get("results", {}).get("results") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise _malformed(what, "no results.results list")
    wanted = tuple(evaluators)
    tests: dict[int, dict[str, dict[str, Any]]] = {}
    for row in rows:
        label = row.get("provider", {}).get("label") if isinstance(row, dict) else None
        if label not in SIDES or not isinstance(row.get("testIdx"), int):
            raise _malformed(what, f"a row with no baseline or candidate label or no testIdx: {str(row)[:120]}")
        if label in tests.setdefault(row["testIdx"], {}):
            raise _malformed(what, f"two {label} rows for test {row['testIdx']}")
        tests[row["testIdx"]][label] = row
    paired = []
    for index in sorted(tests):
        sides = tests[index]
        missing = [side for side in SIDES if side not in sides]
        if missing:
            raise _malformed(what, f"test {index} has no {missing[0]} row to pair with")
        ids = {_example_id(sides[side]) for side in SIDES}
        example_id = ids.pop()
        if ids or example_id is None:
            raise _malformed(what, f"test {index}'s rows name different examples, or none: {sorted(map(str, {example_id, *ids}))}")
        baseline, candidate = (_side(sides[side], wanted) for side in SIDES)
        paired.append(PairedExample(example_id=example_id, baseline=baseline, candidate=candidate))
    return tuple(paired)


def _example_id(row: dict[str, Any]) -> str | None:
    test_vars = row.get("vars") or row.get("testCase", {}).get("vars") or {}
    value = test_vars.get("example_id")
    return str(value) if value is not None else None


def _side(row: dict[str, Any], evaluators: tuple[str, ...]) -> SideResult:
    named = row.get("namedScores") or {}
    scores = {}
    for name in evaluators:
        value = _on_scale(name, named.get(name))
        if value is not None:
            scores[name] = value
    errored = row.get("failureReason") == PROVIDER_ERROR or bool((row.get("response") or {}).get("error"))
    latency = row.get("latencyMs")
    return SideResult(
        scores={} if errored else scores, latency_ms=float(latency) if isinstance(latency, (int, float)) and latency >= 0 else 0.0,
        error=errored,
    )


def _on_scale(metric: str, score: object) -> float | None:
    """A promptfoo score (0–1) on the metric's own scale; None for a missing or impossible one."""
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
        return None
    if metric in JUDGE_METRICS:
        grade = round(JUDGE_LOW + (JUDGE_HIGH - JUDGE_LOW) * score, 6)
        return grade if JUDGE_LOW <= grade <= JUDGE_HIGH else None
    if metric == SIMILARITY:
        return round(score, 6) if -1.0 <= score <= 1.0 else None
    if metric == EXACT_MATCH:
        return 1.0 if score >= 1.0 else 0.0
    return float(score)


def _malformed(what: str, detail: str) -> HarnessError:
    return HarnessError(f"{what} has malformed promptfoo results: {detail}", type=ErrorType.HARNESS_REFUSED)
