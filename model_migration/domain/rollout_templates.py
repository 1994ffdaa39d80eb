"""Markdown for a rollout's paper trail: the rollout-plan issue and the feature-flag roll-out issue.

Each keeps every section heading of GitLab's issue template (gitlab-org/gitlab
``.gitlab/issue_templates/AI Model Rollout.md`` and ``Feature Flag Roll Out.md``). Pure: the whole
description is rendered from state (a ``RolloutPlan``, one ``StepView`` per ladder step, the
flag's end; ``rollout_views.py``), so recording a step is one render and one update, never an
edit of the previous text. Only the engine ticks checkboxes: a person's tick would be lost at the
next render, so what a person does is a plain bullet.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from model_migration.domain.gateway import prompt_directory
from model_migration.domain.models import FeatureSpec, ModelDefinition
from model_migration.domain.notes import DASH, cell, fmt_date, fmt_datetime, humanize_delta, mention
from model_migration.domain.rollout import PRODUCTION, Audience, LadderStep, MetricTemplate
from model_migration.domain.rollout_baseline import ObservedBaseline
from model_migration.domain.rollout_views import (
    RolloutPlan,
    StepView,
    box,
    chatops_command,
    chatops_option,
    environments,
    inline,
    link,
    step_views,
    when,
)
from model_migration.domain.stages import FEATURE_STAGES, FeatureStage
from model_migration.domain.templates import PROCESS_URL

__all__ = [
    "FLAG_LABEL",
    "NOT_MEASURED",
    "ObservedBaseline",
    "RolloutPlan",
    "StepView",
    "chatops_command",
    "flag_issue_labels",
    "flag_issue_title",
    "plan_issue_title",
    "render_flag_issue",
    "render_plan_issue",
    "step_views",
]

FLAG_LABEL = "feature flag"
NOT_MEASURED = "not measured"
PROMPT_VERSIONING_URL = "https://docs.gitlab.com/development/ai_features/actions/#appendix-a-prompt-versioning-conventions"
MODEL_SELECTION_URL = "https://handbook.gitlab.com/handbook/engineering/architecture/design-documents/ai_model_selection/"
FLAG_CONTROLS_URL = "https://docs.gitlab.com/development/feature_flags/controls/"
REWRITTEN = "_model-migration rewrites this description at every step: comment below rather than editing it._"


def _conditions(t: MetricTemplate) -> str:
    return f"succeeds `{t.success}`, fails `{t.failure}` ({t.failure_limit} in a row roll back), at least {t.min_requests} requests"


# -- the rollout-plan issue ---------------------------------------------------------------------


def plan_issue_title(feature: FeatureSpec, model: ModelDefinition) -> str:
    return f"{model.name} {feature.title} Rollout Plan"


def render_plan_issue(plan: RolloutPlan, steps: Sequence[StepView] = (), baseline: ObservedBaseline | None = None) -> str:
    """The rollout plan, following GitLab's "AI Model Rollout" template section by section."""
    known = "\n".join(f"- {inline(issue)}" for issue in plan.known_issues) or "None recorded."
    announcement = plan.release_announcement.strip() or (
        "Not planned yet: users get the new model as the flag climbs; announce it once the rollout is complete.")
    return "\n\n".join([
        f"_Confidential: the rollout's metrics are shared in the notes below._\n\n{REWRITTEN}",
        _overview(plan),
        _checklist(plan),
        _evaluation(plan),
        _success(plan),
        _dashboards(plan),
        "## Legal Notes\n\n" + (plan.legal_notes.strip() or "None recorded."),
        "## Known Issues\n\n" + known,
        "## Rollout\n\n" + _timeline(plan, steps),
        "### Feedback from GitLab Team Members\n\n" + link(plan.feedback_issue_url, "Internal feedback issue", "No feedback issue yet."),
        _continue(plan, baseline),
        _pivot(plan),
        _mitigation(plan),
        _documentation(),
        "## Release Announcement\n\n" + announcement,
    ]) + "\n"


