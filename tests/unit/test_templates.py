"""Markdown rendering of the tracking issue, the rollout plans and the notes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from model_migration.domain import gateway
from model_migration.domain.models import FeatureSpec, Maturity, ModelDefinition, ModelDeprecation, ModelParams
from model_migration.domain.stages import FeatureStage
from model_migration.domain.templates import (
    FeatureRow,
    command_note,
    compatibility_note,
    escalation_note,
    humanize_delta,
    rollout_issue_body,
    rollout_issue_title,
    summary_note,
    tracking_issue_body,
    tracking_issue_title,
    transition_note,
)

NEW = ModelDefinition(
    name="Claude Sonnet 4.5",
    gitlab_identifier="claude_sonnet_4_5_20250929",
    provider="anthropic",
    model="claude-sonnet-4-5",
    version="20250929",
    max_context_tokens=200_000,
    family=["claude_4"],
    cost_indicator="$$$",
    params=ModelParams(model="claude-sonnet-4-5-20250929"),
)
OLD = ModelDefinition(
    name="Claude 3.7 Sonnet",
    gitlab_identifier="claude_3_7_sonnet_20250219",
    provider="anthropic",
    model="claude-3-7-sonnet",
    version="20250219",
    max_context_tokens=200_000,
    params=ModelParams(model="claude-3-7-sonnet-20250219"),
    deprecation=ModelDeprecation(deprecation_date=date(2025, 10, 28), retirement_date=date(2026, 2, 19)),
)


def feature(name: str, title: str, maturity: Maturity, dri: str, manager: str = "mgr") -> FeatureSpec:
    return FeatureSpec(
        name=name,
        title=title,
        feature_setting=name,
        prompt_id=f"{name}/base_prompt",
        maturity=maturity,
        group=f"group::{name.replace('_', ' ')}",
        dri=dri,
        manager=manager,
        current_model=OLD.gitlab_identifier,
        dataset=f"{name}.main.1",
        flag=f"{name}_claude_sonnet_4_5",
    )


CHAT = feature("duo_chat", "Duo Chat", Maturity.GA, "achen")
CODEGEN = feature("code_generation", "Code Generation", Maturity.BETA, "bdiaz")
TESTS = feature("generate_tests", "Test Generation", Maturity.GA, "cfox")

SECTIONS = [
    "## Overview",
    "## Features to Update",
    "## Required Changes",
    "## Technical Details",
    "## Implementation Steps",
    "## Timeline",
    "## References",
    "## Proposed Solution",
]
AT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def rows(chat_stage: FeatureStage = FeatureStage.IMPLEMENT) -> list[FeatureRow]:
    return [
        FeatureRow(
            feature=CHAT,
            stage=chat_stage,
            eta=date(2026, 2, 1),
            issue_url="https://gitlab.example.com/ai/migrations/-/issues/12",
        ),
        FeatureRow(feature=CODEGEN),
        FeatureRow(feature=TESTS, stage=FeatureStage.EVALUATE, eta=date(2026, 2, 3)),
    ]


def body(feature_rows: list[FeatureRow] | None = None, **overrides: object) -> str:
    args: dict[str, object] = {
        "migration_id": "migration:anthropic/claude-sonnet-4-5/20250929",
        "model": NEW,
        "replaced": OLD,
        "rows": rows() if feature_rows is None else feature_rows,
        "target_date": date(2026, 2, 1),
    }
    args.update(overrides)
    return tracking_issue_body(**args)  # type: ignore[arg-type]


def section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    following = text.find("\n## ", start + len(heading))
    return text[start : following if following != -1 else len(text)]


def table_lines(text: str, header: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(header)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines[start:end]


def test_tracking_title_names_provider_model_and_version() -> None:
    """The tracking title is "AI Model Migration - <Provider>/<Model>/<Version>"."""
    assert tracking_issue_title(NEW) == "AI Model Migration - Anthropic/Claude Sonnet 4.5/20250929"


def test_tracking_body_has_every_section_in_order() -> None:
    """Every template section is a ## heading, in the template's order, before the table."""
    text = body()
    positions = [text.index(heading + "\n") for heading in SECTIONS]
    assert positions == sorted(positions)
    assert text.index("| Feature | DRI | ETA | Issue Link |") > positions[-1]


