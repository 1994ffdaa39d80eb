"""Markdown for the GitLab issues the engine writes: the tracking issue and each rollout plan.

Pure functions of their inputs (no clock, no I/O), so a body can be re-rendered
whenever a feature moves and replaces the whole description. Rows are rendered
in the order given. Notes live in ``notes.py`` and are re-exported here.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel

from model_migration.domain.gateway import prompt_directory
from model_migration.domain.models import FROZEN, FeatureSpec, Maturity, ModelDefinition
from model_migration.domain.notes import (
    DASH,
    cell,
    command_note,
    compatibility_note,
    escalation_note,
    fmt_date,
    humanize_delta,
    issue_link,
    mention,
    summary_note,
    transition_note,
)
from model_migration.domain.stages import FeatureStage

__all__ = [
    "FeatureRow",
    "command_note",
    "compatibility_note",
    "escalation_note",
    "humanize_delta",
    "rollout_issue_body",
    "rollout_issue_title",
    "summary_note",
    "tracking_issue_body",
    "tracking_issue_title",
    "transition_note",
]

AI_GATEWAY_MODELS_URL = (
    "https://gitlab.com/gitlab-org/modelops/applied-ml/code-suggestions/ai-assist/"
    "-/blob/main/ai_gateway/model_selection/models.yml"
)
PROCESS_URL = (
    "https://handbook.gitlab.com/handbook/engineering/development/data-science/"
    "ai-powered/ai-framework/model-migration/"
)
DEPRECATION_PAGES: dict[str, str] = {
    "anthropic": "https://docs.anthropic.com/en/docs/about-claude/model-deprecations",
    "vertex_ai": "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions",
}
#: A due date closer than this to the provider's retirement date is urgent.
MIN_LEAD_DAYS = 14
_PAST_IMPLEMENT = frozenset({FeatureStage.EVALUATE, FeatureStage.ROLLOUT, FeatureStage.CLEANUP, FeatureStage.DONE})


class FeatureRow(BaseModel):
    """One feature's line in the tracking issue."""

    model_config = FROZEN
    feature: FeatureSpec
    stage: FeatureStage = FeatureStage.IMPLEMENT
    eta: date | None = None  # the feature's final (cleanup) due date
    issue_url: str = ""
    outcome: str = ""  # "", "done", "aborted", ...

    @property
    def done(self) -> bool:
        return self.stage == FeatureStage.DONE or self.outcome == "done"

    @property
    def status(self) -> str:
        return self.outcome or str(self.stage)


def _box(checked: bool) -> str:
    return "- [x]" if checked else "- [ ]"


def _prompt_dir(prompt_id: str, model: ModelDefinition) -> str:
    """The directory the model-configuration merge request writes the prompt versions to."""
    return prompt_directory(prompt_id, model) + "/"


def tracking_issue_title(model: ModelDefinition) -> str:
    return f"AI Model Migration - {model.provider_display}/{model.name}/{model.version}"


def tracking_issue_body(
    *,
    migration_id: str,
    model: ModelDefinition,
    replaced: ModelDefinition | None,
    rows: list[FeatureRow],
    target_date: date | None,
    complex_migration: bool = False,
    config_mr_url: str = "",
) -> str:
    """The tracking issue description, following GitLab's AI Model Migration template."""
    sections = [
        _overview(migration_id, model, replaced, rows),
        _features(rows),
        _required_changes(model, rows, config_mr_url),
        _technical_details(model, replaced),
        _implementation_steps(rows),
        _timeline(replaced, target_date, complex_migration),
        _references(replaced),
        _proposed_solution(model, replaced, rows),
        _feature_table(rows),
    ]
    return "\n\n".join(sections) + "\n"


def _overview(migration_id: str, model: ModelDefinition, replaced: ModelDefinition | None,
              rows: list[FeatureRow]) -> str:
    what = f"**{model.name}** (`{model.gitlab_identifier}`, {model.provider_display})"
    if replaced is not None:
        what += f", replacing **{replaced.name}** (`{replaced.gitlab_identifier}`)"
    done = sum(1 for row in rows if row.done)
    return (
        f"## Overview\n\nThis issue tracks the migration of {len(rows)} GitLab Duo feature(s) to {what}.\n\n"
        f"- Migration: `{migration_id}`\n- Progress: {done} of {len(rows)} feature(s) done"
    )


def _features(rows: list[FeatureRow]) -> str:
    parts = ["## Features to Update"]
    for maturity in (Maturity.GA, Maturity.BETA, Maturity.EXPERIMENTAL):
        group = [row for row in rows if row.feature.maturity == maturity]
        lines = [
            # Only outcomes are shown: the description is rewritten when it changes, and each
            # stage change would otherwise cost an edit. The feature issue shows the live stage.
            f"{_box(row.done)} **{row.feature.title}** — prompt `{row.feature.prompt_id}` — "
            f'~"{row.feature.group}"' + (f" — {row.status}" if row.stage.terminal and not row.done else "")
            for row in group
        ]
        parts.append(f"### {maturity.value}\n\n" + ("\n".join(lines) if lines else "None"))
    return "\n\n".join(parts)


