"""The engine against a GitLab that fails: refused tokens, failing and dropped writes, rate limits."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

import worker as worker_module
from activities.gitlab import GitLabActivities
from activities.notify import NotifyActivities
from model_migration import operations
from model_migration.clients.gitlab import GitLabClient
from model_migration.clients.notifier import LogNotifier
from model_migration.domain.escalation import EscalationKind
from model_migration.domain.gateway import config_branch
from model_migration.domain.stages import FeatureStage, MigrationStage
from tests.temporal_fixtures import Engine, assert_eventually
from tests.workflows.support import CATALOG, REPLACED, SLOW, drive, model_for, start_feature, status, wait_issue
from workflows.messages import (
    MIGRATION_REVISION,
    Abort,
    CompleteStage,
    MigrationInput,
    MigrationResult,
    Resume,
    Status,
    feature_workflow_id,
)
from workflows.migration import ModelMigrationWorkflow

MARKER = re.compile(r"<!-- model-migration:(.+?) -->")
FEATURES = ("duo_chat", "code_generation", "code_explanation")
#: Seconds in the rate-limit test's window.
WINDOW = 20


@asynccontextmanager
async def engine_with(
    env: WorkflowEnvironment,
    sandbox,
    token: str,
    notifier: LogNotifier | None = None,
    queue: str = "",  # type: ignore[no-untyped-def]
) -> AsyncIterator[Engine]:
    """A worker with this GitLab token, on its own task queue unless one is given."""
    gitlab = GitLabActivities(lambda: GitLabClient(sandbox.url, token, sandbox.project_path, sandbox.group_path))
    queue = queue or f"adversity-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=16) as executor:
        notify = NotifyActivities(notifier or LogNotifier())
        async with worker_module.build_worker(env.client, queue, gitlab, executor, notify):
            yield Engine(env.client, queue, gitlab)


def writes(sandbox) -> int:  # type: ignore[no-untyped-def]
    """Issue creations the sandbox has been asked for."""
    return sum(1 for _, method, path, _, _ in sandbox.server.requests.entries() if method == "POST" and path.endswith("/issues"))


async def run_migration(engine: Engine, unique: str, features: tuple[str, ...] = FEATURES) -> MigrationResult:
    """Start a migration, complete init, drive every feature to done, return the result."""
    model = model_for(unique)
    request = MigrationInput(
        model=model, replaced=REPLACED, features=tuple(CATALOG.feature(f) for f in features), tunables=SLOW, revision=MIGRATION_REVISION
    )
    parent = await engine.client.start_workflow(
        ModelMigrationWorkflow.run, request, id=f"migration:{model.key}", task_queue=engine.task_queue
    )

    async def mr_opened() -> None:
        assert (await status(parent)).config_mr_url

    await assert_eventually(mr_opened, timeout=120)
    await parent.execute_update("complete_stage", CompleteStage(stage=MigrationStage.INIT, actor="ai-lead"))

    async def one(feature: str) -> None:
        child = engine.client.get_workflow_handle(feature_workflow_id(parent.id, feature))

        async def ready() -> None:
            try:
                st = await child.query("status", result_type=Status)
            except RPCError as err:
                raise AssertionError(str(err)) from err
            assert st.issue is not None

        await assert_eventually(ready, timeout=120)
        await drive(child)

    await asyncio.gather(*(one(f) for f in features))
    return await parent.result()


async def test_token_without_rights_blocks_escalates_and_does_not_loop(dev_env: WorkflowEnvironment, gitlab_sandbox, unique: str) -> None:  # type: ignore[no-untyped-def]
    """A Guest token: one refused write, the feature shows blocked, people are told, nothing loops."""
    notifier = LogNotifier()
    async with engine_with(dev_env, gitlab_sandbox, gitlab_sandbox.guest_token, notifier) as guest:
        handle = await start_feature(guest, unique)

        async def blocked() -> Status:
            st = await status(handle)
            assert st.blocked
            return st

        st = await assert_eventually(blocked)
        assert "403" in st.blocked and "Reporter" in st.blocked
        assert st.pending_action is not None and st.pending_action.command == "resume"
        assert [e.kind for e in st.escalations] == [EscalationKind.BLOCKED]
        await assert_eventually(lambda: _sent(notifier))
        notice = notifier.sent[0]
        assert CATALOG.feature("duo_chat").dri in notice.audience and "resume" in notice.body
        tries = writes(gitlab_sandbox)
        await asyncio.sleep(3)
        assert writes(gitlab_sandbox) == tries, "a refused write was retried"
    # The token is fixed and a worker with it deployed on the same task queue; then resume.
    async with engine_with(dev_env, gitlab_sandbox, gitlab_sandbox.token, queue=guest.task_queue):
        await handle.execute_update("resume", Resume(actor="ai-lead", note="token fixed"))
        st = await wait_issue(handle)
        assert not st.blocked and st.issue is not None
        await handle.execute_update("abort", Abort(actor="x", reason="test over"))
        await handle.result()


async def _sent(notifier: LogNotifier) -> None:
    assert notifier.sent


async def test_refused_tracking_issue_blocks_the_migration_and_tells_people(
    dev_env: WorkflowEnvironment, gitlab_sandbox, unique: str
) -> None:  # type: ignore[no-untyped-def]
    """The migration's own GitLab write refused: it shows blocked, AI Framework is told once, resume goes on."""
    notifier = LogNotifier()
    model = model_for(unique)
    request = MigrationInput(
        model=model,
        replaced=REPLACED,
        features=(CATALOG.feature("duo_chat"),),
        tunables=SLOW,
        started_by="ai-lead",
        revision=MIGRATION_REVISION,
    )
    async with engine_with(dev_env, gitlab_sandbox, gitlab_sandbox.guest_token, notifier) as guest:
        parent = guest.client.get_workflow_handle(await operations.start(guest.client, guest.task_queue, request))

        async def blocked() -> Status:
            st = await status(parent)
            assert st.blocked
            return st

        st = await assert_eventually(blocked)
        assert "403" in st.blocked and st.pending_action is not None and st.pending_action.command == "resume"
        await assert_eventually(lambda: _sent(notifier))
        await asyncio.sleep(1)
        assert len(notifier.sent) == 1
        notice = notifier.sent[0]
        assert notice.audience == ("ai-lead", "ai-framework")
        assert "blocked in init" in notice.subject and f"model-migration resume {parent.id}" in notice.body
        assert gitlab_sandbox.token not in notice.body and gitlab_sandbox.guest_token not in notice.body
    async with engine_with(dev_env, gitlab_sandbox, gitlab_sandbox.token, queue=guest.task_queue):
        await parent.execute_update("resume", Resume(actor="ai-lead", note="token fixed"))

        async def tracked() -> None:
            st = await status(parent)
            assert not st.blocked and st.issue is not None

        await assert_eventually(tracked)
        await parent.execute_update("abort", Abort(actor="ai-lead", reason="test over"))
        await parent.result()