def _overview(plan: RolloutPlan) -> str:
    f, m = plan.feature, plan.model
    name = f"{m.name} (`{m.gitlab_identifier}`)"
    rows = [
        ("Model", link(plan.model_url, name, name)),
        ("Epic or Issue", link(plan.tracking_issue_url, "Migration tracking issue")),
        ("Feature Flag Rollout Issue", link(plan.flag_issue_url, flag_issue_title(f.flag), "to be opened")),
        ("Status updates", "Notes on this issue, one per rollout step"),
        ("Feature", f"{f.title} (`{f.name}`)"),
        ("Prompt ID", f"`{f.prompt_id}`"),
        ("Current model", plan.current),
        ("Feature flag", f"`{f.flag}`"),
        ("Evaluation dataset", f"`{f.dataset}`"),
        ("DRI", mention(f.dri)),
    ]
    return "\n".join([
        "## Overview", "", f"Roll out **{m.name}** for **{f.title}**, replacing {plan.current}.", "",
        "| Resource | Links |", "|---|---|", *(f"| {name} | {cell(value)} |" for name, value in rows),
    ])


def _checklist(plan: RolloutPlan) -> str:
    f = plan.feature
    texts = {
        FeatureStage.IMPLEMENT: f"Implement: prompt definition `{prompt_directory(f.prompt_id, plan.model)}/<version>.yml` "
                                f"(`-dev` first) and feature flag `{f.flag}`",
        FeatureStage.EVALUATE: f"Evaluate: candidate against baseline on `{f.dataset}`, the result posted here",
        FeatureStage.ROLLOUT: "Roll out: " + " → ".join(s.label for s in plan.ladder),
        FeatureStage.CLEANUP: f"Cleanup: {humanize_delta(plan.hold)} at 100 %, delete the flag, update docs, close this issue",
    }
    return "### Checklist\n\n" + "\n".join(
        f"{box(stage in plan.stages_done)} {texts[stage]} (due {fmt_date(plan.due.get(stage))})" for stage in FEATURE_STAGES
    )


def _evaluation(plan: RolloutPlan) -> str:
    return (
        f"### Evaluation Metrics\n\nCandidate `{plan.model.gitlab_identifier}` against baseline `{plan.baseline_model}` on "
        f"`{plan.feature.dataset}`: LLM-judge correctness, readability and comprehensiveness (1–4), cosine similarity to the "
        "reference, latency and tokens, per example.\n\n## Evaluation Template\n\n"
        + (plan.evaluation.strip() or "_The evaluation gate's result is posted here when it decides._")
    )


def _success(plan: RolloutPlan) -> str:
    return "\n".join([
        "### Rollout Success Criteria", "",
        "1. Fewer than 20 % poor answers on the evaluation dataset (LLM-judge correctness 1–2 of 4, or cosine similarity "
        "to the reference below 0.8), and no metric worse than the baseline beyond its margin.",
        f"2. Every step's analysis successful: {', '.join(f'`{t.name}`' for t in plan.analysis) or DASH}.",
        f"3. {humanize_delta(plan.hold)} at 100 %, then no traffic left on `{plan.baseline_model}` for this feature.",
    ])


def _dashboards(plan: RolloutPlan) -> str:
    f, new = plan.feature, plan.model.gitlab_identifier
    parts = ["### Dashboard References", "",
             f"Each analysis metric compares `{new}` with `{plan.baseline_model}` for `{f.name}` over "
             f"{humanize_delta(plan.analysis_window)} (the baseline's range grows to the whole rollout as it runs)."]
    for t in plan.analysis:
        query, _ = t.render(f.name, new, plan.baseline_model, plan.analysis_window)
        graph = f"{plan.prometheus_url.rstrip('/')}/graph?g0.expr={quote(query, safe='')}&g0.tab=0"
        parts += ["", f"- **{t.name}**: {_conditions(t)}" + (f" ([Prometheus]({graph}))" if plan.prometheus_url else ""),
                  "", "  ```promql", f"  {query}", "  ```"]
    if plan.grafana_url:
        parts += ["", f"- [Grafana dashboard]({plan.grafana_url})"]
    return "\n".join(parts)


def _timeline(plan: RolloutPlan, steps: Sequence[StepView]) -> str:
    views = plan.views(steps)
    return "\n".join([
        "### Timeline", "",
        f"Rollout due: {fmt_date(plan.due.get(FeatureStage.ROLLOUT))}. Each row is filled in as its step happens.", "",
        "| Date | Audience | Status |", "|---|---|---|",
        *(f"| {when(v.at)} | {cell(s.label)} | {cell(inline(v.status))} |" for s, v in zip(plan.ladder, views, strict=True)),
    ])


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds is not None else NOT_MEASURED


