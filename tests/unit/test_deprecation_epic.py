"""The deprecation epic's title and description (pure)."""

from __future__ import annotations

from datetime import date

from model_migration.domain.deprecation import backward_plan
from model_migration.domain.deprecation_epic import epic_body, epic_title
from tests.unit.test_deprecation_plan import CATALOG, GOOD, ON_SONNET_37, SONNET_37


def test_the_title_names_the_replacement_or_tbd() -> None:
    retiring, sonnet_45 = CATALOG.model(SONNET_37), CATALOG.model("claude_sonnet_4_5_20250929")
    assert epic_title(retiring, None) == f"Replace discontinued {retiring.name} with TBD"
    assert epic_title(retiring, sonnet_45) == f"Replace discontinued {retiring.name} with {sonnet_45.name}"


def test_the_body_has_the_timeline_recommendation_features_plan_and_calendar() -> None:
    plan = backward_plan(SONNET_37, GOOD.cutoff, ON_SONNET_37, today=date(2025, 11, 1))
    recommended = CATALOG.model("claude_sonnet_4_5_20250929")
    body = epic_body(GOOD, plan, CATALOG.model(SONNET_37), recommended, tuple(CATALOG.model(c) for c in GOOD.candidates))
    assert "Internal due date (this epic): **2026-01-22**" in body and "Provider cutoff: **2026-02-19**" in body
    assert GOOD.announcement_url in body and f"`{recommended.gitlab_identifier}`" in body
    for feature in ON_SONNET_37:
        row = next(line for line in body.splitlines() if line.startswith(f"| {feature.title} |"))
        assert f"@{feature.dri}" in row and feature.group in row and "2026-01-13" in row  # implement by the evaluation's latest start
    assert "reminder T−14d" in body and "~\"severity::2\"" in body
