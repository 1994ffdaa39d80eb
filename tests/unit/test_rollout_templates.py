"""The rollout's paper trail: the rollout-plan issue and the feature-flag roll-out issue, against GitLab's templates."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from model_migration.domain import rollout_machine as machine
from model_migration.domain.models import FeatureSpec, Maturity, ModelDefinition, ModelParams
from model_migration.domain.rollout import (
    DEFAULT_ANALYSIS,
    DEFAULT_LADDER,
    DURATION,
    PRODUCTION,
    Audience,
    LadderStep,
    Measurement,
    Outcome,
)
from model_migration.domain.rollout_baseline import BASELINE_QUERIES, ObservedBaseline, baseline_queries
from model_migration.domain.rollout_templates import (
    FLAG_LABEL,
    NOT_MEASURED,
    RolloutPlan,
    StepView,
    chatops_command,
    flag_issue_labels,
    flag_issue_title,
    plan_issue_title,
    render_flag_issue,
    render_plan_issue,
    step_views,
)
from model_migration.domain.stages import FeatureStage

# Every section heading of gitlab-org/gitlab `.gitlab/issue_templates/AI Model Rollout.md`, in order.
PLAN_TEMPLATE_HEADINGS = (
    "## Overview",
    "### Checklist",
    "### Evaluation Metrics",
    "## Evaluation Template",
    "### Rollout Success Criteria",
    "### Dashboard References",
    "## Legal Notes",
    "## Known Issues",
    "## Rollout",
    "### Timeline",
    "### Feedback from GitLab Team Members",
    "### Persevere / Continue Criteria",
    "### Pivot / Pause / Rollback Criteria",
    "## Mitigation and Rollback Plan",
    "## Useful Documentation",
    "## Release Announcement",
)
# Every section heading of gitlab-org/gitlab `.gitlab/issue_templates/Feature Flag Roll Out.md`, in order.
FLAG_TEMPLATE_HEADINGS = (
    "## Summary",
    "## Owners",
    "## Expectations",
    "### What are we expecting to happen?",
    "### What can go wrong and how would we detect it?",
    "## Rollout Steps",
    "### Rollout on non-production environments",
    "### Specific rollout on production",
    "### Preparation before global rollout",
    "### Global rollout on production",
    "### (Optional) Release the feature with the feature flag",
    "### Release the feature",
    "## Rollback Steps",
)

NEW = ModelDefinition(
    name="Claude Sonnet 4.5", gitlab_identifier="claude_sonnet_4_5_20250929", provider="anthropic", model="claude-sonnet-4-5",
    version="20250929", max_context_tokens=200_000, family=["claude_4"], params=ModelParams(model="claude-sonnet-4-5-20250929"),
)
OLD = ModelDefinition(
    name="Claude 3.7 Sonnet", gitlab_identifier="claude_3_7_sonnet_20250219", provider="anthropic", model="claude-3-7-sonnet",
    version="20250219", max_context_tokens=200_000, params=ModelParams(model="claude-3-7-sonnet-20250219"),
)
CHAT = FeatureSpec(
    name="duo_chat", title="Duo Chat", feature_setting="duo_chat", prompt_id="chat/react", maturity=Maturity.GA,
    group="group::duo chat", dri="achen", manager="mgr", current_model=OLD.gitlab_identifier, dataset="duo_chat.main.1",
    flag="duo_chat_claude_sonnet_4_5",
)
FLAG = CHAT.flag
PLAN_URL = "https://gitlab.example.com/ai/duo/-/issues/7"
FLAG_URL = "https://gitlab.example.com/ai/duo/-/issues/8"
AT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
#: A shorter ladder: staging, team members, two production percentages.
LADDER = (
    LadderStep(environment="staging", percentage=50),
    LadderStep(environment=PRODUCTION, audience=Audience.TEAM_MEMBERS, percentage=0),
    LadderStep(environment=PRODUCTION, percentage=10),
    LadderStep(environment=PRODUCTION, percentage=100),
)


def plan(**changes: object) -> RolloutPlan:
    return RolloutPlan.model_validate({"feature": CHAT, "model": NEW, "replaced": OLD} | changes)


def section(text: str, heading: str) -> str:
    """The lines under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if re.match(rf"^#{{1,{len(level)}}} ", lines[i])), len(lines))
    return "\n".join(lines[start:end])


