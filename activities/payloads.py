"""Activity names and payloads.

Workflows import this module (never the activity implementations, which pull in
clients), and call activities by these names.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from model_migration.domain.evaluation import HarnessKind
from model_migration.domain.gate import GateConfig
from model_migration.domain.models import EpicDraft, EpicRef, IssueDraft, IssueRef, ModelDefinition
from model_migration.domain.templates import FeatureRow

FROZEN = ConfigDict(frozen=True)


class Activity(StrEnum):
    ENSURE_ISSUE = "ensure_issue"
    UPDATE_ISSUE = "update_issue"
    POST_NOTE = "post_note"
    ENSURE_CONFIG_MR = "ensure_model_config_mr"
    MERGE_REQUEST_STATE = "merge_request_state"
    ENSURE_ISSUE_LINK = "ensure_issue_link"
    NOTIFY = "notify"
    ENSURE_LABELS = "ensure_labels"
    RUN_EXPERIMENT = "run_experiment"
    JUDGE_GATE = "judge_gate"
    ADD_TO_EPIC = "add_to_epic"
    ENSURE_EPIC = "ensure_epic"
    UPDATE_EPIC = "update_epic"
    POST_EPIC_NOTE = "post_epic_note"
    FILE_EPIC_UNDER = "file_epic_under"
    ENSURE_CLEANUP_MR = "ensure_cleanup_mr"
    ENSURE_FLAG_ISSUE = "ensure_flag_issue"
    WRITE_ROLLOUT_ISSUES = "write_rollout_issues"
    WRITE_TRACKING_ISSUE = "write_tracking_issue"


class EnsureIssueInput(BaseModel):
    model_config = FROZEN
    draft: IssueDraft


class UpdateIssueInput(BaseModel):
    model_config = FROZEN
    iid: int
    description: str | None = None
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    state_event: str | None = None


class PostNoteInput(BaseModel):
    """A note found again by ``marker`` on a retry, so it is posted once."""

    model_config = FROZEN
    iid: int
    body: str
    marker: str
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    due_date: date | None = None
    #: Close the issue with this note (``/close``), saving the separate update.
    close: bool = False


class NoteRef(BaseModel):
    model_config = FROZEN
    id: int
    created: bool = True


class ConfigMergeRequestInput(BaseModel):
    """The AI gateway change for a new model: files on a branch, and a merge request."""

    model_config = FROZEN
    branch: str
    files: dict[str, str]
    commit_message: str
    #: Files that get ``entry`` appended (once) instead of being replaced, e.g. models.yml.
    appends: dict[str, str] = {}
    title: str
    description: str
    labels: tuple[str, ...] = ()
    target_branch: str = "main"


class CleanupMergeRequestInput(BaseModel):
    """The AI gateway change once a feature's old model serves no traffic: files removed on a
    branch, and a merge request. ``gateway.cleanup_change`` builds it."""

    model_config = FROZEN
    branch: str
    #: Files, or folders whose every file goes.
    deletes: tuple[str, ...]
    commit_message: str
    title: str
    description: str
    labels: tuple[str, ...] = ()
    target_branch: str = "main"


#: ``MergeRequestRef.state`` when the target branch has none of the files to remove: no merge
#: request was opened (``iid`` is 0).
NOTHING_TO_REMOVE = "nothing_to_remove"


class MergeRequestInput(BaseModel):
    model_config = FROZEN
    iid: int


class MergeRequestRef(BaseModel):
    model_config = FROZEN
    iid: int
    web_url: str = ""
    state: str = "opened"


class IssueLinkInput(BaseModel):
    model_config = FROZEN
    iid: int
    target_iid: int


class NotifyInput(BaseModel):
    """A message to people outside GitLab, e.g. when GitLab itself refuses the engine."""

    model_config = FROZEN
    workflow_id: str
    audience: tuple[str, ...]
    subject: str
    body: str = ""


class EnsureLabelsInput(BaseModel):
    """Labels to exist in the project before a note's ``/label`` names them: GitLab's quick
    action applies only labels that exist, and drops the others without a word."""

    model_config = FROZEN
    labels: tuple[str, ...]


class EnsureLabelsResult(BaseModel):
    model_config = FROZEN
    #: The labels this attempt created; empty when all existed already.
    created: tuple[str, ...] = ()


class RunExperimentInput(BaseModel):
    """One harness run: candidate against baseline on a dataset. Per-example results are stored,
    not returned, so that only their digest enters workflow history."""

    model_config = FROZEN
    dataset: str
    prompt_id: str
    prompt_version: str
    model: str
    baseline_model: str
    baseline_prompt_version: str
    evaluators: tuple[str, ...] = ()
    #: Seconds between polls of a running experiment.
    poll_seconds: float = 5.0
    harness: HarnessKind = HarnessKind.EXPERIMENT_SERVICE
    #: For ``HarnessKind.IMPORTED``: where the team published its per-example results.
    results_url: str = ""


class ExperimentRun(BaseModel):
    model_config = FROZEN
    request_id: str
    digest: str
    examples: int
    results_url: str = ""


class JudgeGateInput(BaseModel):
    """The gate over results kept in the results store under ``digest``."""

    model_config = FROZEN
    digest: str
    config: GateConfig
    dataset: str = ""
    baseline: str = ""
    candidate: str = ""


class AddToEpicInput(BaseModel):
    """Put an issue (by its global id) in an epic of any group; already there is fine."""

    model_config = FROZEN
    group: str
    epic_iid: int
    issue_id: int


class EnsureEpicInput(BaseModel):
    """An epic of the client's group, found again by its draft's marker on a retry."""

    model_config = FROZEN
    draft: EpicDraft


class EpicInfo(BaseModel):
    model_config = FROZEN
    id: int
    iid: int
    web_url: str = ""


class UpdateEpicInput(BaseModel):
    """Only the given fields change: setting a value twice is harmless."""

    model_config = FROZEN
    iid: int
    title: str | None = None
    description: str | None = None
    due_date: date | None = None
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    state_event: str | None = None


class PostEpicNoteInput(BaseModel):
    """A note on an epic of the client's group, found again by ``marker`` on a retry."""

    model_config = FROZEN
    epic_iid: int
    body: str
    marker: str


class FileEpicInput(BaseModel):
    """Put an epic of the client's group under ``parent``, an epic of any group; already there is fine."""

    model_config = FROZEN
    epic_iid: int
    parent: EpicRef



class TrackingView(BaseModel):
    """What the tracking issue's description is drawn from: the migration's features as rows."""

    model_config = FROZEN
    migration_id: str
    model: ModelDefinition
    replaced: ModelDefinition | None = None
    rows: tuple[FeatureRow, ...] = ()
    target_date: date | None = None
    config_mr_url: str = ""


class WriteTrackingIssueInput(BaseModel):
    """The migration's tracking issue, its description drawn by the activity from ``view``.
    The workflow runs it as a local activity, whose input is not kept in history (only its small
    result is): the text (76k characters for 200 features) and the rows never enter it.
    ``iid`` 0: find the issue by ``marker``, or create it; otherwise rewrite its description."""

    model_config = FROZEN
    marker: str
    view: TrackingView
    iid: int = 0
    title: str = ""
    labels: tuple[str, ...] = ()
    due_date: date | None = None


class TrackingIssueResult(BaseModel):
    model_config = FROZEN
    issue: IssueRef
