"""The deprecation watch on the dev server: notices from a catalog copy and the sandbox's AI gateway become
deprecations once, moved cutoffs become update_cutoff, and a source that fails is reported, not fatal.

Each test retires copies of Claude 3.7 Sonnet and Claude 3.5 Haiku under model slugs of its own
(so its deprecation ids are its own on the session's dev server), with cutoffs weeks ahead of today;
the shipped Claude Sonnet 4, which one feature still uses, retired in 2026 and is always skipped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import requests
import yaml
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.watch import AlreadyStarted, KnownDeprecation, WatchActivities
from activities.watch_payloads import WatchInput, WatchReport
from model_migration.catalog import default_catalog_dir
from model_migration.clients.ai_gateway import AiGatewayClient
from model_migration.deprecations import TemporalDeprecations
from model_migration.devserver import free_port
from model_migration.domain.catalog import Catalog, build_catalog
from model_migration.domain.deprecation_notices import DeprecationNotice, GatewayModel, release_date
from model_migration.domain.errors import DomainError
from tests.temporal_fixtures import Engine, assert_eventually
from workflows.deprecation_messages import DeprecationStatus
from workflows.watch import DeprecationWatchWorkflow

RETIRING = {"claude_3_7_sonnet_20250219": 60, "claude_3_5_haiku_20241022": 45}
PAST = "deprecation:anthropic/claude-sonnet-4"


@dataclass
class Copy:
    """A catalog whose retiring models are copies under this test's own slugs."""

    catalog: Catalog
    directory: Path | None
    identifiers: dict[str, str]  # shipped identifier → the copy's
    ids: dict[str, str]  # shipped identifier → the copy's deprecation id
    cutoffs: dict[str, date]  # deprecation id → the catalog's cutoff


def catalog_copy(tag: str, directory: Path | None = None, retiring: dict[str, int] = RETIRING) -> Copy:
    """The shipped catalog with each ``retiring`` model copied under slug ``<slug>-<tag>``, retiring that many
    days from today (announced ten days ago); the features on it moved onto the copy."""
    shipped = default_catalog_dir()
    models = yaml.safe_load((shipped / "models.yml").read_text())
    features = yaml.safe_load((shipped / "features.yml").read_text())
    today = datetime.now(UTC).date()
    identifiers, ids, cutoffs = {}, {}, {}
    for original, days in retiring.items():
        entry = next(m for m in models if m["gitlab_identifier"] == original)
        copy = {**entry, "gitlab_identifier": f"{original}_{tag}", "model": f"{entry['model']}-{tag}", "name": f"{entry['name']} {tag}",
                "deprecation": {"deprecation_date": today - timedelta(days=10), "removal_version": "15.0",
                                "retirement_date": today + timedelta(days=days)}}
        models.append(copy)
        identifiers[original] = copy["gitlab_identifier"]
        ids[original] = f"deprecation:{copy['provider']}/{copy['model']}"
        cutoffs[ids[original]] = today + timedelta(days=days)
        for feature in features:
            if feature["current_model"] == original:
                feature["current_model"] = copy["gitlab_identifier"]
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "models.yml").write_text(yaml.safe_dump(models, sort_keys=False))
        (directory / "features.yml").write_text(yaml.safe_dump(features, sort_keys=False))
    return Copy(build_catalog(models, features), directory, identifiers, ids, cutoffs)


def removal_after(days: int) -> tuple[str, date]:
    """The first GitLab release at least ``days`` from today, and its date."""
    today = datetime.now(UTC).date()
    for major in range(18, 30):
        for minor in range(12):
            version = f"{major}.{minor}"
            if release_date(version) >= today + timedelta(days=days):
                return version, release_date(version)
    raise AssertionError("no release that late")