def test_tracking_body_groups_features_by_maturity() -> None:
    """Features appear under their maturity's ### group; an empty group says None."""
    features = section(body(), "## Features to Update")
    ga, beta, experimental = (features.index(f"### {name}\n") for name in ("GA", "Beta", "Experimental"))
    assert ga < beta < experimental
    assert "Duo Chat" in features[ga:beta] and "Test Generation" in features[ga:beta]
    assert "Code Generation" in features[beta:experimental]
    assert features[experimental:].split("\n", 1)[1].strip() == "None"
    assert "`duo_chat/base_prompt`" in features and 'group::duo chat' in features


def test_feature_table_has_four_columns_and_one_row_per_feature() -> None:
    """The final table keeps exactly Feature | DRI | ETA | Issue Link, one row per feature."""
    table = table_lines(body(), "| Feature | DRI | ETA | Issue Link |")
    assert table[1] == "|---|---|---|---|"
    assert all(line.count("|") == 5 for line in table)
    assert table[2:] == [
        "| Duo Chat | @achen | 2026-02-01 | [#12](https://gitlab.example.com/ai/migrations/-/issues/12) |",
        "| Code Generation | @bdiaz | — | — |",
        "| Test Generation | @cfox | 2026-02-03 | — |",
    ]


def test_checkbox_flips_when_a_feature_is_done() -> None:
    """A done feature is checked in Features to Update and in Implementation Steps."""
    before, after = body(rows(FeatureStage.ROLLOUT)), body(rows(FeatureStage.DONE))
    assert re.search(r"^- \[ \] \*\*Duo Chat\*\*", before, re.M)
    assert re.search(r"^- \[x\] \*\*Duo Chat\*\*", after, re.M)
    assert "- [ ] Duo Chat: rollout complete" in section(before, "## Implementation Steps")
    assert "- [x] Duo Chat: rollout complete" in section(after, "## Implementation Steps")
    assert "- [ ] Test Generation: rollout complete" in after


def test_implementation_steps_follow_the_rows_stages() -> None:
    """Init steps check once features are under way; docs and references once all are finished."""
    fresh = section(body([FeatureRow(feature=CHAT), FeatureRow(feature=CODEGEN)]), "## Implementation Steps")
    assert "- [ ] Add the model configuration" in fresh and "- [ ] Verify infrastructure" in fresh
    running = section(body(), "## Implementation Steps")
    assert "- [x] Add the model configuration" in running and "- [ ] Update the documentation" in running
    finished_rows = [
        FeatureRow(feature=CHAT, stage=FeatureStage.DONE, outcome="done"),
        FeatureRow(feature=CODEGEN, stage=FeatureStage.ABORTED, outcome="aborted"),
    ]
    finished = section(body(finished_rows), "## Implementation Steps")
    assert "- [x] Update the documentation" in finished
    assert "- [x] Remove references to the old model" in finished


def test_tracking_body_details_required_changes_and_references() -> None:
    """Required changes, technical details and references name the concrete files and values."""
    text = body()
    changes = section(text, "## Required Changes")
    assert "ai_gateway/model_selection/models.yml" in changes
    # The very directory the model-configuration merge request writes to.
    mr_path = gateway.prompt_definition_path(CHAT, NEW, "1.0.0-dev")
    assert mr_path.rsplit("/", 1)[0] + "/<version>.yml" in changes
    assert "ai_gateway/prompts" not in text
    assert "`code_generation_claude_sonnet_4_5`" in changes
    details = section(text, "## Technical Details")
    for value in ("claude_sonnet_4_5_20250929", "200000", "claude-sonnet-4-5-20250929", "claude_4", "$$$",
                  "claude_3_7_sonnet_20250219"):
        assert value in details
    references = section(text, "## References")
    assert "handbook.gitlab.com" in references and "2026-02-19" in references


