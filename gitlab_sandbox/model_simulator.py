"""A seeded stand-in for a model under evaluation: it scores any (model, prompt version) on any example.

Nothing is generated; the simulator draws the scores an evaluation harness would have measured.
Every draw comes from ``random.Random`` seeded with a sha256 of (sandbox seed, dataset, example,
model, prompt version), so a result is the same in every process, for every harness that asks.

How a score is made, per example:

- *difficulty* and *length* come from the example alone (seed, dataset, example id). Baseline
  and candidate share them, so their results are paired, as in a real evaluation: a hard
  example is hard for both.
- a latent quality ``z = BASE + quality - difficulty + noise``, where ``quality`` and ``noise``
  come from the (model, prompt version)'s profile;
- the LLM judge's three scores bucket ``z`` (plus a little judge noise) into 1–4; the
  similarity to the reference is a logistic of ``z`` in (0.55, 1); exact match is ``z`` above a
  high bar; latency is log-normal around the profile's median, scaled by the example's length.

Profiles are data (``DEFAULT_CONFIG``, a JSON file, or overrides), never code paths. A profile
entry is keyed ``[<dataset>:]<model>[@<prompt version>]``; the most specific key wins, then
``default_profile``. Its value names a preset, or is a dict of fields, optionally based on one
(``{"preset": "fail", "latency_ms": 2000}``). Fields: ``quality`` (latent shift; 0 is the
baseline), ``noise`` (per-example spread of the model), ``latency_ms`` (median),
``latency_sigma`` (log-normal spread), ``tokens`` (median output tokens) and ``error_rate``
(the chance that an example errors: no scores, only latency).

Calibrated on the shipped datasets (240 examples) against ``baseline``, with the gate's default
margins (0.2 judge points, 0.03 similarity, 250 ms): ``pass`` passes the whole gate in every
(dataset, prompt version) draw tried; ``fail``'s correctness interval lies below -margin, and
about 40 % of its answers are poor; ``inconclusive`` (slightly worse, a little noisier) leaves the
gate inconclusive in about two draws of three, the rest falling either side, as sampling does;
``erroring`` errs on about 30 % of examples, above the service's ``max_error_rate``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from gitlab_sandbox import datasets

#: Points the operator at a JSON file of overrides for the sandbox it starts.
CONFIG_ENV = "GITLAB_SANDBOX_EVALUATION_CONFIG"

# The latent scale: the baseline's mean quality and where the judge's buckets start. Chosen so
# a baseline has about 12 % poor answers (any of the three judges at 1–2, or a similarity under
# 0.8, as the gate counts them), comfortably under GitLab's 20 % bar.
BASE = 2.2
JUDGE_CUTS = (-0.4, 0.6, 1.9)  # z below each cut scores 1, 2, 3; above the last, 4
JUDGE_NOISE = 0.35
EXACT_BAR = 3.0

DEFAULT_CONFIG: dict[str, Any] = {
    "seed": 20250121,
    # How long an experiment runs before its state turns complete or fail.
    "run_seconds": 1.5,
    # The share of errored examples (on either side) above which a whole run fails.
    "max_error_rate": 0.1,
    "presets": {
        "baseline": {"quality": 0.0, "noise": 0.5, "latency_ms": 1200.0, "latency_sigma": 0.25, "tokens": 350, "error_rate": 0.0},
        "pass": {"quality": 0.1, "latency_ms": 1100.0},
        "fail": {"quality": -1.0},
        "inconclusive": {"quality": -0.2, "noise": 0.6},
        "erroring": {"error_rate": 0.3},
        "slow": {"latency_ms": 2600.0, "latency_sigma": 0.45},
    },
    "default_profile": "baseline",
    "profiles": {
        # The catalog's current models play the baseline; its migration targets pass.
        "claude_sonnet_4_20250514": "pass",
        "claude_sonnet_4_5_20250929": "pass",
        "claude_sonnet_4_5_vertex": "pass",
        "claude_haiku_4_5_20251001": {"preset": "pass", "latency_ms": 700.0},
        "codestral_2501_vertex": {"preset": "baseline", "latency_ms": 400.0, "tokens": 60},
        "code_gecko_002": {"preset": "fail", "latency_ms": 500.0, "tokens": 60},
        # Stand-in models, one per gate outcome, for tests and the demo.
        "sim-baseline": "baseline",
        "sim-pass": "pass",
        "sim-fail": "fail",
        "sim-inconclusive": "inconclusive",
        "sim-erroring": "erroring",
        "sim-slow": "slow",
    },
    # Runs that fail whatever their scores: [{"dataset"?, "model"?, "prompt_version"?, "reason"}].
    "faults": [],
}


@dataclass(frozen=True)
class Profile:
    quality: float = 0.0
    noise: float = 0.5
    latency_ms: float = 1200.0
    latency_sigma: float = 0.25
    tokens: int = 350
    error_rate: float = 0.0

    @classmethod
    def from_fields(cls, values: Mapping[str, Any], base: Profile | None = None) -> Profile:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:  # a misspelt field would otherwise be ignored, and the profile silently wrong
            raise ValueError(f"unknown profile fields {unknown}; known: {sorted(known)}")
        merged = replace(base or cls(), **dict(values))
        profile = replace(
            merged,
            quality=float(merged.quality), noise=float(merged.noise), latency_ms=float(merged.latency_ms),
            latency_sigma=float(merged.latency_sigma), tokens=int(merged.tokens), error_rate=float(merged.error_rate),
        )  # fmt: skip
        if not 0.0 <= profile.error_rate <= 1.0 or profile.noise < 0 or profile.latency_ms <= 0 or profile.latency_sigma < 0:
            raise ValueError(f"profile out of range: {profile}")
        return profile

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExampleScores:
    """What a harness measured on one example. An errored example has no metric, only latency."""

    example_id: str
    correctness: int | None
    readability: int | None
    comprehensiveness: int | None
    similarity: float | None
    exact_match: int | None
    latency_ms: float
    tokens: int
    error: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def merge_config(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` over ``base``: ``presets`` and ``profiles`` merge by key, the rest replaces."""
    merged = json.loads(json.dumps(base))  # a deep copy that also proves the config is JSON
    for key, value in overrides.items():
        if key in ("presets", "profiles"):
            if not isinstance(value, Mapping):
                raise ValueError(f"{key} must be an object")
            merged[key] = {**merged.get(key, {}), **value}
        elif key in DEFAULT_CONFIG:
            merged[key] = value
        else:
            raise ValueError(f"unknown configuration key {key!r}; known: {sorted(DEFAULT_CONFIG)}")
    return merged


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The built-in defaults, then the JSON file at ``path`` (else ``$GITLAB_SANDBOX_EVALUATION_CONFIG``),
    then ``overrides``."""
    config = merge_config(DEFAULT_CONFIG, {})
    file = path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if file is not None:
        config = merge_config(config, json.loads(file.read_text(encoding="utf-8")))
    return merge_config(config, overrides or {})


def _seeded(*parts: object) -> random.Random:
    # A separator that cannot occur in the parts keeps ("a", "bc") and ("ab", "c") apart.
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _judge(z: float) -> int:
    return 1 + sum(z >= cut for cut in JUDGE_CUTS)


def score_with(profile: Profile, seed: int, dataset: str, example_id: str, model: str, prompt_version: str) -> ExampleScores:
    """The scores of one example under ``profile``: the simulator's core, deterministic in its arguments."""
    shared = _seeded(seed, dataset, example_id)
    difficulty = shared.gauss(0.0, 0.9)
    length = math.exp(shared.gauss(0.0, 0.35))

    own = _seeded(seed, dataset, example_id, model, prompt_version)
    # Every draw is taken whatever the outcome, so a change in one profile field never shifts
    # the stream the other fields read from.
    errored = own.random() < profile.error_rate
    z = BASE + profile.quality - difficulty + own.gauss(0.0, profile.noise)
    judged = [z + own.gauss(0.0, JUDGE_NOISE), 0.6 * z + 0.8 + own.gauss(0.0, JUDGE_NOISE), 0.85 * z + own.gauss(0.0, 0.45)]
    similarity = 0.55 + 0.45 / (1.0 + math.exp(-1.2 * (z + own.gauss(0.0, 0.3))))
    exact = z + own.gauss(0.0, 0.25) > EXACT_BAR
    latency = profile.latency_ms * length * math.exp(own.gauss(0.0, profile.latency_sigma))
    tokens = max(1, round(profile.tokens * length**0.8 * math.exp(own.gauss(0.0, 0.15))))
    if errored:
        return ExampleScores(example_id, None, None, None, None, None, round(latency, 1), 0, True)
    correctness, readability, comprehensiveness = (_judge(v) for v in judged)
    return ExampleScores(
        example_id, correctness, readability, comprehensiveness, round(similarity, 4), int(exact), round(latency, 1), tokens, False
    )


