"""``model-migration plan``: a deprecation's backward plan and calendar, printed without starting anything."""

from __future__ import annotations

import json

import pytest

from tests.cli.run import cli, env

ARGS = ("plan", "--model", "claude_3_7_sonnet_20250219", "--cutoff", "2026-02-19")


def test_plan_shows_the_features_due_date_latest_starts_and_calendar() -> None:
    """The acceptance example, as of a day when the cutoff was still ahead; no Temporal is needed (none listens)."""
    done = cli(*ARGS, "--as-of", "2025-11-01", environ=env(COLUMNS="200"))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "due 2026-01-22 (28 days before)" in text and "feasible" in text
    for title in ("Duo Chat", "Code Generation", "Code Explanation"):
        assert title in text
    assert "2026-01-13" in text and "2026-01-15" in text and "2026-01-21" in text  # evaluate, roll out, clean up by
    assert "priority::2" in text and "severity::2" in text


def test_plan_json_and_a_short_lead() -> None:
    done = cli(*ARGS, "--as-of", "2026-01-28", "--lead-weeks", "2", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["due"] == "2026-02-05" and body["feasible"] is False and body["shortfall_days"] > 0
    assert body["calendar"][0]["on"] == "2026-01-28" and body["calendar"][0]["name"].startswith("late mode")
    chat = next(f for f in body["features"] if f["feature"] == "duo_chat")
    assert [w["stage"] for w in chat["windows"]] == ["implement", "evaluate", "rollout", "cleanup"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--lead-weeks", "5"), "outside GitLab's 2–4 weeks"),
        (("--as-of", "someday"), "bad date"),
    ],
)
def test_plan_refusals_are_one_line(args: tuple[str, ...], expected: str) -> None:
    done = cli(*ARGS, *args)
    assert done.returncode == 2 and expected in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("model", "expected"), [("gpt-17", "unknown model 'gpt-17'"), ("code_gecko_002", "no catalog feature uses")])
def test_plan_refuses_a_model_without_features(model: str, expected: str) -> None:
    done = cli("plan", "--model", model, "--cutoff", "2027-02-19")
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr
