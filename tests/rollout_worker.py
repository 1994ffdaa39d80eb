"""The worker the rollout tests share: built as ``model-migration worker`` builds it, with the
rollout activities on the sandbox's GitLab instance flags and the session's Prometheus."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

import worker as worker_module
from activities.rollout import RolloutActivities
from activities.rollout_payloads import FlagKind
from model_migration.clients.flag_targets import GitLabInstanceFlag
from model_migration.clients.gitlab import WaitGate
from model_migration.clients.prometheus import PrometheusClient
from tests.metrics_fixtures import MetricsStack
from tests.temporal_fixtures import Engine, _activities, _evaluation


@asynccontextmanager
async def rollout_worker(
    env: WorkflowEnvironment, sandbox, stack: MetricsStack, results: Path, prefix: str,  # type: ignore[no-untyped-def]
) -> AsyncIterator[Engine]:
    """A running worker on a task queue of its own (``<prefix>-<random>``) for driven features."""
    gate = WaitGate()
    gitlab = _activities(sandbox, gate)
    rollout = RolloutActivities(
        {FlagKind.GITLAB_INSTANCE: lambda t: GitLabInstanceFlag(gitlab._factory(), t.name)},  # type: ignore[arg-type]
        lambda: PrometheusClient(stack.prometheus_url),
    )
    queue = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=16) as executor:
        evaluation = _evaluation(sandbox, results, gate)
        async with worker_module.build_worker(env.client, queue, gitlab, executor, evaluation=evaluation, rollout=rollout):
            yield Engine(env.client, queue, gitlab)
