"""Domain models shared by every layer: catalog entries, GitLab objects, plans.

Models that cross a Temporal boundary keep defaults on every new field so that
older workers still decode newer payloads.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

FROZEN = ConfigDict(frozen=True, extra="forbid")

#: Providers the AI gateway can serve, with their display names.
PROVIDERS: dict[str, str] = {
    "anthropic": "Anthropic",
    "vertex_ai": "Vertex AI",
    "mistral": "Mistral",
    "fireworks_ai": "Fireworks AI",
    "bedrock": "Amazon Bedrock",
    "openai": "OpenAI",
}


class Maturity(StrEnum):
    GA = "GA"
    BETA = "Beta"
    EXPERIMENTAL = "Experimental"


class ModelParams(BaseModel):
    model_config = FROZEN
    model: str
    temperature: float = 0.0
    max_tokens: int = 4096
    max_retries: int = 1
    custom_llm_provider: str | None = None


class PromptParams(BaseModel):
    model_config = FROZEN
    stop: list[str] = Field(default_factory=list)
    timeout: int = 60


class ModelDeprecation(BaseModel):
    model_config = FROZEN
    deprecation_date: date
    removal_version: str | None = None
    retirement_date: date | None = None


class ModelDefinition(BaseModel):
    """An AI gateway ``models.yml`` entry, plus the keys this engine needs."""

    model_config = FROZEN
    name: str
    gitlab_identifier: str
    provider: str
    model: str  # model slug for ids, e.g. "claude-sonnet-4-5"
    version: str  # e.g. "20250929"
    max_context_tokens: int
    family: list[str] = Field(default_factory=list)
    description: str = ""
    cost_indicator: str = "$$"
    params: ModelParams
    prompt_params: PromptParams = Field(default_factory=PromptParams)
    deprecation: ModelDeprecation | None = None

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}/{self.version}"

    @property
    def provider_display(self) -> str:
        return PROVIDERS.get(self.provider, self.provider)


class FeatureSpec(BaseModel):
    """A GitLab Duo feature, as the catalog describes it."""

    model_config = FROZEN
    name: str  # key, e.g. "duo_chat"
    title: str  # e.g. "Duo Chat"
    feature_setting: str
    prompt_id: str
    maturity: Maturity
    group: str  # owning group label, e.g. "group::duo chat"
    dri: str  # GitLab username
    manager: str  # GitLab username of the escalation manager
    current_model: str  # gitlab_identifier
    dataset: str  # "<feature>.<name>.<version>"
    flag: str  # feature flag that switches the feature to the new model
    min_context_tokens: int = 8192


class IssueRef(BaseModel):
    model_config = FROZEN
    id: int = 0
    iid: int
    project_id: int = 0
    web_url: str = ""


class Issue(BaseModel):
    model_config = FROZEN
    id: int
    iid: int
    project_id: int
    title: str
    description: str = ""
    state: str = "opened"
    labels: list[str] = Field(default_factory=list)
    web_url: str = ""
    assignee_ids: list[int] = Field(default_factory=list)
    due_date: date | None = None
    confidential: bool = False

    def ref(self) -> IssueRef:
        return IssueRef(id=self.id, iid=self.iid, project_id=self.project_id, web_url=self.web_url)


class IssueDraft(BaseModel):
    """What to create. ``marker`` is a hidden key derived from the workflow id."""

    model_config = FROZEN
    title: str
    description: str
    marker: str
    labels: list[str] = Field(default_factory=list)
    assignee_username: str | None = None
    due_date: date | None = None
    confidential: bool = False


class Note(BaseModel):
    model_config = FROZEN
    id: int
    body: str
    created_at: datetime | None = None


class User(BaseModel):
    model_config = FROZEN
    id: int
    username: str
    name: str = ""


def marker_comment(key: str) -> str:
    """The hidden HTML comment that lets a retried activity find what it created."""
    return f"<!-- model-migration:{key} -->"
