"""A worker killed with SIGKILL mid-migration: a new one finishes it, nothing lost or duplicated."""

from __future__ import annotations

import asyncio
import re
import signal
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from temporalio.testing import WorkflowEnvironment

from model_migration.clients.gitlab import GitLabClient
from tests.e2e.cli import Cli, catalog_with_models, cli_env
from tests.e2e.test_cli import wait_status
from tests.workflows.test_watch import catalog_copy

MIGRATION = "migration:anthropic/claude-haiku-4-5/20251001"
FEATURES = ("discussion_summary", "merge_commit_message")
MARKER = re.compile(r"<!-- model-migration:(.+?) -->")


@pytest.fixture
def cli(dev_env: WorkflowEnvironment, gitlab_sandbox) -> Iterator[Cli]:  # type: ignore[no-untyped-def]
    runner = Cli(cli_env(dev_env, gitlab_sandbox))
    yield runner
    runner.kill_workers()
    simulate(gitlab_sandbox, {})


def simulate(sandbox, config: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    """Configure the sandbox's simulated models (``{}``: the defaults)."""
    headers = {"PRIVATE-TOKEN": sandbox.token}
    assert requests.put(f"{sandbox.url}/api/evaluation/-/config", json=config, headers=headers, timeout=10).ok


def registrations(sandbox) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for _, method, path, status, _ in sandbox.server.requests.entries()
               if method == "POST" and path.endswith("/v1/experiments/register") and status == 200)


def restart(cli: Cli) -> None:
    cli.kill_workers()
    cli.start_worker()