def _continue(plan: RolloutPlan, baseline: ObservedBaseline | None) -> str:
    b = baseline or ObservedBaseline()
    span = f" from {fmt_datetime(b.since)} to {fmt_datetime(b.until)}" if b.since and b.until else ""
    model = b.model or plan.baseline_model
    rate = f"{b.acceptance_rate * 100:.1f} %" if b.acceptance_rate is not None else NOT_MEASURED
    return "\n".join([
        "### Persevere / Continue Criteria", "",
        f"1. At least {humanize_delta(plan.shortest_bake)} at each step before the next, every analysis metric successful:",
        *(f"   - `{t.name}` {t.success}" for t in plan.analysis),
        "2. Latency remains within the observed p50/p90/p95 range below, and the acceptance rate within its range or better.",
        "3. No blockers: no open incident involving the feature.",
        "", f"_Observed latency of `{model}` for `{plan.feature.name}` before the first step{span}_",
        f"* p50: {_ms(b.latency_p50)}", f"* p90: {_ms(b.latency_p90)}", f"* p95: {_ms(b.latency_p95)}",
        "", f"_Observed acceptance rate of `{model}` before the first step{span}_", f"* Rate: {rate}",
    ])


def _pivot(plan: RolloutPlan) -> str:
    return "\n".join([
        "### Pivot / Pause / Rollback Criteria", "",
        f"1. Requests for `{plan.feature.name}` do not reach `{plan.model.gitlab_identifier}` as the flag says.",
        "2. An analysis metric fails: the flag is turned off everywhere at once.",
        *(f"   - `{t.name}` {t.failure}, {t.failure_limit} measurements in a row" for t in plan.analysis),
        "3. An inconclusive analysis (no data, too few requests, or between the thresholds) pauses the step for the DRI.",
        "4. User reports of wrong or harmful answers, or any incident involving the feature.",
    ])


def _mitigation(plan: RolloutPlan) -> str:
    flag = plan.feature.flag
    return (
        f"## Mitigation and Rollback Plan\n\nThe feature flag `{flag}` controls the rollout. model-migration turns it off "
        f"everywhere when the analysis fails; by hand: `/chatops run feature set {flag} false`. The feature goes back to "
        f"{plan.current} at once, with no deploy. A retry starts again at the step that failed."
    )


def _documentation() -> str:
    return "\n".join([
        "## Useful Documentation", "",
        f"- [Prompt versioning conventions]({PROMPT_VERSIONING_URL})",
        f"- [Model selection design document]({MODEL_SELECTION_URL})",
        f"- [Model migration process]({PROCESS_URL})",
        f"- [Feature flag controls]({FLAG_CONTROLS_URL})",
    ])


# -- the feature-flag roll-out issue ---------------------------------------------------------------


def flag_issue_title(flag: str) -> str:
    return f"[Feature flag] Enable {flag}"


def flag_issue_labels(feature: FeatureSpec) -> list[str]:
    """``feature flag``, the owning group's label, and the rollout plan's type labels."""
    return [FLAG_LABEL, feature.group, "type::feature", "feature::maintenance", "AI Model Migration"]


def render_flag_issue(
    plan: RolloutPlan, steps: Sequence[StepView] = (), *, plan_issue_url: str = "", turned_off: bool = False,
    removed: bool = False,
) -> str:
    """The "Feature Flag Roll Out" issue: one ChatOps checkbox per ladder step, in ladder order,
    ticked where the step's view is ``done``. ``turned_off`` (rolled back or aborted) ticks the
    rollback steps; ``removed`` (the flag deleted) ticks its deletion and this issue's closing,
    which the caller then carries out."""
    about = link(plan_issue_url, "the rollout plan", "the rollout plan (to be linked)")
    return "\n\n".join([
        f"Rollout plan: {plan_issue_url or 'to be linked'}\n\n{REWRITTEN}",
        _summary(plan, about),
        _owners(plan),
        _expectations(plan),
        _rollout_steps(plan, plan.views(steps), about),
        _release(plan, removed),
        _rollback(plan, turned_off),
    ]) + "\n"


def _summary(plan: RolloutPlan, about: str) -> str:
    f = plan.feature
    return (
        f"## Summary\n\nThis issue is to roll out **{plan.model.name}** (`{plan.model.gitlab_identifier}`) for **{f.title}** "
        f"on production, replacing {plan.current} behind the `{f.flag}` feature flag; see {about}. model-migration runs "
        "each step below and ticks it when done."
    )