async def test_a_tracking_issue_write_that_keeps_failing_is_retried_as_an_activity(engine: Engine, gitlab_sandbox, unique: str) -> None:  # type: ignore[no-untyped-def]
    """GitLab answers 500 to the tracking issue: three quick local attempts, then an activity retries until GitLab is back."""
    server = gitlab_sandbox.server
    server.inject_fault(r"^/api/v4/projects/[^/]+/issues$", "500", method="POST", fraction=1.0, seed=1)
    request = MigrationInput(
        model=model_for(unique), replaced=REPLACED, features=(CATALOG.feature("duo_chat"),), tunables=SLOW, revision=MIGRATION_REVISION
    )
    try:
        parent = engine.client.get_workflow_handle(await operations.start(engine.client, engine.task_queue, request))

        async def handed_to_an_activity() -> None:
            scheduled = [e for e in (await parent.fetch_history()).events if e.HasField("activity_task_scheduled_event_attributes")]
            assert [e.activity_task_scheduled_event_attributes.activity_type.name for e in scheduled] == ["write_tracking_issue"]

        await assert_eventually(handed_to_an_activity, timeout=30)
    finally:
        server.clear_faults()

    async def tracked() -> None:
        assert (await status(parent)).issue is not None

    await assert_eventually(tracked, timeout=30)
    await parent.execute_update("abort", Abort(actor="ai-lead", reason="test over"))
    await parent.result()


