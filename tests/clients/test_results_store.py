"""The local results store: only a digest travels, and what comes back is what went in."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_migration.clients.results_store import LocalResultsStore, ResultsStoreError
from model_migration.domain.errors import ErrorType
from model_migration.domain.gate import GateConfig, MetricSpec, PairedExample, SideResult, evaluate_gate, examples_digest


def examples(n: int = 3, shift: float = 0.0) -> tuple[PairedExample, ...]:
    return tuple(
        PairedExample(
            example_id=f"ex-{i:03d}",
            baseline=SideResult(scores={"correctness": 3.0, "similarity": 0.9}, latency_ms=100.0 + i),
            candidate=SideResult(scores={"correctness": 3.0 + shift, "similarity": 0.91}, latency_ms=95.0 + i),
        )
        for i in range(n)
    )


def test_put_then_get_round_trips_under_the_gates_digest(tmp_path: Path) -> None:
    """Stored examples come back equal, under the digest the gate reports."""
    store = LocalResultsStore(tmp_path / "results")
    digest = store.put(examples())
    assert digest == examples_digest(examples())
    assert store.get(digest) == examples()


def test_the_digest_is_the_gates_whatever_the_harness_order(tmp_path: Path) -> None:
    """Examples in any order are stored under the digest the gate reports for them."""
    store = LocalResultsStore(tmp_path)
    shuffled = tuple(reversed(examples(5)))
    digest = store.put(shuffled)
    config = GateConfig(metrics=(MetricSpec(name="correctness", margin=0.2), MetricSpec(name="similarity", margin=0.03)),
                        min_examples=1, resamples=100)
    assert digest == evaluate_gate(shuffled, config).digest
    assert store.get(digest) == examples(5)


def test_the_same_examples_are_stored_once(tmp_path: Path) -> None:
    """A retried activity storing the same results leaves one file and the same digest."""
    store = LocalResultsStore(tmp_path)
    assert store.put(examples()) == store.put(list(examples()))
    assert len(list(tmp_path.glob("*.json"))) == 1
    assert store.put(examples(shift=0.5)) != store.put(examples())


def test_changed_or_cut_results_are_refused(tmp_path: Path) -> None:
    """A file edited or cut short is refused, never judged."""
    store = LocalResultsStore(tmp_path)
    digest = store.put(examples())
    path = tmp_path / f"{digest}.json"
    path.write_bytes(path.read_bytes().replace(b"3.0", b"4.0", 1))
    with pytest.raises(ResultsStoreError, match="do not match their digest"):
        store.get(digest)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ResultsStoreError, match="unreadable"):
        store.get(digest)


def test_unknown_or_path_like_digests_are_refused(tmp_path: Path) -> None:
    """Only a stored digest is read; anything path-like is refused before the file system sees it."""
    store = LocalResultsStore(tmp_path)
    with pytest.raises(ResultsStoreError, match="no evaluation results") as missing:
        store.get("0" * 64)
    assert missing.value.type == ErrorType.HARNESS_ERRORS  # another worker's results: the evaluation runs the harness again
    for bad in ("../etc/passwd", "abc", "0" * 63 + "/"):
        with pytest.raises(ResultsStoreError, match="is not a results digest") as refused:
            store.get(bad)
        assert refused.value.type == ErrorType.HARNESS_REFUSED