def _required_changes(model: ModelDefinition, rows: list[FeatureRow], config_mr_url: str = "") -> str:
    prompts = [f"  - {row.feature.title}: `{_prompt_dir(row.feature.prompt_id, model)}<version>.yml`"
               for row in rows]
    flags = [f"  - {row.feature.title}: `{row.feature.flag}`" for row in rows]
    return "\n".join([
        "## Required Changes",
        "",
        f"- **Model configuration**: add `{model.gitlab_identifier}` to the AI gateway "
        f"[`ai_gateway/model_selection/models.yml`]({AI_GATEWAY_MODELS_URL})"
        + (f": merge request {config_mr_url}" if config_mr_url else "."),
        "- **Prompt definitions**, one per feature (a new semver version, a `-dev` pre-release first):",
        *(prompts or ["  - None"]),
        "- **Feature flags**, one per feature, that switch it to the new model:",
        *(flags or ["  - None"]),
    ])


def _technical_details(model: ModelDefinition, replaced: ModelDefinition | None) -> str:
    old = f"`{replaced.gitlab_identifier}` ({replaced.name})" if replaced is not None else DASH
    family = ", ".join(f"`{name}`" for name in model.family) or DASH
    return "\n".join([
        "## Technical Details",
        "",
        f"- Model identifier: `{model.gitlab_identifier}`",
        f"- Provider: {model.provider_display} (`{model.provider}`)",
        f"- `max_context_tokens`: {model.max_context_tokens}",
        f"- `params.model`: `{model.params.model}`",
        f"- Family: {family}",
        f"- Cost indicator: {model.cost_indicator}",
        f"- Replaced model: {old}",
    ])


def _implementation_steps(rows: list[FeatureRow]) -> str:
    # Feature rollout issues exist only once init has passed, so an issue URL or
    # any progress past implement means the model is configured and compatible.
    init_done = any(row.issue_url or row.stage in _PAST_IMPLEMENT for row in rows)
    finished = bool(rows) and all(row.stage.terminal or row.done for row in rows) and any(
        row.done for row in rows
    )
    return "\n".join([
        "## Implementation Steps",
        "",
        f"{_box(init_done)} Add the model configuration to the AI gateway",
        f"{_box(init_done)} Verify infrastructure compatibility",
        *(f"{_box(row.done)} {row.feature.title}: rollout complete" for row in rows),
        f"{_box(finished)} Update the documentation",
        f"{_box(finished)} Remove references to the old model",
    ])


def _priority(replaced: ModelDefinition | None, target_date: date | None) -> str:
    deprecation = replaced.deprecation if replaced is not None else None
    if replaced is not None and deprecation is not None and deprecation.retirement_date is not None:
        retires = fmt_date(deprecation.retirement_date)
        if target_date is None:
            return f'~"priority::1" — {replaced.name} retires on {retires} and no target date is set'
        lead = (deprecation.retirement_date - target_date).days
        if lead < 0:
            return (
                f'~"priority::1" — the target date is {-lead} day(s) after {replaced.name} '
                f"retires on {retires}"
            )
        level = 1 if lead < MIN_LEAD_DAYS else 2
        return (
            f'~"priority::{level}" — the target date is {lead} day(s) before {replaced.name} '
            f"retires on {retires}"
        )
    if replaced is not None and deprecation is not None:
        deprecated = fmt_date(deprecation.deprecation_date)
        return f'~"priority::2" — {replaced.name} was deprecated on {deprecated}'
    if target_date is not None:
        return f'~"priority::3" — planned upgrade with a target date of {fmt_date(target_date)}'
    return '~"priority::3" — planned upgrade without a target date'


def _timeline(replaced: ModelDefinition | None, target_date: date | None, complex_migration: bool) -> str:
    duration = "complex (1–2 months)" if complex_migration else "simple migration (1–2 weeks)"
    return "\n".join([
        "## Timeline",
        "",
        f"- Priority: {_priority(replaced, target_date)}",
        f"- Expected duration: {duration}",
        f"- Target date: {fmt_date(target_date)}",
    ])


def _references(replaced: ModelDefinition | None) -> str:
    lines = [
        "## References",
        "",
        f"- [AI gateway model definitions (`models.yml`)]({AI_GATEWAY_MODELS_URL})",
        f"- [Model migration process]({PROCESS_URL})",
    ]
    if replaced is not None and replaced.deprecation is not None:
        dep = replaced.deprecation
        text = (
            f"- Deprecation of {replaced.name} (`{replaced.gitlab_identifier}`): "
            f"deprecated {fmt_date(dep.deprecation_date)}"
        )
        if dep.retirement_date is not None:
            text += f", retires {fmt_date(dep.retirement_date)}"
        if dep.removal_version:
            text += f", removed in GitLab {dep.removal_version}"
        page = DEPRECATION_PAGES.get(replaced.provider)
        lines.append(text + (f" ([provider notice]({page}))" if page else ""))
    return "\n".join(lines)


