"""Payloads of the deprecation watch: its input and its report (the workflow's and the activity's).

New fields always get defaults, so that older workers decode newer payloads.
"""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict, Field

FROZEN = ConfigDict(frozen=True)
#: The activity's name, as the worker registers it.
WATCH_ACTIVITY = "watch_deprecations"
#: The workflow's type name, as schedules and starters name it.
WATCH_WORKFLOW = "DeprecationWatchWorkflow"


class WatchInput(BaseModel):
    model_config = FROZEN
    #: Recorded as the starter of every deprecation the watch starts, and the author of its cutoff updates.
    actor: str = "deprecation-watch"
    #: Read the AI gateway as well as the catalog.
    gateway: bool = True
    #: How long one pass may take before Temporal retries it.
    timeout: timedelta = Field(default=timedelta(minutes=5), gt=timedelta(0))


class CutoffMove(BaseModel):
    model_config = FROZEN
    workflow_id: str
    old: date
    new: date
    source: str


class Skipped(BaseModel):
    """A notice the watch did not act on, and why (one line)."""

    model_config = FROZEN
    workflow_id: str
    model: str
    reason: str


class SourceError(BaseModel):
    """A source that could not be read; the other sources' notices still ran."""

    model_config = FROZEN
    source: str
    error: str


class WatchReport(BaseModel):
    model_config = FROZEN
    #: How many notices the sources gave, one per model after merging.
    notices: int = 0
    started: tuple[str, ...] = ()
    updated: tuple[CutoffMove, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    source_errors: tuple[SourceError, ...] = ()

    def lines(self) -> list[str]:
        """The report for a person, one line per fact."""
        out = [f"{self.notices} deprecation notices: {len(self.started)} started, {len(self.updated)} cutoffs moved, "
               f"{len(self.skipped)} skipped"]
        out += [f"started {wid}" for wid in self.started]
        out += [f"moved {m.workflow_id}: cutoff {m.old} → {m.new} (the {m.source})" for m in self.updated]
        out += [f"skipped {s.workflow_id} ({s.model}): {s.reason}" for s in self.skipped]
        out += [f"source error: {e.source}: {e.error}" for e in self.source_errors]
        return out