def cells(row: str) -> list[str]:
    """A Markdown table row's cells, split on unescaped pipes only."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def table(text: str, header: str) -> list[list[str]]:
    lines = text.splitlines()
    start = lines.index(header) + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [cells(line) for line in lines[start:end]]


def step_boxes(text: str) -> list[str]:
    """The checkboxes of the roll-out steps (the rollout sections, not release or rollback)."""
    steps = section(text, "## Rollout Steps").split("### (Optional) Release the feature")[0]
    return [line for line in steps.splitlines() if line.startswith("- [")]


# -- the rollout-plan issue ---------------------------------------------------------------------


def test_plan_has_every_section_of_gitlabs_template() -> None:
    """Every heading of GitLab's "AI Model Rollout" template is a line of the plan, in the template's order."""
    lines = render_plan_issue(plan()).splitlines()
    positions = [lines.index(heading) for heading in PLAN_TEMPLATE_HEADINGS]
    assert positions == sorted(positions)


def test_plan_title_follows_the_template() -> None:
    """`<Model> <Feature> Rollout Plan`."""
    assert plan_issue_title(CHAT, NEW) == "Claude Sonnet 4.5 Duo Chat Rollout Plan"


def test_overview_links_the_flag_issue_or_says_it_is_to_be_opened() -> None:
    """The required Feature Flag Rollout Issue row: "to be opened" until its URL is known, then a link."""
    def row(text: str) -> str:
        return {r[0]: r[1] for r in table(text, "| Resource | Links |")}["Feature Flag Rollout Issue"]

    assert row(render_plan_issue(plan())) == "to be opened"
    assert row(render_plan_issue(plan(flag_issue_url=FLAG_URL))) == f"[{flag_issue_title(FLAG)}]({FLAG_URL})"


def test_timeline_has_one_row_per_step_filled_as_it_happens() -> None:
    """Date | Audience | Status, one row per ladder step; a step not reached yet shows dashes."""
    steps = [StepView(at=AT, status="successful", done=True), StepView(at=date(2026, 1, 6), status="baking", done=True)]
    rows = table(render_plan_issue(plan(ladder=LADDER), steps), "| Date | Audience | Status |")
    assert rows == [
        ["2026-01-05 10:00 UTC", "staging: 50 % of actors", "successful"],
        ["2026-01-06", "production: GitLab team members", "baking"],
        ["—", "production: 10 % of actors", "—"],
        ["—", "production: 100 % of actors", "—"],
    ]
    assert len(table(render_plan_issue(plan()), "| Date | Audience | Status |")) == len(DEFAULT_LADDER)


def test_table_cells_escape_pipes() -> None:
    """A `|` in a status or a title is escaped, so the table keeps its columns."""
    piped = CHAT.model_copy(update={"title": "Chat | Agent"})
    text = render_plan_issue(plan(feature=piped, ladder=LADDER), [StepView(at=AT, status="paused | by analysis")])
    assert "paused \\| by analysis" in text
    assert table(text, "| Date | Audience | Status |")[0] == ["2026-01-05 10:00 UTC", "staging: 50 % of actors", "paused \\| by analysis"]
    assert {r[0]: r[1] for r in table(text, "| Resource | Links |")}["Feature"] == "Chat \\| Agent (`duo_chat`)"
    assert all(len(row) == 2 for row in table(text, "| Resource | Links |"))


def test_dashboard_references_carry_each_metrics_promql() -> None:
    """Each analysis metric's query, filled in for the feature and both models; Prometheus and Grafana only when configured."""
    window = timedelta(minutes=10)
    text = section(render_plan_issue(plan(analysis_window=window)), "### Dashboard References")
    for t in DEFAULT_ANALYSIS:
        query, _ = t.render("duo_chat", NEW.gitlab_identifier, OLD.gitlab_identifier, window)
        assert f"  {query}" in text.splitlines() and f"**{t.name}**" in text
    assert "$" not in text and "[600s]" in text
    assert "Prometheus" not in text and "Grafana" not in text
    linked = section(render_plan_issue(plan(prometheus_url="https://prom.example.com/", grafana_url="https://grafana.example.com/d/ai")),
                     "### Dashboard References")
    assert linked.count("](https://prom.example.com/graph?g0.expr=") == len(DEFAULT_ANALYSIS)
    assert "[Grafana dashboard](https://grafana.example.com/d/ai)" in linked


