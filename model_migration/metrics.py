"""The worker's Prometheus metrics: the authoritative list.

``model-migration worker`` serves them on ``GET /metrics`` at ``MODEL_MIGRATION_METRICS_ADDRESS``
(e.g. ``0.0.0.0:9464``), through the Temporal SDK's runtime telemetry
(``PrometheusConfig(durations_as_seconds=True, counters_total_suffix=True, unit_suffix=True)``). Every series
carries ``service_name="temporal-core-sdk"``; the engine's also carry what the SDK's meter adds:
``namespace`` and ``task_queue``, plus ``workflow_type`` from workflow code and ``activity_type``
from activity code.

SDK metrics (prefix ``temporal_``), as the SDK's exporter names them (histograms in seconds, with
``_bucket``/``_sum``/``_count``; a series appears once it has a first value). The ones alerts use:

- ``temporal_workflow_task_schedule_to_start_latency_seconds`` histogram (workflow tasks waiting for a worker)
- ``temporal_activity_schedule_to_start_latency_seconds`` histogram (activities waiting for a worker)
- ``temporal_activity_execution_latency_seconds`` histogram: every activity attempt that ended
- ``temporal_activity_execution_failed_total`` counter: activity attempts that failed (absent until one does)
- ``temporal_worker_task_slots_available{worker_type}``, ``temporal_worker_task_slots_used{worker_type}``,
  ``temporal_num_pollers{poller_type}`` gauges
- ``temporal_request_total``, ``temporal_long_request_total`` (and ``temporal_request_failure_total``,
  ``temporal_long_request_failure_total`` once a call to the Temporal server fails) counters

Also exported: ``temporal_activity_succeed_endtoend_latency_seconds``, ``temporal_activity_task_received_total``,
``temporal_workflow_task_execution_latency_seconds``, ``temporal_workflow_task_replay_latency_seconds``,
``temporal_workflow_task_queue_poll_succeed_total``, ``temporal_sticky_cache_hit_total``,
``temporal_sticky_cache_size``, ``temporal_worker_start_total``, ``temporal_request_latency_seconds``,
``temporal_long_request_latency_seconds``; and the workflow ones once workflows end
(``temporal_workflow_completed_total``, ``temporal_workflow_failed_total``, ...).

Engine metrics (prefix ``model_migration_``). Counters end in ``_total`` on /metrics:

- ``model_migration_stage_entered_total{workflow, stage}`` counter: a workflow entered a stage.
  ``workflow`` is ``migration`` | ``feature`` | ``deprecation`` | ``rollout``; ``stage`` is the stage's
  value (``implement``, ``evaluate``, ... for features; the rollout's phase for rollouts).
- ``model_migration_escalations_total{workflow, kind}`` counter: an escalation fired. For
  ``workflow="feature"``, ``kind`` is the ``EscalationKind``: ``reminder`` | ``due`` | ``overdue`` |
  ``blocked`` | ``loop_cap`` | ``harness``; ``workflow="deprecation"``: ``kind="calendar"`` (a calendar
  entry that named late features); ``workflow="rollout"``: ``kind="rollout"`` (the DRI is asked to act).
- ``model_migration_gate_verdicts_total{workflow, verdict}`` counter: an evaluation gate decided
  (``verdict`` is ``pass`` | ``inconclusive`` | ``fail``).
- ``model_migration_rollout_steps_total{outcome}`` counter: a rollout step's analysis finished
  (``outcome`` is ``successful`` | ``failed`` | ``inconclusive``).
- ``model_migration_gitlab_blocks_total{workflow, event}`` counter: ``event="blocked"`` when GitLab refused
  the engine for good (auth, permissions, not found: the workflow waits for ``model-migration resume``),
  ``event="resumed"`` when it is resumed.
- ``model_migration_gitlab_requests_total{endpoint, status}`` counter: every HTTP request to GitLab's API.
  ``endpoint`` is the class of its path: ``issues`` | ``notes`` | ``epics`` | ``labels`` | ``flags`` |
  ``repository`` | ``merge_requests`` | ``pipelines`` | ``users`` | ``projects`` | ``groups`` | ``other``;
  ``status`` is the HTTP status code, or ``error`` when no response came (timeout, connection refused).
- ``model_migration_gitlab_blocked_seconds{activity_type}`` histogram: how long a GitLab activity was blocked
  by failures before it succeeded: recorded once, on the successful attempt after one or more
  failed ones, as the time from its first schedule to that success.
- ``model_migration_gitlab_failing_seconds{activity_type}`` histogram: recorded on every failed attempt of a
  GitLab activity, as the time since that activity was first scheduled. Failed attempts retry at
  least once a minute (the workflows' retry policy), so a block shows up here every minute while
  it lasts, on whichever worker runs the attempt.

Buckets of the two GitLab histograms (seconds): ``GITLAB_BLOCKED_BUCKETS``, with 3600 among them.

How the alerts read them (counters reset when a worker restarts and a workflow's metrics are not
emitted again when it is replayed, so alerts use ``increase()`` over windows, never raw values):

- A feature blocked on GitLab for more than 1 h:
  - retrying (GitLab down, 5xx, rate limits): some attempt failed in the last 15 minutes while its
    activity had already been failing for over an hour:
    ``sum(increase(model_migration_gitlab_failing_seconds_count[15m]))
    - sum(increase(model_migration_gitlab_failing_seconds_bucket{le="3600"}[15m])) > 0``;
  - refused for good (the workflow waits for a resume):
    ``sum(model_migration_gitlab_blocks_total{event="blocked"}) - sum(model_migration_gitlab_blocks_total{event="resumed"}) > 0``
    held ``for: 1h`` (a worker restart resets the counts, which can clear this one early; the
    ``blocked`` escalation also tells people outside GitLab when the block starts).
- A feature overdue: ``increase(model_migration_escalations_total{workflow="feature", kind="overdue"}[25h]) > 0``.
  The overdue step fires one day after the due date and again every day while the stage stays
  open, so a window of just over a day always holds one while the feature is overdue.
- Activity failure rate: ``rate(temporal_activity_execution_failed_total[10m])
  / rate(temporal_activity_execution_latency_seconds_count[10m])``.
- No worker polling: ``temporal_workflow_task_schedule_to_start_latency_seconds`` (p95 over 5m) high,
  or ``up == 0`` for the worker's scrape job.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

STAGE_ENTERED = "model_migration_stage_entered"
ESCALATIONS = "model_migration_escalations"
GATE_VERDICTS = "model_migration_gate_verdicts"
ROLLOUT_STEPS = "model_migration_rollout_steps"
GITLAB_BLOCKS = "model_migration_gitlab_blocks"
GITLAB_REQUESTS = "model_migration_gitlab_requests"
GITLAB_BLOCKED_SECONDS = "model_migration_gitlab_blocked_seconds"
GITLAB_FAILING_SECONDS = "model_migration_gitlab_failing_seconds"

#: Seconds; 3600 is the alerts' "more than an hour".
GITLAB_BLOCKED_BUCKETS: tuple[float, ...] = (1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400)

#: For ``PrometheusConfig(histogram_bucket_overrides=...)``.
BUCKET_OVERRIDES: dict[str, list[float]] = {
    GITLAB_BLOCKED_SECONDS: list(GITLAB_BLOCKED_BUCKETS),
    GITLAB_FAILING_SECONDS: list(GITLAB_BLOCKED_BUCKETS),
}

#: GitLab API path segments, most specific first: a path's endpoint class is the first one it holds.
_ENDPOINT_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("notes", ("notes",)),
    ("epics", ("epics",)),
    ("labels", ("labels",)),
    ("flags", ("feature_flags", "features")),
    ("repository", ("repository",)),
    ("merge_requests", ("merge_requests",)),
    ("pipelines", ("pipelines", "pipeline", "jobs")),
    ("issues", ("issues",)),
    ("users", ("users", "user")),
    ("projects", ("projects",)),
    ("groups", ("groups",)),
)


def endpoint_class(path: str) -> str:
    """The class of a GitLab API path, e.g. ``/api/v4/projects/a%2Fb/issues/3/notes`` -> ``notes``."""
    segments = set(path.partition("?")[0].split("/"))
    for name, markers in _ENDPOINT_CLASSES:
        if segments.intersection(markers):
            return name
    return "other"


def record_gitlab_request(path: str, status: int | None) -> None:
    """Count one request to GitLab, from inside an activity; elsewhere (the worker's start-up
    check, the command line) nothing is recorded."""
    if not activity.in_activity():
        return
    try:
        meter = activity.metric_meter()
    except RuntimeError:  # an activity without a meter (a sync activity not run in a thread)
        return
    counter = meter.create_counter(GITLAB_REQUESTS, "HTTP requests to GitLab's API, by endpoint class and status")
    counter.add(1, {"endpoint": endpoint_class(path), "status": str(status) if status is not None else "error"})


class GitLabActivityMetrics(Interceptor):
    """A worker interceptor that times GitLab activities blocked by failures (see the histograms above)."""

    def __init__(self, activity_types: Iterable[str]) -> None:
        self.activity_types = frozenset(activity_types)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _GitLabActivityInbound(next, self.activity_types)


class _GitLabActivityInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, activity_types: frozenset[str]) -> None:
        super().__init__(next)
        self.activity_types = activity_types

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.activity_type not in self.activity_types:
            return await self.next.execute_activity(input)
        try:
            result = await self.next.execute_activity(input)
        except BaseException:
            self._record(GITLAB_FAILING_SECONDS, "Time since a failing GitLab activity was first scheduled, at each failed attempt", info)
            raise
        if info.attempt > 1:
            self._record(GITLAB_BLOCKED_SECONDS, "Time a GitLab activity was blocked by failures before it succeeded", info)
        return result

    @staticmethod
    def _record(name: str, description: str, info: activity.Info) -> None:
        seconds = max(0.0, (datetime.now(UTC) - info.scheduled_time).total_seconds())
        activity.metric_meter().create_histogram_float(name, description).record(seconds)  # no unit: the name has it
