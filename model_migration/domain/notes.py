"""Markdown for the notes the engine posts on GitLab issues, and shared formatting.

Pure: every date and time is passed in, nothing reads a clock. The issue bodies
live in ``templates.py``, which re-exports everything here.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from model_migration.domain.stages import AnyStage

_UNITS: tuple[tuple[str, int], ...] = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
_ISSUE_NUMBER = re.compile(r"/-/(?:issues|work_items)/(\d+)/?$")

#: Verbs for ``command_note``; an unknown command is shown as it was given.
COMMAND_VERBS: dict[str, str] = {
    "pause": "Paused",
    "resume": "Resumed",
    "abort": "Aborted",
    "extend_deadline": "Deadline extended",
    "report_evaluation": "Evaluation reported",
    "report_rollout": "Rollout reported",
    "rerun_evaluation": "Evaluation re-run",
    "gate": "Evaluation gate",
}

DASH = "—"


def fmt_date(value: date | None) -> str:
    """ISO ``YYYY-MM-DD``, or a dash when unknown."""
    return value.isoformat() if value is not None else DASH


def fmt_datetime(value: datetime) -> str:
    """``YYYY-MM-DD HH:MM UTC``; a naive datetime is taken to be UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M") + " UTC"


def mention(username: str) -> str:
    name = username.strip().lstrip("@")
    return f"@{name}" if name else "(unassigned)"


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ") or DASH


def issue_link(url: str) -> str:
    """``[#12](url)`` for an issue URL, a dash until the URL is known."""
    if not url:
        return DASH
    found = _ISSUE_NUMBER.search(url)
    return f"[#{found.group(1)}]({url})" if found else f"[link]({url})"


def humanize_delta(delta: timedelta) -> str:
    """The largest unit, plus the next one when it is not zero: "1 day 23 hours", "45 seconds".

    The sign is ignored; callers choose "in" or "ago".
    """
    seconds = abs(int(delta.total_seconds()))
    for index, (unit, size) in enumerate(_UNITS):
        if seconds >= size or size == 1:
            count, rest = divmod(seconds, size)
            text = _plural(count, unit)
            if index + 1 < len(_UNITS):
                sub_unit, sub_size = _UNITS[index + 1]
                sub_count = rest // sub_size
                if sub_count:
                    text += " " + _plural(sub_count, sub_unit)
            return text
    raise AssertionError("unreachable")  # the seconds unit always matches


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def transition_note(
    *,
    feature_title: str,
    from_stage: AnyStage,
    to_stage: AnyStage,
    actor: str,
    at: datetime,
    detail: str = "",
    next_due: date | None = None,
    owner: str | None = None,
) -> str:
    """One note per stage transition, naming who moved it and what comes next."""
    prefix = f"{feature_title}: " if feature_title else ""
    by = mention(actor) if actor.strip() else "the engine"
    parts = [f"{prefix}**{from_stage} → {to_stage}** by {by} at {fmt_datetime(at)}."]
    if detail.strip():
        parts.append(detail.strip())
    if not to_stage.terminal:
        following = f"Next: {to_stage}"
        if next_due is not None:
            following += f", due {fmt_date(next_due)}"
        if owner:
            following += f" (owner {mention(owner)})"
        parts.append(following + ".")
    return " ".join(parts)


def escalation_note(
    *,
    kind: str,
    stage: AnyStage,
    due: datetime,
    dri: str,
    manager: str,
    at: datetime,
    occurrence: int = 0,
    feature_title: str = "",
) -> str:
    """A deadline note. ``kind`` is reminder | due | overdue; ``occurrence`` 0 is the first overdue notice."""
    what = f"**{feature_title}** stage **{stage}**" if feature_title else f"stage **{stage}**"
    people = mention(dri)
    if manager.strip().lstrip("@") != dri.strip().lstrip("@"):
        people += " " + mention(manager)
    when = fmt_datetime(due)
    if kind == "reminder":
        if due <= at:
            return f"{mention(dri)} reminder: {what} is due now ({when})."
        return (
            f"{mention(dri)} reminder: {what} is due in {humanize_delta(due - at)} ({when}). "
            "Complete it before then, or extend the deadline if you need more time."
        )
    if kind == "due":
        return (
            f"{people} {what} is due now ({when}). Please complete it today or extend the "
            'deadline. Priority: ~"priority::2".'
        )
    if kind == "overdue":
        late = humanize_delta(at - due) if at > due else "less than a second"
        return (
            f"{people} {what} is overdue by {late} (was due {when}). "
            f'Overdue notice #{occurrence + 1}. Priority: ~"priority::1".'
        )
    raise ValueError(f"unknown escalation kind {kind!r}: expected reminder, due or overdue")


def compatibility_note(problems: list[str]) -> str:
    """The result of the infrastructure compatibility check, for the tracking issue."""
    if not problems:
        return "### Infrastructure compatibility check passed\n\nThe new model can serve every feature."
    lines = [
        "### Infrastructure compatibility check failed",
        "",
        "The new model cannot serve every feature yet:",
        "",
        *(f"- {problem}" for problem in problems),
        "",
        "What to do: fix the model definition in the AI gateway (`ai_gateway/model_selection/models.yml`, "
        "for example `max_context_tokens` or `params`) or the feature's requirements in the catalog, "
        "then start the migration again. No feature work starts until this check passes.",
    ]
    return "\n".join(lines)


def summary_note(*, migration_id: str, outcomes: list[tuple[str, str, str]], at: datetime) -> str:
    """The closing note: one row per feature (title, outcome, issue URL) and the counts."""
    done = sum(1 for _, outcome, _ in outcomes if outcome == "done")
    aborted = sum(1 for _, outcome, _ in outcomes if outcome == "aborted")
    other = len(outcomes) - done - aborted
    counts = f"{done} done, {aborted} aborted" + (f", {other} other" if other else "")
    lines = [
        "### Migration summary",
        "",
        f"`{migration_id}` finished at {fmt_datetime(at)}: {counts}.",
        "",
        "| Feature | Outcome | Issue |",
        "|---|---|---|",
        *(f"| {cell(title)} | {cell(outcome)} | {issue_link(url)} |" for title, outcome, url in outcomes),
    ]
    return "\n".join(lines)


def command_note(*, command: str, actor: str, at: datetime, detail: str = "") -> str:
    """A note for a human command: "**Paused** by @x at ... UTC: <reason>"."""
    verb = COMMAND_VERBS.get(command, command)
    by = mention(actor) if actor.strip() else "the engine"
    head = f"**{verb}** by {by} at {fmt_datetime(at)}"
    return f"{head}: {detail.strip()}" if detail.strip() else f"{head}."