def test_continue_criteria_carry_the_observed_baseline() -> None:
    """p50/p90/p95 in ms and the acceptance rate in %, with the window; "not measured" where absent."""
    baseline = ObservedBaseline(latency_p50=0.812, latency_p90=1.5, latency_p95=2.25, acceptance_rate=0.312,
                                since=AT - timedelta(days=7), until=AT)
    text = section(render_plan_issue(plan(), baseline=baseline), "### Persevere / Continue Criteria")
    for line in ("* p50: 812 ms", "* p90: 1500 ms", "* p95: 2250 ms", "* Rate: 31.2 %"):
        assert line in text.splitlines()
    assert "from 2025-12-29 10:00 UTC to 2026-01-05 10:00 UTC" in text and OLD.gitlab_identifier in text
    absent = section(render_plan_issue(plan()), "### Persevere / Continue Criteria")
    assert absent.count(NOT_MEASURED) == 4
    partial = section(render_plan_issue(plan(), baseline=ObservedBaseline(latency_p95=float("nan"), acceptance_rate=0.5)),
                      "### Persevere / Continue Criteria")
    assert partial.count(NOT_MEASURED) == 3 and "* Rate: 50.0 %" in partial


def test_plan_sections_take_what_they_are_given() -> None:
    """Legal notes, known issues, feedback, release announcement and the stage checklist."""
    text = render_plan_issue(plan(
        legal_notes="Cleared by legal.", known_issues=("Slower on long\ncontexts", "Refuses some prompts"),
        feedback_issue_url="https://gitlab.example.com/ai/duo/-/issues/9", release_announcement="Release post 18.8.",
        stages_done=frozenset({FeatureStage.IMPLEMENT, FeatureStage.EVALUATE}), due={FeatureStage.ROLLOUT: date(2026, 1, 25)},
    ))
    assert section(text, "## Legal Notes").strip() == "Cleared by legal."
    assert section(text, "## Known Issues").strip().splitlines() == ["- Slower on long contexts", "- Refuses some prompts"]
    assert "(https://gitlab.example.com/ai/duo/-/issues/9)" in section(text, "### Feedback from GitLab Team Members")
    assert section(text, "## Release Announcement").strip() == "Release post 18.8."
    boxes = [line[:5] for line in section(text, "### Checklist").splitlines() if line.startswith("- [")]
    assert boxes == ["- [x]", "- [x]", "- [ ]", "- [ ]"]
    assert "Rollout due: 2026-01-25." in text
    empty = render_plan_issue(plan())
    for heading in ("## Legal Notes", "## Known Issues"):
        assert section(empty, heading).strip() == "None recorded."


# -- the feature-flag roll-out issue ---------------------------------------------------------------


def test_flag_issue_has_every_section_of_gitlabs_template() -> None:
    """Every heading of GitLab's "Feature Flag Roll Out" template is a line of the issue, in the template's order."""
    lines = render_flag_issue(plan(), plan_issue_url=PLAN_URL).splitlines()
    positions = [lines.index(heading) for heading in FLAG_TEMPLATE_HEADINGS]
    assert positions == sorted(positions)


def test_flag_issue_title_and_label() -> None:
    """`[Feature flag] Enable <flag>`, labelled `feature flag` and the owning group."""
    assert flag_issue_title(FLAG) == "[Feature flag] Enable duo_chat_claude_sonnet_4_5"
    assert FLAG_LABEL == "feature flag" and flag_issue_labels(CHAT)[:2] == ["feature flag", "group::duo chat"]


def test_flag_issue_links_the_rollout_plan() -> None:
    """The first line references the rollout-plan issue (or says it is to be linked)."""
    assert render_flag_issue(plan(), plan_issue_url=PLAN_URL).splitlines()[0] == f"Rollout plan: {PLAN_URL}"
    assert render_flag_issue(plan()).splitlines()[0] == "Rollout plan: to be linked"