def test_sigkill_mid_migration_loses_and_duplicates_nothing(cli: Cli, gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """Kill the worker three times at different stages; the migration completes with one of everything."""
    simulate(gitlab_sandbox, {"run_seconds": 0})
    cli.start_worker()
    # Named features: the model they run on today retired on the catalog's date, so --replaces is refused.
    cli("start", "--model", "claude_haiku_4_5_20251001", *(a for f in FEATURES for a in ("-f", f)), "--activity-timeout", "2")
    restart(cli)  # while the tracking issue and the merge request are being created
    wait_status(cli, MIGRATION, lambda s: s["config_mr_url"])
    cli("complete", MIGRATION, "--stage", "init")
    restart(cli)  # while the children and their issues are being created
    st = wait_status(cli, MIGRATION, lambda s: all(f["issue_url"] for f in s["features"]))
    for feature in FEATURES:
        cli("complete", MIGRATION, "-f", feature, "--stage", "implement", "--prompt-version", "1.0.0-dev")
    restart(cli)  # transition notes, table updates and the evaluations in flight
    for feature in FEATURES:
        wait_status(cli, f"{MIGRATION}:feature:{feature}", lambda s: s["stage"] == "rollout", timeout=120)
        cli("report-rollout", MIGRATION, "-f", feature, "-p", "50")
    restart(cli)
    for feature in FEATURES:
        cli("report-rollout", MIGRATION, "-f", feature, "-p", "100")
        cli("complete", MIGRATION, "-f", feature, "--stage", "cleanup")
    st = wait_status(cli, MIGRATION, lambda s: s["stage"] == "done", timeout=120)
    assert [f["stage"] for f in st["features"]] == ["done", "done"]

    gl = GitLabClient(gitlab_sandbox.url, gitlab_sandbox.token, gitlab_sandbox.project_path)
    tracking = gl.get_issue(st["issue"]["iid"])
    assert gl.find_issue(tracking.title, f"{MIGRATION}:tracking").iid == tracking.iid
    same_title = gl._gl.http_list(  # noqa: SLF001 - count raw rows, as GitLab stores them
        f"/projects/{gitlab_sandbox.project_path.replace('/', '%2F')}/issues",
        query_data={"search": "Claude Haiku 4.5", "state": "all"}, get_all=True,
    )
    assert len(same_title) == 1 + len(FEATURES), [i["title"] for i in same_title]
    for issue in same_title:
        markers = Counter(m for n in gl.list_notes(issue["iid"]) for m in MARKER.findall(n.body))
        assert markers and max(markers.values()) == 1, (issue["title"], markers)
    feature_notes = [len(gl.list_notes(i["iid"])) for i in same_title if i["iid"] != tracking.iid]
    assert feature_notes == [5, 5]  # four transitions and the 50 % rollout note, once each


def test_sigkill_mid_poll_resumes_the_same_experiment(cli: Cli, gitlab_sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A worker killed while its harness activity polls: the next worker polls the same run and registers none."""
    catalog, (model,) = catalog_with_models(tmp_path / "catalog", "poll")
    cli.env["MODEL_MIGRATION_CATALOG_DIR"] = str(catalog)
    migration = f"migration:anthropic/claude-sonnet-4-5/{model.rsplit('_', 1)[1]}"
    simulate(gitlab_sandbox, {"run_seconds": 8})  # long enough to be caught mid-poll
    cli.start_worker()
    cli("start", "--model", model, "-f", "duo_chat", "--day-seconds", "600")
    wait_status(cli, migration, lambda s: s["config_mr_url"])
    cli("complete", migration, "--stage", "init")
    wait_status(cli, migration, lambda s: all(f["issue_url"] for f in s["features"]))
    before = registrations(gitlab_sandbox)
    cli("complete", migration, "-f", "duo_chat", "--stage", "implement", "--prompt-version", "1.0.0-dev")
    feature = f"{migration}:feature:duo_chat"
    wait_status(cli, feature, lambda s: registrations(gitlab_sandbox) > before and s["gates"])
    cli.kill_workers()  # SIGKILL while the run is still running on the service
    second = cli.start_worker()
    st = wait_status(cli, feature, lambda s: s["stage"] == "rollout", timeout=120)
    assert registrations(gitlab_sandbox) - before == 1
    assert st["gates"][0]["result"]["verdict"] == "pass"
    cli.kill_workers(signal.SIGTERM)
    assert second.stderr is not None
    log = second.stderr.read().decode()
    assert '"experiment_resumed"' in log and '"experiment_registered"' not in log, log[-2000:]


def test_sigkill_mid_deprecation_loses_and_duplicates_nothing(  # type: ignore[no-untyped-def]
    cli: Cli, gitlab_sandbox, dev_env: WorkflowEnvironment, tmp_path,
) -> None:
    """Kill the worker while the epic and the tournaments start, while the migration starts, and while
    its issues are filed: one epic, each harness run once, each note and each issue in the epic once."""
    copy = catalog_copy(f"k{uuid.uuid4().hex[:6]}", tmp_path / "catalog", {"claude_3_5_haiku_20241022": 56})
    cli.env["MODEL_MIGRATION_CATALOG_DIR"] = str(copy.directory)
    retiring, wid = copy.identifiers["claude_3_5_haiku_20241022"], copy.ids["claude_3_5_haiku_20241022"]
    migration = f"{wid}:migration"
    simulate(gitlab_sandbox, {"run_seconds": 1})
    before = registrations(gitlab_sandbox)
    cli.start_worker()
    cli("deprecate", "--model", retiring, "--cutoff", str(copy.cutoffs[wid]), "--recommended", "claude_sonnet_4_5_20250929",
        "--candidate", "code_gecko_002", "--day-seconds", "3600")
    restart(cli)  # while the epic is created and the tournaments start
    st = wait_status(cli, wid, lambda s: s["stage"] == "migrating", timeout=120)
    assert st["replacement"] == "claude_sonnet_4_5_20250929", st["choice"]
    restart(cli)  # while the migration opens its tracking issue and merge request
    wait_status(cli, migration, lambda s: s["config_mr_url"])
    cli("complete", migration, "--stage", "init")
    restart(cli)  # while the feature issues are created and filed in the epic
    st = wait_status(cli, migration, lambda s: all(f["issue_url"] for f in s["features"]))
    features = [f["feature"] for f in st["features"]]
    assert registrations(gitlab_sandbox) - before == 2 * len(features)  # two candidates per feature, each run once

    gl = GitLabClient(gitlab_sandbox.url, gitlab_sandbox.token, gitlab_sandbox.project_path, gitlab_sandbox.group_path)
    epics = [e for e in gl._group().epics.list(get_all=True, state="all")  # noqa: SLF001 - every row, as GitLab stores them
             if f"<!-- model-migration:{wid}:epic -->" in (e.description or "")]
    assert len(epics) == 1
    notes = Counter(m for n in epics[0].notes.list(get_all=True) for m in MARKER.findall(n.body))
    assert notes and max(notes.values()) == 1, notes
    filed = [i.iid for i in gl.epic_issues(epics[0].iid)]
    assert len(filed) == len(set(filed)) == 1 + len(features)  # the tracking issue and each feature issue, once
    for workflow_id in (wid, migration, *(f"{migration}:feature:{f}" for f in features)):
        asyncio.run(dev_env.client.get_workflow_handle(workflow_id).terminate("test over"))