def _proposed_solution(
    model: ModelDefinition, replaced: ModelDefinition | None, rows: list[FeatureRow]
) -> str:
    old = f" and remove the references to {replaced.name}" if replaced is not None else ""
    return (
        f"## Proposed Solution\n\nAdd {model.name} to the AI gateway and verify that it can serve every "
        f"feature. Then each of the {len(rows)} feature team(s) migrates independently: a new prompt "
        "version for the model behind the feature's flag, an evaluation against the current baseline "
        "on the feature's dataset (fewer than 20 % poor answers), a gradual rollout of the flag with "
        f"metrics watched at every step, and cleanup. When every feature is done, update the docs{old}."
    )


def _feature_table(rows: list[FeatureRow]) -> str:
    lines = ["| Feature | DRI | ETA | Issue Link |", "|---|---|---|---|"]
    lines += [
        f"| {cell(row.feature.title)} | {mention(row.feature.dri)} | {fmt_date(row.eta)} "
        f"| {issue_link(row.issue_url)} |"
        for row in rows
    ]
    return "\n".join(lines)


def rollout_issue_title(feature: FeatureSpec, model: ModelDefinition) -> str:
    return f"AI Model Rollout: {feature.title} to {model.name}"


def rollout_issue_body(
    *,
    feature: FeatureSpec,
    model: ModelDefinition,
    replaced: ModelDefinition | None,
    due: dict[FeatureStage, date],
    tracking_issue_url: str,
    ladder: list[int],
) -> str:
    """A feature's rollout plan, following GitLab's "AI Model Rollout" template."""
    current = f"`{feature.current_model}`"
    if replaced is not None:
        current = f"`{replaced.gitlab_identifier}` ({replaced.name})"
    flag = feature.flag
    rollout_date = fmt_date(due.get(FeatureStage.ROLLOUT))
    audiences = [("Non-production (staging)", "100%"), ("GitLab team members (`gitlab_team_members`)", DASH)]
    audiences += [("Actors (`percentage_of_actors`)", f"{percent}%") for percent in ladder]
    steps = " → ".join(f"{percent}%" for percent in ladder) or DASH
    return "\n".join([
        "## Overview",
        "",
        f"Roll out **{model.name}** for **{feature.title}**, replacing {current}.",
        "",
        "| Resource | Value |",
        "|---|---|",
        f"| Feature | {cell(feature.title)} (`{feature.name}`) |",
        f"| Prompt ID | `{feature.prompt_id}` |",
        f"| Current model | {current} |",
        f"| New model | `{model.gitlab_identifier}` ({model.name}) |",
        f"| Feature flag | `{flag}` |",
        f"| Evaluation dataset | `{feature.dataset}` |",
        f"| DRI | {mention(feature.dri)} |",
        f"| Tracking issue | {tracking_issue_url or DASH} |",
        "",
        "## Success criteria",
        "",
        "- Fewer than 20 % poor answers on the evaluation dataset (LLM-judge correctness 1–2 of 4, "
        "or cosine similarity to the reference below 0.8).",
        "- Cosine similarity >= 0.8 and LLM-judge correctness, readability and comprehensiveness "
        "not worse than the baseline.",
        "- Error rate and latency (p50/p90/p95) not worse than the baseline model.",
        "",
        "## Timeline",
        "",
        "| Audience | Percentage | Date |",
        "|---|---|---|",
        *(f"| {audience} | {percent} | {rollout_date} |" for audience, percent in audiences),
        "",
        "### Stage due dates",
        "",
        *(f"- {stage.capitalize()}: {fmt_date(due.get(stage))}"
          for stage in (FeatureStage.IMPLEMENT, FeatureStage.EVALUATE, FeatureStage.ROLLOUT, FeatureStage.CLEANUP)),
        "",
        "## Continue criteria",
        "",
        "- At least 15 minutes at each step before the next one.",
        "- Error ratio and latency at or below the baseline, and the acceptance rate not lower.",
        "- No open incident involving the feature.",
        "- At least 1 day at 100% before cleanup.",
        "",
        "## Rollback criteria",
        "",
        "- Error ratio or latency above the baseline, or the acceptance rate drops.",
        "- User reports of wrong or harmful answers, or any incident involving the feature.",
        "",
        "## Mitigation",
        "",
        f"Disable the feature flag `{flag}`: `/chatops run feature set {flag} false`. "
        f"The feature goes back to {current} at once, with no deploy.",
        "",
        "## Checklist",
        "",
        f"- [ ] Implement: prompt definition `{_prompt_dir(feature.prompt_id, model)}<version>.yml` "
        f"(`-dev` first) and feature flag `{flag}` (due {fmt_date(due.get(FeatureStage.IMPLEMENT))})",
        f"- [ ] Evaluate: candidate against baseline on `{feature.dataset}`, result posted here "
        f"(due {fmt_date(due.get(FeatureStage.EVALUATE))})",
        f"- [ ] Roll out: non-production → team members → {steps} (due {rollout_date})",
        "- [ ] Cleanup: 1 day at 100%, delete the flag, update docs, close this issue "
        f"(due {fmt_date(due.get(FeatureStage.CLEANUP))})",
    ]) + "\n"
