"""GitLab quick actions in notes (``/label``, ``/unlabel``, ``/due``, ``/close`` ...).

GitLab runs them when a note is created through the API and keeps only the rest of the text
as the note's body; a note made only of commands is answered 202 with no note.

As on GitLab, a command is only recognised when it is available for the issue as it stands
before the note (``/label`` needs the project to have labels at all, ``/unlabel`` needs the
issue to carry some, ``/close`` an open issue ...); an unavailable command stays in the text.
Labels are looked up, never created: ``/label ~unknown`` is consumed and applies nothing.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date

_LINE = re.compile(r"^/(\w+)(?:[ \t]+(.*))?$")
# GitLab's label reference: ``~"any words"``, or a bare name of these characters, in parts
# joined by ``:`` or ``::`` and not ending in ``.`` or ``?`` (``Label.reference_pattern``).
_WORD = r"[A-Za-z0-9_\-?.&]+"
_LABEL = re.compile(rf'~"([^"]+)"|~({_WORD}(?::{{1,2}}{_WORD})*)(?<![.?])')
_BARE = re.compile(r'"([^"]+)"|([^ ]+)')


@dataclass(frozen=True)
class Target:
    """What decides which commands are available: the issue before the note, and the labels
    its project can use (project labels and its groups')."""

    project_labels: Collection[str]
    labels: Collection[str]
    state: str = "opened"
    due_date: str | None = None


@dataclass
class Commands:
    add_labels: list[str] = field(default_factory=list)
    remove_labels: list[str] = field(default_factory=list)
    remove_all_labels: bool = False
    due_date: date | None = None
    remove_due_date: bool = False
    state_event: str | None = None

    @property
    def any(self) -> bool:
        return bool(
            self.add_labels or self.remove_labels or self.remove_all_labels or self.due_date
            or self.remove_due_date or self.state_event
        )

    def summary(self) -> list[str]:
        said = []
        if self.add_labels:
            said.append("Added " + " ".join(f'~"{name}"' for name in self.add_labels) + " label(s).")
        if self.remove_labels or self.remove_all_labels:
            said.append("Removed label(s).")
        if self.due_date:
            said.append(f"Set the due date to {self.due_date:%B %-d, %Y}.")
        if self.remove_due_date:
            said.append("Removed the due date.")
        if self.state_event:
            said.append("Closed this issue." if self.state_event == "close" else "Reopened this issue.")
        return said


def parse(body: str, target: Target) -> tuple[str, Commands]:
    """Split a note into its text and the quick actions it carries (unknown or unavailable
    commands stay text)."""
    commands = Commands()
    kept: list[str] = []
    fenced = False
    for line in body.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _LINE.match(line.strip())
        if match is None or not _apply(commands, target, match.group(1), match.group(2) or ""):
            kept.append(line)
    return "\n".join(kept).strip("\n"), commands


def label_names(argument: str) -> list[str]:
    """The label names an argument refers to: ``~`` references, or, when it has no ``~`` at
    all, plain names (``"two words" one``), as GitLab reads both."""
    pattern = _LABEL if "~" in argument else _BARE
    return [quoted or plain for quoted, plain in pattern.findall(argument)]


def _date(argument: str) -> date | None:
    try:
        return date.fromisoformat(argument.strip())
    except ValueError:
        return None


def _apply(commands: Commands, target: Target, name: str, argument: str) -> bool:
    """Record one command; False when GitLab would not recognise it for this issue."""
    known = set(target.project_labels)
    labels = [label for label in label_names(argument) if label in known]
    if name in ("label", "labels"):
        if not known:
            return False
        commands.add_labels += [label for label in labels if label not in commands.add_labels]
    elif name in ("unlabel", "remove_label"):
        if not target.labels:
            return False
        if argument.strip():
            commands.remove_labels += labels
        else:
            commands.remove_all_labels = True
    elif name == "due":
        # GitLab consumes the line even when it cannot read the date; it then sets nothing.
        commands.due_date = _date(argument) or commands.due_date
    elif name == "remove_due_date":
        if not target.due_date:
            return False
        commands.remove_due_date = True
    elif name == "close" and target.state == "opened" or name == "reopen" and target.state == "closed":
        commands.state_event = name
    else:
        return False
    return True
