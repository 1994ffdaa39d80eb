"""GitLab quick actions in notes (``/label``, ``/unlabel``, ``/due``, ``/close`` ...).

GitLab runs them when a note is created through the API and keeps only the rest of the text
as the note's body; a note made only of commands is answered 202 with no note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

_LINE = re.compile(r"^/(\w+)(?:[ \t]+(.*))?$")
_LABEL = re.compile(r'~"([^"]+)"|~(\S+)')


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


def parse(body: str) -> tuple[str, Commands]:
    """Split a note into its text and the quick actions it carries (unknown commands stay text)."""
    commands = Commands()
    kept: list[str] = []
    fenced = False
    for line in body.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _LINE.match(line.strip())
        if match is None or not _apply(commands, match.group(1), match.group(2) or ""):
            kept.append(line)
    return "\n".join(kept).strip("\n"), commands


def _apply(commands: Commands, name: str, argument: str) -> bool:
    labels = [quoted or plain for quoted, plain in _LABEL.findall(argument)]
    if name in ("label", "labels"):
        commands.add_labels += labels
    elif name == "unlabel":
        if labels:
            commands.remove_labels += labels
        else:
            commands.remove_all_labels = True
    elif name == "due":
        try:
            commands.due_date = date.fromisoformat(argument.strip())
        except ValueError:
            return False
    elif name == "remove_due_date":
        commands.remove_due_date = True
    elif name in ("close", "reopen"):
        commands.state_event = name
    else:
        return False
    return True
