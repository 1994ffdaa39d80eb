"""Domain models shared by every layer: catalog entries, GitLab objects, plans.

Models that cross a Temporal boundary keep defaults on every new field so that
older workers still decode newer payloads.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from model_migration.domain.evaluation import EvaluationSpec
from model_migration.domain.rollout_spec import RolloutSpec

_EPIC_URL = re.compile(r"/groups/(?P<group>[^?#]+?)/-/epics/(?P<iid>\d+)/?$")

#: Unknown fields are ignored, so a payload from a newer worker or CLI still decodes here.
#: (The catalog loader refuses unknown keys itself: a typo there must not pass unseen.)
FROZEN = ConfigDict(frozen=True)

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
    #: Harness, margins and loop cap of its evaluation gate (``domain/evaluation.py``).
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    #: Who drives its flag (the engine, on which target, along which ladder) or the team by hand (``domain/rollout_spec.py``).
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)


class EpicRef(BaseModel):
    """An epic by GitLab's reference, ``<group path>&<iid>``."""

    model_config = FROZEN
    group: str
    iid: int = Field(ge=1)

    @classmethod
    def parse(cls, text: str) -> EpicRef:
        group, sep, iid = text.strip().rpartition("&")
        if not sep or not group or not iid.isdigit() or int(iid) < 1:
            raise ValueError(f"{text!r} is not an epic reference: use <group path>&<iid>, e.g. gitlab-org&12345")
        return cls(group=group, iid=int(iid))

    @classmethod
    def from_web_url(cls, url: str) -> EpicRef:
        """From an epic's ``web_url``, ``<base>/groups/<group path>/-/epics/<iid>``."""
        found = _EPIC_URL.search(url)
        if found is None:
            raise ValueError(f"{url!r} is not an epic's URL")
        return cls(group=found["group"], iid=int(found["iid"]))

    def __str__(self) -> str:
        return f"{self.group}&{self.iid}"


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


class Epic(BaseModel):
    """A group epic. ``due_date`` is the fixed due date when one is set."""

    model_config = FROZEN
    id: int
    iid: int
    group_id: int
    title: str
    description: str = ""
    state: str = "opened"
    labels: list[str] = Field(default_factory=list)
    web_url: str = ""
    due_date: date | None = None
    due_date_is_fixed: bool = False


class EpicDraft(BaseModel):
    """What epic to create; ``marker`` is a hidden key derived from the workflow id."""

    model_config = FROZEN
    title: str
    description: str
    marker: str
    labels: list[str] = Field(default_factory=list)
    due_date: date | None = None


class IssueLink(BaseModel):
    """A link between two issues, seen from ``source_iid``'s side."""

    model_config = FROZEN
    id: int
    source_iid: int
    target_iid: int
    target_project_id: int = 0
    link_type: str = "relates_to"  # relates_to | blocks | is_blocked_by


class Hook(BaseModel):
    """A project webhook. ``events`` are GitLab's switches without ``_events``, e.g. "issues"."""

    model_config = FROZEN
    id: int
    url: str
    project_id: int = 0
    events: list[str] = Field(default_factory=list)


class FlagGate(BaseModel):
    """One gate of an instance (Flipper) feature flag, as ``GET /features`` shows it.

    ``key`` is boolean, actors, groups, percentage_of_actors or percentage_of_time;
    ``value`` is a bool, a percentage, or flipper ids (``User:1``) / feature group names.
    """

    model_config = FROZEN
    key: str
    value: bool | int | float | list[str] | None = None


class InstanceFlag(BaseModel):
    """An instance feature flag (GitLab's own ``Feature``); ``state`` is on, off or conditional."""

    model_config = FROZEN
    name: str
    state: str = "off"
    gates: list[FlagGate] = Field(default_factory=list)

    def gate(self, key: str) -> FlagGate | None:
        return next((gate for gate in self.gates if gate.key == key), None)

    @property
    def percentage_of_actors(self) -> float:
        """The rollout percentage: 100 when fully on, 0 when off or gated to actors only."""
        if self.state == "on":
            return 100.0
        gate = self.gate("percentage_of_actors")
        return float(gate.value) if gate and isinstance(gate.value, (int, float)) else 0.0


class FlagStrategy(BaseModel):
    """A project (Unleash) feature flag strategy. Percentages are strings "0".."100", as the
    API wants them. ``id`` is GitLab's, set on strategies read back from it."""

    model_config = FROZEN
    name: str  # default | gradualRolloutUserId | flexibleRollout | userWithId | gitlabUserList
    parameters: dict[str, str] = Field(default_factory=dict)
    scopes: list[str] = Field(default_factory=lambda: ["*"])  # environment scopes
    id: int | None = None
    user_list_id: int | None = None

    @classmethod
    def percent_of_users(cls, percentage: int, *, scopes: list[str] | None = None) -> FlagStrategy:
        return cls(
            name="gradualRolloutUserId",
            parameters={"groupId": "default", "percentage": str(percentage)},
            scopes=scopes or ["*"],
        )

    @classmethod
    def percent_rollout(
        cls, percentage: int, *, stickiness: str = "default", scopes: list[str] | None = None
    ) -> FlagStrategy:
        return cls(
            name="flexibleRollout",
            parameters={"groupId": "default", "rollout": str(percentage), "stickiness": stickiness},
            scopes=scopes or ["*"],
        )


class ProjectFlag(BaseModel):
    """A project's (Unleash) feature flag, ``version`` new_version_flag."""

    model_config = FROZEN
    name: str
    description: str = ""
    active: bool = True
    version: str = "new_version_flag"
    strategies: list[FlagStrategy] = Field(default_factory=list)


class Branch(BaseModel):
    model_config = FROZEN
    name: str
    commit_id: str = ""
    default: bool = False
    web_url: str = ""


class Commit(BaseModel):
    model_config = FROZEN
    id: str  # the full SHA
    short_id: str = ""
    title: str = ""
    message: str = ""
    author_name: str = ""
    created_at: datetime | None = None
    web_url: str = ""


class MergeRequest(BaseModel):
    model_config = FROZEN
    id: int
    iid: int
    project_id: int = 0
    title: str = ""
    description: str = ""
    state: str = "opened"  # opened | closed | merged | locked
    source_branch: str = ""
    target_branch: str = ""
    labels: list[str] = Field(default_factory=list)
    web_url: str = ""
    sha: str | None = None  # head of the source branch
    merge_commit_sha: str | None = None
    merged_at: datetime | None = None


#: Pipeline and job statuses after which nothing changes any more.
CI_FINISHED = frozenset({"success", "failed", "canceled", "skipped"})


class Pipeline(BaseModel):
    model_config = FROZEN
    id: int
    iid: int = 0
    project_id: int = 0
    ref: str = ""
    sha: str = ""
    status: str = "created"
    source: str = ""
    web_url: str = ""
    created_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in CI_FINISHED


class Job(BaseModel):
    model_config = FROZEN
    id: int
    name: str
    stage: str = ""
    status: str = "created"
    pipeline_id: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    failure_reason: str | None = None
    has_artifacts: bool = False
    web_url: str = ""


def marker_comment(key: str) -> str:
    """The hidden HTML comment that lets a retried activity find what it created."""
    return f"<!-- model-migration:{key} -->"


class Notice(BaseModel):
    """A message for people, sent outside GitLab."""

    model_config = FROZEN
    workflow_id: str
    audience: tuple[str, ...]
    subject: str
    body: str = ""
