"""``deprecate``, ``select-replacement``, ``update-cutoff``, ``status``/``list`` of deprecations and ``watch``,
run as a user runs them: subprocesses against the session's dev server, whose in-process workers run the workflows.

Refusals need no server at all (none listens), which also proves nothing was started. The live tests retire
copies of catalog models under slugs of their own (``tests/workflows/test_watch.py``'s ``catalog_copy``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

import worker as worker_module
from model_migration.settings import Settings
from model_migration.watch_schedule import SCHEDULE_ID
from tests.cli.run import cli, env
from tests.temporal_fixtures import Engine, assert_eventually
from tests.workflows.test_watch import Copy, catalog_copy

SONNET, HAIKU = "claude_3_7_sonnet_20250219", "claude_3_5_haiku_20241022"
TODAY = datetime.now(UTC).date()


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


# -- refusals: one line, exit 2, nothing started (no server listens) -----------------------------

LIVE = ("--model", SONNET, "--cutoff", str(TODAY + timedelta(days=90)))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--model", SONNET, "--cutoff", str(TODAY - timedelta(days=1))), "is not after today"),
        (("--model", "gpt-17", "--cutoff", "2099-01-01"), "unknown model 'gpt-17'"),
        (("--model", "code_gecko_002", "--cutoff", "2099-01-01"), "no catalog feature uses code_gecko_002"),
        ((*LIVE, "--lead-weeks", "5"), "outside GitLab's 2–4 weeks"),
        ((*LIVE, "--lead-weeks", "1"), "outside GitLab's 2–4 weeks"),
        ((*LIVE, "--candidate", "gpt-9"), "unknown replacement candidate 'gpt-9'"),
        ((*LIVE, "--recommended", SONNET), "is the model being retired, not a replacement"),
        ((*LIVE, "--candidate", "Claude 3.7 Sonnet"), "is the model being retired, not a replacement"),
        ((*LIVE, "--announcement", "ftp://example.com"), "is not an http(s) URL"),
        ((*LIVE, "--deprecation-date", "2099-12-31"), "is after the cutoff"),
        ((*LIVE, "--day-seconds", "0"), "not a number of seconds above 0"),
        (("--model", SONNET, "--cutoff", "next month"), "bad date 'next month' for --cutoff"),
        (("--cutoff", "2099-01-01"), "name the retiring model with --model"),
        (("--model", SONNET), "give the provider's cutoff with --cutoff"),
        (("--file", "/nonexistent/deprecation.yml"), "file not found"),
    ],
)
def test_deprecate_refusals_are_one_line(args: tuple[str, ...], expected: str) -> None:
    assert expected in one_line(cli("deprecate", *args))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: claude_3_7_sonnet_20250219\ncutoff: 2099-01-01\ncandidatez: [x]\n", "unknown key 'candidatez'"),
        ("model: claude_3_7_sonnet_20250219\ncutoff: someday\n", "cutoff: Input should be a valid date"),
        ("- model\n", "expected a mapping"),
        ("model: [unclosed\n", "invalid YAML"),
        ("model: claude_3_7_sonnet_20250219\ncutoff: 2099-01-01\nlead-weeks: 6\n", "outside GitLab's 2–4 weeks"),
    ],
)
def test_deprecate_file_refusals_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "deprecation.yml"
    path.write_text(text)
    assert expected in one_line(cli("deprecate", "--file", str(path)))


def test_a_bad_initiative_epic_is_refused_before_starting() -> None:
    done = cli("deprecate", *LIVE, environ=env(MODEL_MIGRATION_INITIATIVE_EPIC="gitlab-org#12"))
    assert "MODEL_MIGRATION_INITIATIVE_EPIC" in one_line(done)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("select-replacement", "deprecation:anthropic/x", "--model", "gpt-9", "--reason", "r"), "unknown model 'gpt-9'"),
        (("select-replacement", "migration:anthropic/x/1", "--model", SONNET, "--reason", "r"), "expected deprecation:<provider>/<model>"),
        (("update-cutoff", "deprecation:anthropic/x", "--date", "soon", "--reason", "r"), "bad date 'soon' for --date"),
        (("status", "deprecation:anthropic/x", "-f", "duo_chat"), "has no features of its own"),
        (("complete", "deprecation:anthropic/x", "--stage", "init"), "is a deprecation: it takes status"),
        (("watch",), "pass --install"),
        (("watch", "--install", "--every", "daily"), "--every 'daily'"),
        (("watch", "--install", "--every", "10s"), "at least a minute"),
    ],
)
def test_other_refusals_are_one_line(args: tuple[str, ...], expected: str) -> None:
    assert expected in one_line(cli(*args))


# -- against the dev server --------------------------------------------------------------------


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Copy:
    return catalog_copy(f"c{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("catalog"))


def live_env(engine: Engine, copy: Copy, queue: str | None = None, **extra: str) -> dict[str, str]:
    assert copy.directory is not None
    return env(
        MODEL_MIGRATION_TEMPORAL_ADDRESS=engine.client.service_client.config.target_host,
        MODEL_MIGRATION_TASK_QUEUE=queue or engine.task_queue, MODEL_MIGRATION_CATALOG_DIR=str(copy.directory), **extra,
    )


async def run(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a thread, so that the in-process workers keep serving while it waits on them."""
    return await asyncio.to_thread(cli, *args, environ=environ)