def _owners(plan: RolloutPlan) -> str:
    slack = f"`{plan.slack_channel}`" if plan.slack_channel else DASH
    return "\n".join([
        "## Owners", "",
        f"- Most appropriate Slack channel to reach out to: {slack}",
        f"- Best individual to reach out to: {mention(plan.feature.dri)}",
        f'- Group: ~"{plan.feature.group}"',
    ])


def _expectations(plan: RolloutPlan) -> str:
    dashboards = [link(url, name) for url, name in ((plan.prometheus_url, "Prometheus"), (plan.grafana_url, "Grafana")) if url]
    return "\n".join([
        "## Expectations", "", "### What are we expecting to happen?", "",
        f"{plan.feature.title} answers with `{plan.model.gitlab_identifier}` for the actors the flag enables, as well as "
        f"`{plan.baseline_model}` did or better.",
        "", "### What can go wrong and how would we detect it?", "",
        "Errors, slower answers or fewer accepted suggestions. The engine measures each metric during every step's bake:", "",
        *(f"- `{t.name}`: {_conditions(t)}" for t in plan.analysis),
        *(f"- {dashboard}" for dashboard in dashboards),
    ])


def _step_line(flag: str, step: LadderStep, view: StepView) -> str:
    happened = ", ".join(part for part in (when(view.at) if view.at else "", inline(view.status)) if part)
    return f"{box(view.done)} {step.label}: `{chatops_command(flag, step)}`" + (f" ({happened})" if happened else "")


def _rollout_steps(plan: RolloutPlan, views: list[StepView], about: str) -> str:
    """The ladder split over the template's sections, order kept: non-production first (the ladder
    starts there), production's team-members steps before its first percentage, then the rest."""
    f, ladder = plan.feature, plan.ladder
    lines = [_step_line(f.flag, s, v) for s, v in zip(ladder, views, strict=True)]
    first_actors = next((i for i, s in enumerate(ladder) if s.environment == PRODUCTION and s.audience == Audience.ACTORS), len(ladder))
    non_production = [line for s, line in zip(ladder, lines, strict=True) if s.environment != PRODUCTION]
    specific = [line for i, (s, line) in enumerate(zip(ladder, lines, strict=True)) if s.environment == PRODUCTION and i < first_actors]
    rest = [line for i, (s, line) in enumerate(zip(ladder, lines, strict=True)) if s.environment == PRODUCTION and i >= first_actors]
    return "\n".join([
        "## Rollout Steps", "", "### Rollout on non-production environments", "", *(non_production or ["None."]),
        "", "### Specific rollout on production", "", *(specific or ["None."]),
        "", "### Preparation before global rollout", "",
        f"- The evaluation gate passed on `{f.dataset}` (see {about}).",
        f"- {mention(f.dri)} can be reached for 2 hours after each production step; the engine rolls back on its own.",
        "- Check whether the change needs a change management issue, and cross-link it here.",
        "", "### Global rollout on production", "", *(rest or ["None."]),
        "", f"Between steps the engine waits at least {humanize_delta(plan.shortest_bake)} and analyses the metrics above; "
        f"at 100 % it holds for {humanize_delta(plan.hold)}.",
        "", "### (Optional) Release the feature with the feature flag", "",
        "Not used: `default_enabled` stays `false`, and the feature is released by deleting the flag once the new model "
        "serves everyone.",
    ])


def _delete(plan: RolloutPlan) -> str:
    return f"/chatops run feature delete {plan.feature.flag} " + " ".join(chatops_option(e) for e in environments(plan.ladder))


def _release(plan: RolloutPlan, removed: bool) -> str:
    return "\n".join([
        "### Release the feature", "",
        f"After {humanize_delta(plan.hold)} at 100 % and no traffic left on `{plan.baseline_model}`, the engine deletes the flag:", "",
        f"{box(removed)} `{_delete(plan)}`", f"{box(removed)} Close this rollout issue", "",
        "The clean-up merge request then removes the flag's definition and references from the code.",
    ])


def _rollback(plan: RolloutPlan, turned_off: bool) -> str:
    flag = plan.feature.flag
    others = [e for e in environments(plan.ladder) if e != PRODUCTION]
    return "\n".join([
        "## Rollback Steps", "",
        f"{box(turned_off)} Disable the feature on production: `/chatops run feature set {flag} false`",
        *(f"{box(turned_off)} Disable the feature on {e}: `/chatops run feature set {flag} false {chatops_option(e)}`" for e in others),
        "", f"To delete the flag from every environment: `{_delete(plan)}`",
    ])
