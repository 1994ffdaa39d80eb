"""The deprecation epic's text: ``Replace discontinued <model> with <replacement, or TBD>``.

Its description carries the timeline, the provider's recommendation, the announcement, every
affected feature (maturity, group, DRI) and the backward plan, so that whoever opens the epic
sees what is due when without asking. Pure: the plan and the models are arguments.
"""

from __future__ import annotations

from model_migration.domain.deprecation import BackwardPlan, DeprecationRequest, escalation_calendar
from model_migration.domain.models import ModelDefinition
from model_migration.domain.notes import cell, fmt_date, mention
from model_migration.domain.stages import FeatureStage

LABELS = ("AI Model Migration", "group::ai framework")


def epic_title(retiring: ModelDefinition, replacement: ModelDefinition | None) -> str:
    return f"Replace discontinued {retiring.name} with {replacement.name if replacement else 'TBD'}"


def epic_body(
    request: DeprecationRequest, plan: BackwardPlan, retiring: ModelDefinition, recommended: ModelDefinition | None,
    candidates: tuple[ModelDefinition, ...] = (),
) -> str:
    lines = [
        f"{retiring.provider_display} retires **{retiring.name}** (`{retiring.gitlab_identifier}`).",
        "",
        "## Timeline",
        "",
        f"- Deprecation announced: {fmt_date(request.deprecation_date)}",
        f"- Internal due date (this epic): **{fmt_date(plan.due)}**, {plan.lead_time_days} days before the cutoff",
        f"- Provider cutoff: **{fmt_date(plan.cutoff)}**",
        f"- Plan: {plan.summary()}",
    ]
    if request.announcement_url:
        lines.append(f"- Announcement: {request.announcement_url}")
    lines += ["", "## Replacement", ""]
    named = f"{recommended.name} (`{recommended.gitlab_identifier}`)" if recommended else "none given"
    lines.append(f"- Provider's recommendation: {named}")
    if candidates:
        lines.append("- Candidates, evaluated against the current model on each feature's dataset: "
                     + ", ".join(f"{c.name} (`{c.gitlab_identifier}`, cost {c.cost_indicator})" for c in candidates))
    lines += [
        "", "## Affected features and the backward plan", "",
        "| Feature | Maturity | Group | DRI | Implement by | Evaluate by | Roll out by | Clean up by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in plan.features:
        latest = [fmt_date(f.window(s).latest_start) for s in (FeatureStage.EVALUATE, FeatureStage.ROLLOUT, FeatureStage.CLEANUP)]
        implement = fmt_date(f.window(FeatureStage.IMPLEMENT).due) + (f" (**{f.shortfall_days} days short**)" if f.shortfall_days else "")
        lines.append(f"| {cell(f.title)} | {f.maturity} | ~\"{f.group}\" | {mention(f.dri)} | {implement} | " + " | ".join(latest) + " |")
    lines += ["", "## Escalations", ""]
    lines += [f"- {fmt_date(e.on)}: {e.name} → {e.audience}" + (f", ~\"{e.label}\"" if e.label else "") for e in escalation_calendar(plan)]
    return "\n".join(lines)