async def terminate(client: Client, *workflow_ids: str) -> None:
    for workflow_id in workflow_ids:
        handle = client.get_workflow_handle(workflow_id)
        try:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test over")
        except RPCError:
            pass


async def test_deprecate_from_a_file_then_status_select_update_and_list(engine: Engine, copy: Copy, tmp_path: Path) -> None:
    """The whole AI Framework path on one deprecation, with every refusal on the way one line."""
    environ = live_env(engine, copy)
    model, wid = copy.identifiers[SONNET], copy.ids[SONNET]
    cutoff = TODAY + timedelta(days=90)
    spec = tmp_path / "deprecation.yml"
    spec.write_text(f"model: {model}\ncutoff: {cutoff}\nannouncement: https://docs.anthropic.com/deprecations\nlead-weeks: 3\n")
    try:
        started = ok(await run(environ, "deprecate", "--file", str(spec)))
        assert f"started {wid} for {model}" in started and "mode: on plan" in started
        assert f"due {cutoff - timedelta(weeks=3)} (21 days before)" in started and f"see: model-migration status {wid}" in started
        again = one_line(await run(environ, "deprecate", "--model", model, "--cutoff", str(cutoff)))
        assert f"deprecation {wid} is already running; see: model-migration status {wid}" in again

        async def selecting() -> dict[str, object]:
            st = json.loads(ok(await run(environ, "status", wid, "--json")))
            assert st["stage"] == "selecting" and st["epic_url"], st["stage"]
            return st

        st = await assert_eventually(selecting, timeout=60, interval=0.5)
        assert (st["cutoff"], st["due"], st["feasible"], st["days_left"]) == (str(cutoff), str(cutoff - timedelta(weeks=3)), True, 69)
        human = ok(await run(environ, "status", wid))
        assert f"cutoff {cutoff}, due {cutoff - timedelta(weeks=3)}, 69 days left" in human and "feasible" in human
        assert "replacement: undecided — no replacement candidates were given" in human
        assert f"next: model-migration select-replacement {wid}" in human and "/-/epics/" in human

        moved = cutoff + timedelta(days=14)
        assert "the cutoff is" in one_line(await run(environ, "update-cutoff", wid, "--date", str(cutoff), "--reason", "same"))
        said = ok(await run(environ, "update-cutoff", wid, "--date", str(moved), "--reason", "provider extended", "--actor", "ai-lead"))
        assert f"cutoff {moved}, due {moved - timedelta(weeks=3)}" in said
        human = ok(await run(environ, "status", wid))
        assert f"{cutoff} → {moved} by @ai-lead: provider extended" in human

        chosen = "claude_sonnet_4_5_20250929"  # a catalog model, not a candidate
        by_key = "anthropic/claude-sonnet-4-5/20250929"
        said = ok(await run(environ, "select-replacement", wid, "--model", by_key, "--reason", "the provider's pick"))
        assert f"replacement: {chosen}" in said
        refused = one_line(await run(environ, "select-replacement", wid, "--model", chosen, "--reason", "again"))
        assert f"{wid} refused select_replacement: no replacement is awaited" in refused

        async def migrating() -> dict[str, object]:
            st = json.loads(ok(await run(environ, "status", wid, "--json")))
            assert st["stage"] == "migrating" and st["migration_id"] == f"{wid}:migration", st["stage"]
            return st

        st = await assert_eventually(migrating, timeout=60, interval=0.5)
        assert st["replacement"] == chosen and [c["new"] for c in st["cutoff_changes"]] == [str(moved)]

        rows = json.loads(ok(await run(environ, "list", "--json")))
        row = next(r for r in rows if r["workflow_id"] == wid)
        assert (row["kind"], row["model"], row["cutoff"], row["due"], row["replacement"]) == (
            "deprecation", model, str(moved), str(moved - timedelta(weeks=3)), chosen,
        )
        assert row["on_track"] + row["late"] <= len(st["features"])  # type: ignore[arg-type]
        listed = ok(await run(environ, "list"))
        assert wid in listed and str(moved) in listed
        assert ok(await run(environ, "status", f"{wid}:migration", "--json"))  # the child migration is addressable
    finally:
        await terminate(engine.client, wid)