@pytest.mark.parametrize(
    ("step", "command"),
    [
        (LadderStep(environment="staging", percentage=50), f"/chatops run feature set {FLAG} 50 --actors --staging"),
        (LadderStep(environment="staging", percentage=100), f"/chatops run feature set {FLAG} true --staging"),
        (LadderStep(environment="dev", percentage=25), f"/chatops run feature set {FLAG} 25 --actors --dev"),
        (LadderStep(environment=PRODUCTION, audience=Audience.TEAM_MEMBERS, percentage=0),
         f"/chatops run feature set --feature-group=gitlab_team_members {FLAG} true"),
        (LadderStep(environment=PRODUCTION, percentage=10), f"/chatops run feature set {FLAG} 10 --actors"),
        (LadderStep(environment=PRODUCTION, percentage=100), f"/chatops run feature set {FLAG} true"),
    ],
)
def test_chatops_command_per_step(step: LadderStep, command: str) -> None:
    """Staging steps carry their environment's option, team members the feature group, 100 % is `true`."""
    assert chatops_command(FLAG, step) == command


@pytest.mark.parametrize("done", [set(), {0}, {0, 1, 2}, set(range(len(DEFAULT_LADDER)))])
def test_flag_checkboxes_follow_the_ladder(done: set[int]) -> None:
    """One checkbox per ladder step, in ladder order, ticked exactly for the steps done."""
    views = [StepView(at=AT + timedelta(minutes=15 * i), status="successful", done=True) if i in done else StepView()
             for i in range(len(DEFAULT_LADDER))]
    boxes = step_boxes(render_flag_issue(plan(), views))
    assert len(boxes) == len(DEFAULT_LADDER)
    for i, (line, step) in enumerate(zip(boxes, DEFAULT_LADDER, strict=True)):
        assert line.startswith("- [x]" if i in done else "- [ ]")
        assert f"`{chatops_command(FLAG, step)}`" in line and step.label in line
    assert ("(2026-01-05 10:00 UTC, successful)" in boxes[0]) == (0 in done)


def test_flag_steps_sit_in_the_templates_sections() -> None:
    """Non-production steps, then production's team members, then its percentages."""
    text = render_flag_issue(plan())
    assert len([line for line in section(text, "### Rollout on non-production environments").splitlines() if line.startswith("- [")]) == 2
    assert "--feature-group=gitlab_team_members" in section(text, "### Specific rollout on production")
    assert len([line for line in section(text, "### Global rollout on production").splitlines() if line.startswith("- [")]) == 6


def test_flag_issue_ticks_rollback_and_removal() -> None:
    """Turned off ticks each environment's off command; removed ticks the deletion and closing."""
    def boxes(text: str, heading: str) -> list[str]:
        return [line[:5] for line in section(text, heading).splitlines() if line.startswith("- [")]

    climbing = render_flag_issue(plan())
    assert boxes(climbing, "## Rollback Steps") == ["- [ ]", "- [ ]"]
    assert boxes(climbing, "### Release the feature") == ["- [ ]", "- [ ]"]
    off = render_flag_issue(plan(), turned_off=True)
    assert boxes(off, "## Rollback Steps") == ["- [x]", "- [x]"]
    assert f"`/chatops run feature set {FLAG} false --staging`" in section(off, "## Rollback Steps")
    gone = render_flag_issue(plan(), removed=True)
    assert boxes(gone, "### Release the feature") == ["- [x]", "- [x]"]
    assert f"/chatops run feature delete {FLAG} --staging --production" in section(gone, "### Release the feature")


# -- both: state in, text out -----------------------------------------------------------------------


