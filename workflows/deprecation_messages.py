"""Payloads of the deprecation workflow: its input, updates, status and result.

New fields always get defaults so that older workers decode newer payloads.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model_migration.domain.deprecation import DEFAULT_CALENDAR, CalendarStep, DeprecationRequest, PlanRules
from model_migration.domain.deprecation_run import FeatureResult, FiredEntry
from model_migration.domain.models import EpicRef, FeatureSpec, ModelDefinition
from model_migration.domain.replacement import Choice
from model_migration.domain.stages import FeatureStage
from model_migration.domain.tournament import TournamentResult
from workflows.messages import FeatureProgress, Tunables

FROZEN = ConfigDict(frozen=True)
#: The deprecation workflow's revisions; see ``workflows/versions.py``.
DEPRECATION_REVISION = 1


def deprecation_id(model: ModelDefinition) -> str:
    """``deprecation:<provider>/<model>``: one deprecation per provider model."""
    return f"deprecation:{model.provider}/{model.model}"


class DeprecationStage(StrEnum):
    TOURNAMENT = "tournament"  # the candidates are being evaluated
    SELECTING = "selecting"  # a close call: waiting for select_replacement
    MIGRATING = "migrating"  # the child migration runs
    DONE = "done"


class DeprecationInput(BaseModel):
    model_config = FROZEN
    request: DeprecationRequest
    retiring: ModelDefinition
    recommended: ModelDefinition | None = None
    candidates: tuple[ModelDefinition, ...] = ()
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    tunables: Tunables = Field(default_factory=Tunables)
    rules: PlanRules = Field(default_factory=PlanRules)
    calendar: tuple[CalendarStep, ...] = DEFAULT_CALENDAR
    #: How long a plan day lasts in workflow time: a day, or seconds in a rehearsal.
    day: timedelta = timedelta(days=1)
    #: The starter's clock, so that the plan it printed is the plan the workflow runs.
    planned_from: datetime | None = None
    initiative_epic: EpicRef | None = None
    started_by: str = "ai-framework"
    #: The prompt version each candidate is evaluated with.
    prompt_version: str = "1.0.0-dev"
    revision: int = Field(default=DEPRECATION_REVISION, ge=1)

    @field_validator("day")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a plan day must last longer than zero")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeprecationInput:
        if self.retiring.gitlab_identifier != self.request.model:
            raise ValueError(f"the retiring model {self.retiring.gitlab_identifier} is not the request's {self.request.model}")
        ids = [c.gitlab_identifier for c in self.contenders]
        if self.retiring.gitlab_identifier in ids:
            raise ValueError(f"{self.retiring.gitlab_identifier} is the model being retired, not a replacement")
        wrong = [f.name for f in self.features if f.current_model != self.retiring.gitlab_identifier]
        if wrong:
            raise ValueError(f"features not on {self.retiring.gitlab_identifier}: {', '.join(wrong)}")
        return self

    @property
    def contenders(self) -> tuple[ModelDefinition, ...]:
        """The provider's recommendation first, then the other candidates, each once."""
        seen: dict[str, ModelDefinition] = {}
        for model in (*((self.recommended,) if self.recommended else ()), *self.candidates):
            seen.setdefault(model.gitlab_identifier, model)
        return tuple(seen.values())


class SelectReplacement(BaseModel):
    """AI Framework settles a close call. ``definition``: a catalog model that was not a candidate."""

    model_config = FROZEN
    model: str
    reason: str
    actor: str = "ai-framework"
    definition: ModelDefinition | None = None


class UpdateCutoff(BaseModel):
    model_config = FROZEN
    new_date: date
    reason: str
    actor: str = "ai-framework"


class CutoffChange(BaseModel):
    model_config = FROZEN
    at: datetime
    old: date
    new: date
    reason: str
    actor: str


class DeprecationCommandResult(BaseModel):
    model_config = FROZEN
    stage: DeprecationStage
    message: str


class DeprecationStatus(BaseModel):
    model_config = FROZEN
    kind: str = "deprecation"
    workflow_id: str
    stage: DeprecationStage
    model: str
    provider: str
    cutoff: date
    due: date
    today: date
    days_left: int
    feasible: bool
    plan_summary: str
    epic_url: str = ""
    replacement: str = ""
    fallback: str = ""
    choice: Choice | None = None
    tournament: dict[str, TournamentResult | None] = Field(default_factory=dict)
    features: tuple[FeatureProgress, ...] = ()
    on_track: tuple[str, ...] = ()
    late: tuple[str, ...] = ()
    fired: tuple[FiredEntry, ...] = ()
    next_escalation: date | None = None
    cutoff_changes: tuple[CutoffChange, ...] = ()
    migration_id: str = ""
    #: Why GitLab refused the engine, until someone fixes it and runs ``resume``.
    blocked: str = ""


class DeprecationResult(BaseModel):
    model_config = FROZEN
    workflow_id: str
    model: str
    replacement: str = ""
    fallback: str = ""
    epic_url: str = ""
    features: tuple[FeatureResult, ...] = ()
    escalations: tuple[FiredEntry, ...] = ()
    cutoff: date
    due: date

    @property
    def all_finished(self) -> bool:
        return all(f.stage in (FeatureStage.DONE, FeatureStage.ABORTED) for f in self.features)
