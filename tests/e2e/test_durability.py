"""A worker killed with SIGKILL mid-migration: a new one finishes it, nothing lost or duplicated."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from model_migration.clients.gitlab import GitLabClient
from tests.e2e.cli import Cli, cli_env
from tests.e2e.test_cli import wait_status

MIGRATION = "migration:anthropic/claude-haiku-4-5/20251001"
FEATURES = ("discussion_summary", "merge_commit_message")
MARKER = re.compile(r"<!-- model-migration:(.+?) -->")


@pytest.fixture
def cli(dev_env: WorkflowEnvironment, gitlab_sandbox) -> Iterator[Cli]:  # type: ignore[no-untyped-def]
    runner = Cli(cli_env(dev_env, gitlab_sandbox))
    yield runner
    runner.kill_workers()


def restart(cli: Cli) -> None:
    cli.kill_workers()
    cli.start_worker()


def test_sigkill_mid_migration_loses_and_duplicates_nothing(cli: Cli, gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """Kill the worker three times at different stages; the migration completes with one of everything."""
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
    restart(cli)  # transition notes and table updates in flight
    for feature in FEATURES:
        cli("report-eval", MIGRATION, "-f", feature, "--verdict", "pass", "--metric", "correctness=3.0:3.2")
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
