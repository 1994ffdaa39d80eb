"""The rollout's paper trail on GitLab: the rollout-plan issue and the "Feature Flag Roll Out" issue.

Both are rendered here, from the small state the rollout workflow keeps (``RolloutIssuesInput``),
so that the long texts never travel through its history; the Prometheus and Grafana links come
from the worker's settings. Each write is a whole description (a value, never an edit of the
text), made only when it differs from what the issue holds: a retried activity writes nothing
twice, and a step costs one edit per issue.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity

from activities.gitlab import GitLabActivities
from activities.payloads import Activity
from activities.rollout_payloads import FlagIssueInput, RolloutIssuesInput
from model_migration.domain.models import IssueDraft, IssueRef, marker_comment
from model_migration.domain.rollout_templates import flag_issue_labels, flag_issue_title, render_flag_issue, render_plan_issue
from model_migration.domain.rollout_views import RolloutPlan


class RolloutIssueActivities:
    def __init__(self, gitlab: GitLabActivities, prometheus_url: str = "", grafana_url: str = "") -> None:
        self._gitlab = gitlab
        self._links = {"prometheus_url": prometheus_url, "grafana_url": grafana_url}

    def _plan(self, plan: RolloutPlan, **more: str) -> RolloutPlan:
        return plan.model_copy(update={**{k: v for k, v in self._links.items() if v}, **more})

    @activity.defn(name=Activity.ENSURE_FLAG_ISSUE)
    def ensure_flag_issue(self, request: FlagIssueInput) -> IssueRef:
        """Found again by its marker on a retry; linked to the plan issue (a link made twice is one link)."""
        with self._gitlab._call(Activity.ENSURE_FLAG_ISSUE) as client:
            plan_issue = client.get_issue(request.plan_issue_iid)
            plan = self._plan(request.plan)
            draft = IssueDraft(
                title=flag_issue_title(plan.feature.flag), description=render_flag_issue(plan, plan_issue_url=plan_issue.web_url),
                marker=request.marker, labels=flag_issue_labels(plan.feature), assignee_username=plan.feature.dri, confidential=True,
            )
            issue = client.ensure_issue(draft)
            client.link_issues(request.plan_issue_iid, issue.iid)
            return IssueRef(id=issue.id, iid=issue.iid, project_id=issue.project_id, web_url=issue.web_url)

    @activity.defn(name=Activity.WRITE_ROLLOUT_ISSUES)
    def write_rollout_issues(self, request: RolloutIssuesInput) -> int:
        """Both descriptions as the rollout stands; returns the edits made (0 when nothing changed)."""
        plan = self._plan(request.plan, flag_issue_url=request.flag_issue_url)
        edits = 0
        with self._gitlab._call(Activity.WRITE_ROLLOUT_ISSUES) as client:
            plan_text = f"{render_plan_issue(plan, request.steps, request.baseline)}\n\n{marker_comment(request.plan_marker)}"
            plan_issue = client.get_issue(request.plan_issue_iid)
            if plan_issue.description != plan_text:
                client.update_issue(request.plan_issue_iid, description=plan_text)
                edits += 1
            if request.flag_issue_iid:
                flag_text = render_flag_issue(plan, request.steps, plan_issue_url=plan_issue.web_url, turned_off=request.turned_off,
                                              removed=request.removed)
                flag_text = f"{flag_text}\n\n{marker_comment(request.flag_marker)}"
                current = client.get_issue(request.flag_issue_iid)
                close = request.close_flag_issue and current.state != "closed"
                if current.description != flag_text or close:
                    client.update_issue(request.flag_issue_iid, description=flag_text, state_event="close" if close else None)
                    edits += 1
        return edits

    def all(self) -> list[Callable[..., object]]:
        return [self.ensure_flag_issue, self.write_rollout_issues]
