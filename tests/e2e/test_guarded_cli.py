"""The CLI's guarded doors that need a server: namespace, list, finished runs, GitLab trouble."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.cli.run import json_lines
from tests.e2e.cli import Cli, Proxy, catalog_with_models, cli_env, one_line_error, wait_status
from workflows import attributes
from workflows.messages import MigrationInput


@pytest.fixture
def cli(dev_env: WorkflowEnvironment, gitlab_sandbox, tmp_path: Path) -> Iterator[Cli]:  # type: ignore[no-untyped-def]
    runner = Cli(cli_env(dev_env, gitlab_sandbox))
    yield runner
    runner.kill_workers()


def _on_server(cli: Cli, work: Callable[[Client], Any]) -> Any:
    """Run ``work`` with a client of its own: these tests drive the CLI, not the session's loop."""
    async def main() -> Any:
        client = await Client.connect(cli.env["MODEL_MIGRATION_TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter)
        return await work(client)

    return asyncio.run(main())


def _terminate(cli: Cli, *workflow_ids: str) -> None:
    async def work(client: Client) -> None:
        for wid in workflow_ids:
            try:
                await client.get_workflow_handle(wid).terminate("test over")
            except Exception:  # noqa: BLE001 - already closed is fine
                continue

    _on_server(cli, work)


def _wait_json(cli: Cli, args: tuple[str, ...], ready: Callable[[Any], bool], timeout: float = 60) -> Any:
    end = time.monotonic() + timeout
    while True:
        done = cli(*args, check=False)
        if done.returncode == 0 and ready(value := json.loads(done.stdout)):
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{' '.join(args)} never got ready: {done.stdout or done.stderr}")
        time.sleep(0.5)


def _started_id(done: subprocess.CompletedProcess[str]) -> str:
    match = re.search(r"started (migration:\S+)", done.stdout)
    assert match, done.stdout
    return match.group(1)


@pytest.mark.parametrize(
    "args",
    [("list",), ("status", "migration:anthropic/none/1"), ("pause", "migration:anthropic/none/1"),
     ("complete", "migration:anthropic/none/1", "--stage", "init"),
     ("start", "--model", "claude_sonnet_4_5_20250929", "-f", "duo_chat"), ("worker",)],
    ids=lambda a: a[0],
)
def test_a_wrong_namespace_is_named_by_every_command(cli: Cli, args: tuple[str, ...]) -> None:
    """Not "no workflow", not a traceback: one line naming the namespace."""
    cli.env["MODEL_MIGRATION_TEMPORAL_NAMESPACE"] = "nope"
    cli.env["MODEL_MIGRATION_LOG_FORMAT"] = "console"
    assert "namespace 'nope' does not exist" in one_line_error(cli(*args, check=False))


def test_list_survives_a_broken_workflow_and_shows_finished_runs(cli: Cli, tmp_path: Path) -> None:
    """A row that cannot be read is marked; deadlines are any feature's; aborted reads as aborted;
    a finished migration is listed with --all, and starting it again needs --rerun."""
    catalog, (model,) = catalog_with_models(tmp_path / "catalog", "list")
    cli.env["MODEL_MIGRATION_CATALOG_DIR"] = str(catalog)
    broken = f"migration:test/broken-{uuid.uuid4().hex[:6]}/1"
    cli.start_worker()
    mid = _started_id(cli("start", "--model", model, "-f", "duo_chat", "-f", "code_generation"))
    try:
        # A workflow type the worker does not know: its workflow task fails every time, so it
        # cannot answer a query, and it has none of the search attributes list reads.
        _on_server(cli, lambda c: c.start_workflow(
            "RetiredMigrationWorkflow", id=broken, task_queue=cli.env["MODEL_MIGRATION_TASK_QUEUE"],
            search_attributes=TypedSearchAttributes([SearchAttributePair(attributes.KIND, "migration")]),
        ))
        cli("complete", mid, "--stage", "init")
        wait_status(cli, mid, lambda s: len(s["features"]) == 2 and all(f["issue_url"] for f in s["features"]))
        cli("extend-deadline", mid, "-f", "duo_chat", "--stage", "implement", "--date", "2099-01-01", "--reason", "later")
        due = wait_status(cli, f"{mid}:feature:code_generation", lambda s: bool(s["deadlines"]))["deadlines"][0]["due"]

        rows = _wait_json(cli, ("list", "--json"), lambda rs: any(
            r["workflow_id"] == mid and r["next_feature"] == "code_generation" for r in rs))
        row = next(r for r in rows if r["workflow_id"] == mid)
        assert (row["model"], row["stage"], row["done"], row["total"]) == (model, "features", 0, 2)
        assert row["next_deadline"].replace("Z", "+00:00") == due.replace("Z", "+00:00")
        unreadable = next(r for r in rows if r["workflow_id"] == broken)["stage"]
        assert unreadable.startswith("unreadable: ") and "\n" not in unreadable
        human = cli("list")
        assert "unreadable" in human.stdout and mid in human.stdout

        cli("abort", mid, "-f", "code_generation", "--reason", "feature retired")
        feature = wait_status(cli, f"{mid}:feature:code_generation", lambda s: s["stage"] == "aborted")
        assert feature["stage"] == "aborted"
        refused = one_line_error(cli("pause", mid, "-f", "code_generation", check=False))
        assert "has finished (aborted)" in refused and "completed" not in refused

        cli("abort", mid, "--reason", "test over")
        rows = _wait_json(cli, ("list", "--all", "--json"), lambda rs: any(
            r["workflow_id"] == mid and not r["running"] for r in rs))
        row = next(r for r in rows if r["workflow_id"] == mid)
        assert (row["model"], row["stage"], row["total"], row["aborted"], row["done"]) == (model, "aborted", 2, 2, 0)
        assert mid not in cli("list").stdout
        assert "(2 aborted)" in cli("list", "--all").stdout

        again = one_line_error(cli("start", "--model", model, "-f", "duo_chat", check=False))
        assert "already finished (aborted: 2 aborted" in again and "--rerun" in again
        assert "again" in cli("start", "--model", model, "-f", "duo_chat", "--rerun").stdout
        assert _on_server(cli, lambda c: _rerun_of(c, mid)) == 1
    finally:
        _terminate(cli, broken, mid)


async def _rerun_of(client: Client, workflow_id: str) -> int:
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        [started] = await client.data_converter.decode(payloads, [MigrationInput])
        return int(started.rerun)
    raise AssertionError("no start event")


def test_status_shows_gitlab_unreachable_and_the_worker_logs_json(cli: Cli, gitlab_sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """GitLab goes away after the worker's start check: status says since when and the last error,
    and everything the worker wrote to stderr, tracebacks included, is JSON lines."""
    catalog, (model,) = catalog_with_models(tmp_path / "catalog", "down")
    proxy = Proxy(gitlab_sandbox.url)
    cli.env.update({"MODEL_MIGRATION_CATALOG_DIR": str(catalog), "MODEL_MIGRATION_GITLAB_URL": proxy.url,
                    "MODEL_MIGRATION_LOG_FORMAT": "auto"})
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "model_migration.cli", "worker"], env=cli.env,
                                  stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
    mid = ""
    try:
        end = time.monotonic() + 60
        while "worker_started" not in log_path.read_text():
            assert worker.poll() is None and time.monotonic() < end, log_path.read_text()
            time.sleep(0.2)
        proxy.close()
        mid = _started_id(cli("start", "--model", model, "-f", "duo_chat", "--activity-timeout", "5"))
        st = wait_status(cli, mid, lambda s: (s.get("gitlab_trouble") or {}).get("attempt", 0) >= 2)
        assert st["gitlab_trouble"]["last_error"]
        human = cli("status", mid).stdout
        assert re.search(r"GitLab unreachable since \d\d:\d\d UTC, retrying \(attempt \d+\): \S", human), human
    finally:
        proxy.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        if mid:
            _terminate(cli, mid)
    text = log_path.read_text()
    records = json_lines(text)
    assert any(r.get("event") == "worker_started" for r in records)
    assert any("Traceback" in str(r.get("exception", "")) for r in records), "no activity failure was logged"
    assert gitlab_sandbox.token not in text and "\x1b[" not in text
