"""Typed references to every activity, for workflows to call.

Workflows may not import the implementations (they pull in clients and structlog), so each
activity is declared here with its name and types; ``workflow.execute_activity`` takes the
declaration and derives the name and the result type from it. The worker registers the
implementations under the same names, and ``tests/unit/test_activity_interface.py`` holds
each implementation to its declaration.
"""

from __future__ import annotations

from temporalio import activity

from activities.payloads import (
    Activity,
    AddToEpicInput,
    CleanupMergeRequestInput,
    ConfigMergeRequestInput,
    EnsureEpicInput,
    EnsureIssueInput,
    EnsureLabelsInput,
    EnsureLabelsResult,
    EpicInfo,
    ExperimentRun,
    FileEpicInput,
    IssueLinkInput,
    JudgeGateInput,
    MergeRequestInput,
    MergeRequestRef,
    NoteRef,
    NotifyInput,
    PostEpicNoteInput,
    PostNoteInput,
    RunExperimentInput,
    TrackingIssueResult,
    UpdateEpicInput,
    UpdateIssueInput,
    WriteTrackingIssueInput,
)
from model_migration.domain.gate import GateResult
from model_migration.domain.models import IssueRef


class Declared(NotImplementedError):
    """Raised by a declaration if it is ever run: the worker runs the implementation instead."""


@activity.defn(name=Activity.ENSURE_ISSUE)
def ensure_issue(request: EnsureIssueInput) -> IssueRef:
    raise Declared(Activity.ENSURE_ISSUE)


@activity.defn(name=Activity.UPDATE_ISSUE)
def update_issue(request: UpdateIssueInput) -> IssueRef:
    raise Declared(Activity.UPDATE_ISSUE)


@activity.defn(name=Activity.WRITE_TRACKING_ISSUE)
def write_tracking_issue(request: WriteTrackingIssueInput) -> TrackingIssueResult:
    raise Declared(Activity.WRITE_TRACKING_ISSUE)


@activity.defn(name=Activity.POST_NOTE)
def post_note(request: PostNoteInput) -> NoteRef:
    raise Declared(Activity.POST_NOTE)


@activity.defn(name=Activity.ENSURE_LABELS)
def ensure_labels(request: EnsureLabelsInput) -> EnsureLabelsResult:
    raise Declared(Activity.ENSURE_LABELS)


@activity.defn(name=Activity.ENSURE_ISSUE_LINK)
def ensure_issue_link(request: IssueLinkInput) -> None:
    raise Declared(Activity.ENSURE_ISSUE_LINK)


@activity.defn(name=Activity.ADD_TO_EPIC)
def add_to_epic(request: AddToEpicInput) -> None:
    raise Declared(Activity.ADD_TO_EPIC)


@activity.defn(name=Activity.ENSURE_EPIC)
def ensure_epic(request: EnsureEpicInput) -> EpicInfo:
    raise Declared(Activity.ENSURE_EPIC)


@activity.defn(name=Activity.UPDATE_EPIC)
def update_epic(request: UpdateEpicInput) -> EpicInfo:
    raise Declared(Activity.UPDATE_EPIC)


@activity.defn(name=Activity.POST_EPIC_NOTE)
def post_epic_note(request: PostEpicNoteInput) -> int:
    raise Declared(Activity.POST_EPIC_NOTE)


@activity.defn(name=Activity.FILE_EPIC_UNDER)
def file_epic_under(request: FileEpicInput) -> EpicInfo:
    raise Declared(Activity.FILE_EPIC_UNDER)


@activity.defn(name=Activity.ENSURE_CONFIG_MR)
def ensure_model_config_mr(request: ConfigMergeRequestInput) -> MergeRequestRef:
    raise Declared(Activity.ENSURE_CONFIG_MR)


@activity.defn(name=Activity.ENSURE_CLEANUP_MR)
def ensure_cleanup_mr(request: CleanupMergeRequestInput) -> MergeRequestRef:
    raise Declared(Activity.ENSURE_CLEANUP_MR)


@activity.defn(name=Activity.MERGE_REQUEST_STATE)
def merge_request_state(request: MergeRequestInput) -> MergeRequestRef:
    raise Declared(Activity.MERGE_REQUEST_STATE)


@activity.defn(name=Activity.RUN_EXPERIMENT)
def run_experiment(request: RunExperimentInput) -> ExperimentRun:
    raise Declared(Activity.RUN_EXPERIMENT)


@activity.defn(name=Activity.JUDGE_GATE)
def judge_gate(request: JudgeGateInput) -> GateResult:
    raise Declared(Activity.JUDGE_GATE)


@activity.defn(name=Activity.NOTIFY)
def notify(request: NotifyInput) -> None:
    raise Declared(Activity.NOTIFY)