async def test_a_close_cutoff_starts_in_late_mode(engine: Engine, copy: Copy) -> None:
    """A cutoff 30 days out leaves two days before the due date: started all the same, in late mode, said so."""
    environ = live_env(engine, copy)
    wid = copy.ids[HAIKU]
    try:
        done = await run(environ, "deprecate", "--model", copy.identifiers[HAIKU], "--cutoff", str(TODAY + timedelta(days=30)),
                         "--day-seconds", "30", "--json")
        body = json.loads(ok(done))
        assert body["workflow_id"] == wid and body["late_mode"] is True and "infeasible by" in body["summary"]
        human = ok(await run(environ, "status", wid))
        assert "LATE MODE" in human
    finally:
        await terminate(engine.client, wid)


@pytest_asyncio.fixture
async def watch_env(engine: Engine, gitlab_sandbox, unique: str, tmp_path: Path) -> AsyncIterator[tuple[dict[str, str], Copy]]:  # type: ignore[no-untyped-def]
    """A worker as ``model-migration worker`` assembles one (deprecations and the watch) on a queue of its own,
    over a catalog copy of its own; the schedule and the deprecations are gone after the test."""
    copy = catalog_copy(f"s{unique}", tmp_path / "catalog")
    queue = f"watch-cli-{unique}"
    settings = Settings(task_queue=queue, catalog_dir=copy.directory, gitlab_url=gitlab_sandbox.url)
    watch = worker_module.watch_activities(settings, engine.client)
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with worker_module.build_worker(engine.client, queue, engine.gitlab, executor, watch=watch):
            yield live_env(engine, copy, queue), copy
            try:
                await engine.client.get_schedule_handle(SCHEDULE_ID).delete()
            except RPCError:
                pass
            await terminate(engine.client, *copy.ids.values())


