"""Session-wide Temporal servers and a worker bound to the GitLab sandbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import worker as worker_module
from activities.evaluation import EvaluationActivities
from activities.gitlab import GitLabActivities
from model_migration.clients.experiments import ExperimentServiceClient
from model_migration.clients.gitlab import GitLabClient, WaitGate
from model_migration.clients.gitlab_labels import UserDirectory
from model_migration.clients.harness import Harness, HarnessKind, ImportedResults
from model_migration.clients.pipeline_harness import pipeline_harness_factory
from model_migration.clients.results_store import LocalResultsStore
from model_migration.converter import data_converter
from model_migration.devserver import free_port, local_environment
from model_migration.settings import Settings
from model_migration.temporal import binary, register_search_attributes
from tests.timeskip import settle_and_terminate

T = TypeVar("T")


@dataclass
class Engine:
    """A running worker: its client, task queue, and the GitLab activities it uses."""

    client: Client
    task_queue: str
    gitlab: GitLabActivities

    def gitlab_client(self) -> GitLabClient:
        return self.gitlab._factory()  # type: ignore[return-value]


async def assert_eventually(check: Callable[[], Awaitable[T]], timeout: float = 20.0, interval: float = 0.2) -> T:
    """Retry ``check`` until it stops raising AssertionError, or fail with its last error."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if loop.time() > end:
                raise
        await asyncio.sleep(interval)


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await local_environment() as env:
        yield env


@pytest_asyncio.fixture
async def skip_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own (it starts in a fraction of a second): its clock,
    which any workflow or activity left behind would move or hold, is no other test's."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(binary("temporal-test-server")),
        port=free_port(),
        data_converter=data_converter,
    )
    async with env:
        await register_search_attributes(env.client)
        yield env


def _activities(sandbox, gate: WaitGate) -> GitLabActivities:  # type: ignore[no-untyped-def]
    users = UserDirectory()  # one per engine, as the worker shares it (and the gate) among its threads' clients

    def make() -> GitLabClient:
        return GitLabClient(sandbox.url, sandbox.token, sandbox.project_path, sandbox.group_path, gate=gate, users=users)

    return GitLabActivities(make)


def _evaluation(sandbox, results: Path, gate: WaitGate) -> EvaluationActivities:  # type: ignore[no-untyped-def]
    """The harnesses on the sandbox: its experiment service, its evaluation project's pipelines,
    and teams' published results."""
    service = f"{sandbox.url}/api/evaluation"
    token = SecretStr(sandbox.token)
    settings = Settings(gitlab_url=sandbox.url, gitlab_token=token, gitlab_project=sandbox.project_path, gitlab_group=sandbox.group_path)
    harnesses: dict[HarnessKind, Callable[[], Harness]] = {
        HarnessKind.EXPERIMENT_SERVICE: lambda: ExperimentServiceClient(service, token, gate=gate),
        HarnessKind.CI_PIPELINE: pipeline_harness_factory(settings, gate),
        HarnessKind.IMPORTED: lambda: ImportedResults({sandbox.url: token}),
    }
    return EvaluationActivities(harnesses, LocalResultsStore(results))


async def _engine(env: WorkflowEnvironment, sandbox, results: Path) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    gate = WaitGate()
    gitlab = _activities(sandbox, gate)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=16) as executor:
        async with worker_module.build_worker(env.client, queue, gitlab, executor, evaluation=_evaluation(sandbox, results, gate)):
            yield Engine(env.client, queue, gitlab)


@pytest_asyncio.fixture(scope="session")
async def engine(dev_env: WorkflowEnvironment, gitlab_sandbox, tmp_path_factory) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    """A worker on the dev server, shared by the workflow tests."""
    async for e in _engine(dev_env, gitlab_sandbox, tmp_path_factory.mktemp("results")):
        yield e


@pytest_asyncio.fixture
async def skip_engine(skip_env: WorkflowEnvironment, gitlab_sandbox, tmp_path_factory) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    """A worker on the test's time-skipping server. What the test leaves open is ended once no
    activity runs, so the worker stops with nothing in flight."""
    async for e in _engine(skip_env, gitlab_sandbox, tmp_path_factory.mktemp("results")):
        yield e
        await settle_and_terminate(e.client)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:6]