async def test_chaos_five_migrations_leave_one_of_everything(engine: Engine, gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """20 % of writes answer 500 and 10 % drop after writing; 5 migrations of 3 features complete once."""
    server = gitlab_sandbox.server
    for method in ("POST", "PUT"):
        server.inject_fault(r"^/api/v4/", "drop_after_write", method=method, fraction=0.10, seed=1)
        server.inject_fault(r"^/api/v4/", "500", method=method, fraction=0.20 / 0.90, seed=2)
    tags = [f"chaos{uuid.uuid4().hex[:5]}" for _ in range(5)]
    try:
        results = await asyncio.gather(*(run_migration(engine, tag) for tag in tags))
    finally:
        fired = Counter({rule["fault"]: 0 for rule in server.faults()})
        for rule in server.faults():
            fired[rule["fault"]] += rule["fired"]
        server.clear_faults()
    assert fired["drop_after_write"] > 0 and fired["500"] > 0, fired
    gl = GitLabClient(gitlab_sandbox.url, gitlab_sandbox.token, gitlab_sandbox.project_path)
    for tag, result in zip(tags, results, strict=True):
        assert result.stage == FeatureStage.DONE and [f.stage for f in result.features] == [FeatureStage.DONE] * 3
        issues = gl._gl.http_list(  # noqa: SLF001 - count raw rows as GitLab stores them
            f"/projects/{gitlab_sandbox.project_path.replace('/', '%2F')}/issues",
            query_data={"search": tag, "state": "all"},
            get_all=True,
        )
        assert len(issues) == 4, [i["title"] for i in issues]  # one tracking issue, one per feature
        for issue in issues:
            markers = Counter(m for n in gl.list_notes(issue["iid"]) for m in MARKER.findall(n.body))
            assert markers and max(markers.values()) == 1, (issue["title"], markers)
        tracking = next(i for i in issues if i["title"].startswith("AI Model Migration"))
        links = gl._project.issues.get(tracking["iid"], lazy=True).links.list(get_all=True)  # noqa: SLF001
        assert len(links) == 3 and len({link.iid for link in links}) == 3
        migration = f"migration:{model_for(tag).key}"
        requests = gl._project.mergerequests.list(source_branch=config_branch(migration), state="all", get_all=True)  # noqa: SLF001
        assert len(requests) == 1


async def test_rate_limited_migration_completes_without_sending_while_told_to_wait(engine: Engine, gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """With 60 requests a window, a 3-feature migration finishes; after a 429 nothing is sent until reset.
    (GitLab's windows are a minute long; the client follows the headers, so a shorter one proves the same.)"""
    server = gitlab_sandbox.server
    started = time.time()  # before the limit: the window opens with the first request after it
    server.set_rate_limit(60, WINDOW)
    other = GitLabClient(gitlab_sandbox.url, gitlab_sandbox.token, gitlab_sandbox.project_path)
    # Someone else uses the same bot token: the migration (its GitLab calls and its harness runs, which the
    # sandbox counts against the same token) will cross the budget once, and finish in the next window.
    for _ in range(25):
        other.find_issue("someone else's search", "no marker")
    try:
        result = await run_migration(engine, f"limited{uuid.uuid4().hex[:5]}")
    finally:
        server.set_rate_limit(None)
    assert result.stage == FeatureStage.DONE and [f.stage for f in result.features] == [FeatureStage.DONE] * 3
    log = [e for e in server.requests.entries() if e[0] >= started]
    reset = log[0][0] + WINDOW  # the window opened with the first request after the limit was set
    allowed = [at for at, _, _, code, _ in log if code != 429 and at < reset]
    assert len(allowed) == 60, f"the budget was not used up ({len(allowed)} of 60): this proved nothing"
    # GitLab said "0 remaining" with the 60th answer (and "retry after" with any 429): from
    # then on nothing may be sent until the window resets. A second covers requests on the wire.
    told = allowed[-1]
    sent_while_told = [at for at, *_ in log if told + 1.0 < at < reset - 1.0]
    assert sent_while_told == [], f"{len(sent_while_told)} requests sent while told to wait"
    assert all(at < told + 1.0 for at, _, _, code, _ in log if code == 429)
    assert any(at >= reset for at, *_ in log), "nothing was sent after the reset, yet the migration finished?"