@pytest.fixture
def overrides(gitlab_sandbox) -> Iterator[Callable[[dict[str, Any]], None]]:  # type: ignore[no-untyped-def]
    """Lay models over the sandbox gateway's answer; its previous overrides come back after the test."""
    url, headers = f"{gitlab_sandbox.url}/-/sandbox/ai-gateway/models", {"PRIVATE-TOKEN": gitlab_sandbox.token}
    before = requests.get(url, headers=headers, timeout=10).json()

    def put(models: dict[str, Any]) -> None:
        answer = requests.put(url, json={"models": models}, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text

    yield put
    assert requests.put(url, json=before, headers=headers, timeout=10).status_code == 200


@dataclass
class Watch:
    client: Client
    queue: str
    copy: Copy

    async def run(self) -> WatchReport:
        return await self.client.execute_workflow(
            DeprecationWatchWorkflow.run, WatchInput(), id=f"deprecation-watch-test-{uuid.uuid4().hex[:8]}", task_queue=self.queue,
            result_type=WatchReport,
        )

    async def status(self, workflow_id: str) -> DeprecationStatus:
        return await self.client.get_workflow_handle(workflow_id).query("status", result_type=DeprecationStatus)


@pytest_asyncio.fixture
async def watch(engine: Engine, gitlab_sandbox, unique: str) -> AsyncIterator[Watch]:  # type: ignore[no-untyped-def]
    """A watch worker on a queue of its own over this test's catalog copy and the sandbox's gateway; the
    deprecations it starts run on the engine's worker, and are terminated after the test."""
    copy = catalog_copy(f"w{unique}")
    activities = WatchActivities(
        TemporalDeprecations(engine.client, engine.task_queue, copy.catalog), copy.catalog,
        lambda: AiGatewayClient(f"{gitlab_sandbox.url}/ai-gateway", timeout=5),
    )
    queue = f"watch-{unique}"
    async with Worker(engine.client, task_queue=queue, workflows=[DeprecationWatchWorkflow], activities=[activities.watch_deprecations]):
        yield Watch(engine.client, queue, copy)
    for workflow_id in copy.ids.values():
        handle = engine.client.get_workflow_handle(workflow_id)
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("test over")


async def test_two_passes_start_each_deprecation_once(watch: Watch) -> None:
    """The first pass starts one deprecation per retiring model, at the catalog's cutoff; the second starts nothing."""
    first = await watch.run()
    assert sorted(first.started) == sorted(watch.copy.ids.values())
    assert first.updated == () and first.source_errors == ()
    assert [(s.workflow_id, "is not after today" in s.reason) for s in first.skipped] == [(PAST, True)]
    for workflow_id, cutoff in watch.copy.cutoffs.items():
        st = await watch.status(workflow_id)
        assert (st.cutoff, st.due) == (cutoff, cutoff - timedelta(weeks=4)) and st.model in watch.copy.identifiers.values()

    async def awaiting_selection() -> None:  # a notice names no candidates: AI Framework chooses
        assert (await watch.status(workflow_id)).stage == "selecting"

    await assert_eventually(awaiting_selection)

    second = await watch.run()
    assert second.started == () and second.updated == ()
    assert [s.workflow_id for s in second.skipped] == [PAST]


async def test_concurrent_passes_race_and_start_each_once(watch: Watch) -> None:
    """Two passes at once: every deprecation is started by exactly one of them; the other counts it as known."""
    reports = await asyncio.gather(watch.run(), watch.run())
    started = [wid for r in reports for wid in r.started]
    assert sorted(started) == sorted(watch.copy.ids.values())
    lost = {s.workflow_id: s.reason for r in reports for s in r.skipped if s.workflow_id != PAST}
    assert set(lost) <= set(watch.copy.ids.values())
    assert set(lost.values()) <= {"started meanwhile by another starter"}


async def test_a_cutoff_moved_in_the_gateway_becomes_update_cutoff(watch: Watch, overrides: Callable[[dict[str, Any]], None]) -> None:
    """The gateway announces a later removal for the Sonnet copy: the next pass moves that deprecation's cutoff, once."""
    await watch.run()
    sonnet = "claude_3_7_sonnet_20250219"
    workflow_id, old = watch.copy.ids[sonnet], watch.copy.cutoffs[watch.copy.ids[sonnet]]
    version, new = removal_after(120)
    today = datetime.now(UTC).date()
    overrides({watch.copy.identifiers[sonnet]: {
        "name": "Claude 3.7 Sonnet copy", "provider": "Anthropic",
        "deprecation": {"deprecation_date": str(today), "removal_version": version},
    }})
    moved = await watch.run()
    assert moved.started == () and [(m.workflow_id, m.old, m.new, m.source) for m in moved.updated] == [
        (workflow_id, old, new, "AI gateway"),
    ]
    st = await watch.status(workflow_id)
    assert st.cutoff == new and st.due == new - timedelta(weeks=4)
    assert [(c.old, c.new, c.actor, c.reason) for c in st.cutoff_changes] == [
        (old, new, "deprecation-watch", f"the AI gateway now says {new}"),
    ]
    again = await watch.run()
    assert again.updated == () and again.started == ()


# -- the activity alone, with the Temporal side faked ------------------------------------------


class FakeDeprecations:
    """Temporal as the watch sees it: ``running`` maps ids to cutoffs; ``racing`` ids are started by someone
    else between the watch's look and its start."""

    def __init__(self, running: dict[str, date] | None = None, closed: set[str] | None = None, racing: set[str] | None = None) -> None:
        self.running = dict(running or {})
        self.closed = closed or set()
        self.racing = racing or set()
        self.starts: list[str] = []
        self.updates: list[tuple[str, date, str]] = []

    async def find(self, workflow_id: str) -> KnownDeprecation | None:
        if workflow_id in self.closed:
            return KnownDeprecation(workflow_id=workflow_id, running=False, state="completed")
        if workflow_id in self.running:
            return KnownDeprecation(workflow_id=workflow_id, running=True, cutoff=self.running[workflow_id])
        return None

    async def start(self, notice: DeprecationNotice, actor: str) -> str:
        workflow_id = f"deprecation:{notice.provider}/{notice.slug}"
        if notice.cutoff <= datetime.now(UTC).date():
            raise DomainError(f"the cutoff {notice.cutoff} is not after today")
        if workflow_id in self.racing:
            self.running[workflow_id] = notice.cutoff
            raise AlreadyStarted(f"deprecation {workflow_id} is already running")
        self.starts.append(workflow_id)
        self.running[workflow_id] = notice.cutoff
        return workflow_id

    async def update_cutoff(self, workflow_id: str, new_date: date, reason: str, actor: str, request_id: str) -> None:
        self.updates.append((workflow_id, new_date, reason))
        self.running[workflow_id] = new_date


class DeadGateway:
    def model_definitions(self) -> list[GatewayModel]:
        return AiGatewayClient(f"http://127.0.0.1:{free_port()}", timeout=1).model_definitions()

    def close(self) -> None:
        pass


async def test_an_unreachable_gateway_is_reported_and_the_catalog_still_runs() -> None:
    """No gateway: one source error naming it, and the catalog's notices are started all the same."""
    copy = catalog_copy("dead")
    fake = FakeDeprecations()
    report = await ActivityEnvironment().run(WatchActivities(fake, copy.catalog, DeadGateway).watch_deprecations, WatchInput())
    assert [e.source for e in report.source_errors] == ["AI gateway"]
    assert "cannot read the AI gateway's model definitions" in report.source_errors[0].error
    assert sorted(report.started) == sorted(copy.ids.values()) == sorted(fake.starts)


async def test_a_lost_race_is_known_and_a_finished_deprecation_is_not_started_again() -> None:
    """A start that finds the id taken is not retried, and is moved only if it runs to another cutoff; a
    finished deprecation is skipped with its outcome."""
    copy = catalog_copy("race")
    sonnet, haiku = copy.ids["claude_3_7_sonnet_20250219"], copy.ids["claude_3_5_haiku_20241022"]
    fake = FakeDeprecations(closed={haiku}, racing={sonnet})
    report = await ActivityEnvironment().run(
        WatchActivities(fake, copy.catalog, DeadGateway).watch_deprecations, WatchInput(gateway=False),
    )
    assert report.started == () and fake.starts == [] and fake.updates == [] and report.source_errors == ()
    reasons = {s.workflow_id: s.reason for s in report.skipped}
    assert reasons[sonnet] == "started meanwhile by another starter"
    assert reasons[haiku].startswith("its deprecation has finished (completed)")


async def test_a_running_deprecation_with_another_cutoff_is_moved_with_the_source_named() -> None:
    """Known at another date than the catalog's: update_cutoff with the catalog's date, the reason naming it."""
    copy = catalog_copy("moved")
    sonnet = copy.ids["claude_3_7_sonnet_20250219"]
    old = copy.cutoffs[sonnet] + timedelta(days=9)
    fake = FakeDeprecations(running={sonnet: old})
    report = await ActivityEnvironment().run(
        WatchActivities(fake, copy.catalog, DeadGateway).watch_deprecations, WatchInput(gateway=False),
    )
    new = copy.cutoffs[sonnet]
    assert fake.updates == [(sonnet, new, f"the catalog now says {new}")]
    assert [(m.workflow_id, m.old, m.new) for m in report.updated] == [(sonnet, old, new)]
    assert report.started == (copy.ids["claude_3_5_haiku_20241022"],)