class ModelSimulator:
    """Plays any (model, prompt version) on any dataset example, from a configuration (see the module doc)."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = merge_config(DEFAULT_CONFIG, config or {})
        self.seed = int(self.config["seed"])
        self._presets: dict[str, Profile] = {}
        base = Profile.from_fields(self.config["presets"].get("baseline", {}))
        for name, values in self.config["presets"].items():
            self._presets[name] = Profile.from_fields(values, base)
        # Resolve every entry now, so a bad configuration fails at start, not mid-run.
        self._profiles = {key: self._resolve(spec) for key, spec in self.config["profiles"].items()}
        self._default = self._resolve(self.config["default_profile"])

    def _resolve(self, spec: str | Mapping[str, Any]) -> Profile:
        if isinstance(spec, str):
            if spec not in self._presets:
                raise ValueError(f"unknown preset {spec!r}; known: {sorted(self._presets)}")
            return self._presets[spec]
        values = dict(spec)
        preset = values.pop("preset", "baseline")
        return Profile.from_fields(values, self._resolve(preset))

    def profile(self, model: str, prompt_version: str, dataset: str = "") -> Profile:
        """The most specific configured profile: dataset, model and version first; the default last."""
        keys = [f"{model}@{prompt_version}", model]
        if dataset:
            keys = [f"{dataset}:{key}" for key in keys] + keys
        return next((self._profiles[key] for key in keys if key in self._profiles), self._default)

    def fault(self, dataset: str, model: str, prompt_version: str) -> str | None:
        """The reason a run of this (dataset, model, version) is configured to fail, if one is."""
        wanted = {"dataset": dataset, "model": model, "prompt_version": prompt_version}
        for rule in self.config["faults"]:
            if all(rule.get(key) in (None, value) for key, value in wanted.items()):
                return str(rule.get("reason") or "injected fault")
        return None

    def score(self, dataset: str, example_id: str, model: str, prompt_version: str) -> ExampleScores:
        profile = self.profile(model, prompt_version, dataset)
        return score_with(profile, self.seed, dataset, example_id, model, prompt_version)

    def run(self, dataset: str, model: str, prompt_version: str, example_ids: Sequence[str] | None = None) -> list[ExampleScores]:
        """Every example of ``dataset`` (or those named), in dataset order."""
        ids = example_ids if example_ids is not None else [example.id for example in datasets.load(dataset)]
        return [self.score(dataset, example_id, model, prompt_version) for example_id in ids]