def test_same_state_renders_the_same_text() -> None:
    """Byte-identical for the same input, also after the inputs' JSON round trip (what a workflow keeps)."""
    p = plan(ladder=LADDER, due={FeatureStage.ROLLOUT: date(2026, 1, 25)}, stages_done=frozenset({FeatureStage.IMPLEMENT}))
    views = (StepView(at=AT, status="successful", done=True), StepView(at=date(2026, 1, 6), status="baking", done=True))
    baseline = ObservedBaseline(latency_p50=0.4, acceptance_rate=0.3)
    again_plan = RolloutPlan.model_validate_json(p.model_dump_json())
    again_views = [StepView.model_validate_json(v.model_dump_json()) for v in views]
    again_baseline = ObservedBaseline.model_validate_json(baseline.model_dump_json())
    assert render_plan_issue(p, views, baseline) == render_plan_issue(p, views, baseline) \
        == render_plan_issue(again_plan, again_views, again_baseline)
    assert render_flag_issue(p, views, plan_issue_url=PLAN_URL) == render_flag_issue(again_plan, again_views, plan_issue_url=PLAN_URL)
    assert render_flag_issue(p, views) != render_flag_issue(p, views[:1])


def _healthy(step: int) -> machine.Measured:
    values = {"error_ratio": 0.0, "latency_p95": 1.0, "acceptance_rate": 0.0}
    return machine.Measured(step=step, measurements=tuple(Measurement(metric=k, value=v, requests=500) for k, v in values.items()))


def test_step_views_from_the_rollout_machine() -> None:
    """The machine's records become views: a passed step, a paused one, steps not reached."""
    d = machine.start(LADDER)
    s = d.state
    for event, minutes in ((machine.Applied(step=0), 0), (_healthy(0), 5), (machine.BakeEnded(step=0), 15), (machine.Applied(step=1), 16)):
        s = machine.decide(s, event, AT + timedelta(minutes=minutes)).state
    s = machine.decide(s, machine.Pause(actor="achen", reason="incident"), AT + timedelta(minutes=20)).state
    views = step_views(s.ladder, s.records, phase=s.phase)
    assert views == (
        StepView(at=AT, status="successful", done=True),
        StepView(at=AT + timedelta(minutes=16), status="paused", done=True),
        StepView(), StepView(),
    )
    rolled = machine.decide(s, machine.Abort(actor="achen", reason="stop"), AT + timedelta(minutes=30)).state
    assert step_views(rolled.ladder, rolled.records, phase=rolled.phase)[1].status == "aborted"


def test_step_views_keep_earlier_runs_and_mark_skipped_steps() -> None:
    """A retry from step 2 keeps steps 0–1 from the first run; promote_full marks the steps jumped over."""
    first = (StepView(at=AT, status="successful", done=True), StepView(at=AT, status="rolled back", done=True), StepView(), StepView())
    retry = [machine.StepRecord(step=1, label=LADDER[1].label, applied_at=AT + timedelta(days=1), ended_at=AT + timedelta(days=1),
                                outcome=Outcome.SUCCESSFUL),
             machine.StepRecord(step=3, label=LADDER[3].label, applied_at=AT + timedelta(days=1, hours=1))]
    views = step_views(LADDER, retry, phase=machine.Phase.BAKING, previous=first)
    assert views[0] == first[0]
    assert views[1] == StepView(at=AT + timedelta(days=1), status="successful", done=True)
    assert views[2] == StepView(status="skipped")
    assert views[3].status == "baking" and views[3].done


# -- the baseline's queries -----------------------------------------------------------------------


def test_baseline_queries_measure_the_old_model() -> None:
    """p50/p90/p95 over the duration histogram and accepted/shown, filled in; the answers make an ObservedBaseline."""
    queries = baseline_queries("duo_chat", OLD.gitlab_identifier, timedelta(days=7))
    assert set(queries) == set(BASELINE_QUERIES) == {"latency_p50", "latency_p90", "latency_p95", "acceptance_rate"}
    for name, q in (("latency_p50", "0.5"), ("latency_p90", "0.9"), ("latency_p95", "0.95")):
        assert queries[name] == (f"histogram_quantile({q}, sum by (le) (rate({DURATION}_bucket"
                                 f'{{feature="duo_chat",model="{OLD.gitlab_identifier}"}}[604800s])))')
    assert "ai_gateway_suggestions_accepted_total" in queries["acceptance_rate"]
    assert "/ sum(rate(ai_gateway_suggestions_shown_total" in queries["acceptance_rate"]
    assert all("$" not in q for q in queries.values())
    answers = dict.fromkeys(queries, 0.5) | {"latency_p90": float("inf")}
    assert ObservedBaseline.model_validate(answers).latency_p90 is None