async def test_watch_runs_directly_then_through_its_schedule_installed_twice(
    engine: Engine, watch_env: tuple[dict[str, str], Copy],
) -> None:
    """Without a schedule --run-now runs one pass and prints its report; --install creates the schedule, a second
    --install updates its interval (still one schedule); --run-now then triggers it, and that pass starts nothing."""
    environ, copy = watch_env
    first = json.loads(ok(await run(environ, "watch", "--run-now", "--json")))
    assert first["scheduled"] is False and sorted(first["report"]["started"]) == sorted(copy.ids.values())

    said = ok(await run(environ, "watch", "--install"))
    assert f"created schedule {SCHEDULE_ID}" in said and "every 1d" in said
    handle = engine.client.get_schedule_handle(SCHEDULE_ID)
    assert [i.every for i in (await handle.describe()).schedule.spec.intervals] == [timedelta(days=1)]
    assert "updated schedule" in ok(await run(environ, "watch", "--install", "--every", "12h"))
    described = await handle.describe()
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(hours=12)]
    assert described.schedule.action.task_queue == environ["MODEL_MIGRATION_TASK_QUEUE"]  # type: ignore[union-attr]

    async def one_schedule() -> None:
        assert [s.id async for s in await engine.client.list_schedules() if s.id == SCHEDULE_ID] == [SCHEDULE_ID]

    await assert_eventually(one_schedule)

    again = ok(await run(environ, "watch", "--run-now"))
    assert f"(schedule {SCHEDULE_ID} triggered)" in again and "0 started, 0 cutoffs moved" in again


def test_status_shows_the_tournament_late_features_and_escalations() -> None:
    """A close call as a person reads it: the table per feature, who is late, what fired, what comes next."""
    from rich.console import Console

    from model_migration import deprecation_render
    from model_migration.domain.commands import Verdict
    from model_migration.domain.deprecation_run import FiredEntry
    from model_migration.domain.replacement import Choice
    from model_migration.domain.stages import FeatureStage
    from model_migration.domain.tournament import Standing, TournamentResult
    from workflows.deprecation_messages import DeprecationStage, DeprecationStatus
    from workflows.messages import FeatureProgress

    rows = (
        Standing(rank=1, candidate="anthropic/claude-sonnet-4-5/20250929", verdict=Verdict.PASS, quality=0.31, latency_p95_ms=812,
                 cost_indicator="$$$", ahead_by="quality"),
        Standing(rank=2, candidate="anthropic/claude-haiku-4-5/20251001", verdict=Verdict.PASS, quality=0.2, latency_p95_ms=401,
                 cost_indicator="$"),
    )
    st = DeprecationStatus(
        workflow_id="deprecation:anthropic/claude-3-7-sonnet", stage=DeprecationStage.SELECTING, model=SONNET, provider="anthropic",
        cutoff=TODAY + timedelta(days=20), due=TODAY + timedelta(days=6), today=TODAY, days_left=6, feasible=False,
        plan_summary="infeasible by 9 days (duo_chat)",
        choice=Choice(leader=rows[0].candidate, runner_up=rows[1].candidate, reason="close call: duo_chat: within 0.25 margins"),
        tournament={"duo_chat": TournamentResult(winner=rows[0].candidate, table=rows), "code_generation": None},
        features=(FeatureProgress(feature="duo_chat", stage=FeatureStage.IMPLEMENT),
                  FeatureProgress(feature="code_generation", stage=FeatureStage.IMPLEMENT)),
        on_track=("code_generation",), late=("duo_chat",),
        fired=(FiredEntry(on=TODAY, name="late mode", features=("duo_chat",), label="priority::1"),),
        next_escalation=TODAY + timedelta(days=4),
    )
    console = Console(width=220, record=True, force_terminal=False)
    deprecation_render.status(console, st)
    shown = console.export_text()
    assert "6 days left" in shown and "LATE MODE" in shown
    assert "replacement: undecided — close call: duo_chat: within 0.25 margins" in shown
    assert "anthropic/claude-sonnet-4-5/20250929" in shown and "+0.31" in shown and "812 ms" in shown and "no verdict" in shown
    assert "on track: 1, late: 1 (duo_chat)" in shown
    assert f"{TODAY}  late mode (priority::1) — duo_chat" in shown and f"next escalation: {TODAY + timedelta(days=4)}" in shown
    assert "BLOCKED" not in shown
    console = Console(width=220, record=True, force_terminal=False)
    deprecation_render.status(console, st.model_copy(update={"blocked": "GitLab: 403 Forbidden on post epic note"}))
    blocked = console.export_text()
    assert f"BLOCKED: GitLab: 403 Forbidden on post epic note; fix it, then run: model-migration resume {st.workflow_id}" in blocked