def test_timeline_priority_and_duration() -> None:
    """Priority follows the lead before retirement; duration follows complex_migration."""
    relaxed = section(body(), "## Timeline")
    assert 'priority::2' in relaxed and "simple migration (1–2 weeks)" in relaxed and "2026-02-01" in relaxed
    tight = section(body(target_date=date(2026, 2, 12), complex_migration=True), "## Timeline")
    assert "priority::1" in tight and "complex (1–2 months)" in tight
    planned = section(body(replaced=None, target_date=None), "## Timeline")
    assert "priority::3" in planned and "Target date: —" in planned
    late = section(body(target_date=date(2027, 1, 15)), "## Timeline")
    assert "priority::1" in late and "the target date is 330 day(s) after" in late and "-330" not in late


def test_tracking_body_is_deterministic() -> None:
    """Rendering is byte-identical for the same input; only outcomes, not mid-way stages, change it."""
    assert body() == body()
    assert body(rows(FeatureStage.EVALUATE)) == body(rows(FeatureStage.ROLLOUT))
    assert body() != body(rows(FeatureStage.DONE))
    assert "aborted" in body(rows(FeatureStage.ABORTED))


def test_rollout_title() -> None:
    """The rollout title names the feature and the new model."""
    assert rollout_issue_title(CHAT, NEW) == "AI Model Rollout: Duo Chat to Claude Sonnet 4.5"


def rollout(ladder: list[int] | None = None, due: dict[FeatureStage, date] | None = None) -> str:
    return rollout_issue_body(
        feature=CHAT,
        model=NEW,
        replaced=OLD,
        due={FeatureStage.IMPLEMENT: date(2026, 1, 10), FeatureStage.ROLLOUT: date(2026, 1, 25)} if due is None else due,
        tracking_issue_url="https://gitlab.example.com/ai/migrations/-/issues/1",
        ladder=[1, 10, 25, 50, 75, 100] if ladder is None else ladder,
    )


def test_rollout_body_has_the_resource_table() -> None:
    """The overview table lists every resource of the template with its value."""
    table = table_lines(rollout(), "| Resource | Value |")
    expected = {
        "Feature": "Duo Chat",
        "Prompt ID": "`duo_chat/base_prompt`",
        "Current model": "claude_3_7_sonnet_20250219",
        "New model": "claude_sonnet_4_5_20250929",
        "Feature flag": "`duo_chat_claude_sonnet_4_5`",
        "Evaluation dataset": "`duo_chat.main.1`",
        "DRI": "@achen",
        "Tracking issue": "https://gitlab.example.com/ai/migrations/-/issues/1",
    }
    found = {line.split("|")[1].strip(): line.split("|")[2] for line in table[2:]}
    assert list(found) == list(expected)
    for name, value in expected.items():
        assert value in found[name]


def test_rollout_timeline_has_one_row_per_ladder_step() -> None:
    """Non-production and team members come first, then one dated row per ladder percentage."""
    table = table_lines(rollout(ladder=[5, 50, 100]), "| Audience | Percentage | Date |")
    assert "Non-production" in table[2] and "team members" in table[3]
    assert [line.split("|")[2].strip() for line in table[4:]] == ["5%", "50%", "100%"]
    assert all(line.split("|")[3].strip() == "2026-01-25" for line in table[2:])
    undated = table_lines(rollout(due={}), "| Audience | Percentage | Date |")
    assert all(line.split("|")[3].strip() == "—" for line in undated[2:])


def test_rollout_body_has_criteria_mitigation_and_checklist() -> None:
    """Success, continue and rollback criteria, the flag-off mitigation and the stage checklist."""
    text = rollout()
    assert "20 %" in text and "0.8" in text
    for heading in ("## Success criteria", "## Continue criteria", "## Rollback criteria", "## Mitigation"):
        assert heading in text
    assert "`/chatops run feature set duo_chat_claude_sonnet_4_5 false`" in section(text, "## Mitigation")
    checklist = section(text, "## Checklist")
    assert [line.split(":")[0] for line in checklist.splitlines() if line.startswith("- [ ]")] == [
        "- [ ] Implement", "- [ ] Evaluate", "- [ ] Roll out", "- [ ] Cleanup",
    ]
    assert "Implement: 2026-01-10" in text and "Evaluate: —" in text


@pytest.mark.parametrize(
    ("kind", "at", "present", "absent"),
    [
        ("reminder", datetime(2026, 1, 5, 12, tzinfo=UTC), ["@achen", "due in 2 days"], ["@mgr", "priority::"]),
        ("due", datetime(2026, 1, 7, 12, tzinfo=UTC), ["@achen", "@mgr", "due now", "priority::2"], []),
        ("overdue", datetime(2026, 1, 10, 12, tzinfo=UTC), ["@achen", "@mgr", "overdue by 3 days", "#3",
                                                            "priority::1"], []),
    ],
)
def test_escalation_mentions_the_right_people(kind: str, at: datetime, present: list[str],
                                              absent: list[str]) -> None:
    """A reminder addresses the DRI; due and overdue also mention the manager, with priority."""
    note = escalation_note(kind=kind, stage=FeatureStage.EVALUATE, due=datetime(2026, 1, 7, 12, tzinfo=UTC),
                           dri="achen", manager="mgr", at=at, occurrence=2, feature_title="Duo Chat")
    for text in present + ["evaluate", "Duo Chat", "2026-01-07 12:00 UTC"]:
        assert text in note
    for text in absent:
        assert text not in note


def test_escalation_rejects_an_unknown_kind() -> None:
    """A misspelled kind fails loudly instead of posting a wrong note."""
    with pytest.raises(ValueError, match="reminder"):
        escalation_note(kind="overdo", stage=FeatureStage.EVALUATE, due=AT, dri="a", manager="b", at=AT)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=2), "2 days"),
        (timedelta(hours=3), "3 hours"),
        (timedelta(seconds=45), "45 seconds"),
        (timedelta(days=1, hours=23, minutes=5), "1 day 23 hours"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(hours=-2), "2 hours"),
        (timedelta(0), "0 seconds"),
    ],
)
def test_humanize_delta(delta: timedelta, text: str) -> None:
    """The largest unit, the next one when not zero, singular where it should be."""
    assert humanize_delta(delta) == text


def test_transition_note_names_actor_time_and_next_step() -> None:
    """A transition note shows the move, who made it, when, and the next due date and owner."""
    note = transition_note(feature_title="Duo Chat", from_stage=FeatureStage.IMPLEMENT, to_stage=FeatureStage.EVALUATE,
                           actor="achen", at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC), detail="Prompt 1.0.0-dev.",
                           next_due=date(2026, 12, 3), owner="achen")
    assert note == ("Duo Chat: **implement → evaluate** by @achen at 2026-11-26 10:00 UTC. Prompt 1.0.0-dev. "
                    "Next: evaluate, due 2026-12-03 (owner @achen).")
    done = transition_note(feature_title="", from_stage=FeatureStage.CLEANUP, to_stage=FeatureStage.DONE, actor="achen", at=AT)
    assert "Next" not in done


def test_compatibility_summary_and_command_notes() -> None:
    """The remaining notes carry their problems, outcome counts and command reasons."""
    failed = compatibility_note(["Duo Chat needs 300000 context tokens", "provider not enabled"])
    assert "Infrastructure compatibility check failed" in failed
    assert "- Duo Chat needs 300000 context tokens\n- provider not enabled" in failed
    summary = summary_note(migration_id="migration:x", at=AT, outcomes=[
        ("Duo Chat", "done", "https://gitlab.example.com/g/p/-/issues/3"), ("Code Generation", "aborted", "")])
    assert "1 done, 1 aborted" in summary
    assert "| Duo Chat | done | [#3](https://gitlab.example.com/g/p/-/issues/3) |" in summary
    assert "| Code Generation | aborted | — |" in summary
    assert command_note(command="pause", actor="x", at=AT, detail="holiday freeze") == (
        "**Paused** by @x at 2026-01-05 10:00 UTC: holiday freeze")
