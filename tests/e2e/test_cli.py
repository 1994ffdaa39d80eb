"""The CLI against a dev server, the GitLab sandbox and a worker subprocess."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from temporalio.testing import WorkflowEnvironment

from model_migration.devserver import free_port
from tests.e2e.cli import Cli, cli_env, one_line_error, wait_status

MIGRATION = "migration:anthropic/claude-sonnet-4-5/20250929"


@pytest.fixture
def cli(dev_env: WorkflowEnvironment, gitlab_sandbox) -> Iterator[Cli]:  # type: ignore[no-untyped-def]
    # Harness runs finish at once, so the first poll already finds them complete.
    config, headers = f"{gitlab_sandbox.url}/api/evaluation/-/config", {"PRIVATE-TOKEN": gitlab_sandbox.token}
    assert requests.put(config, json={"run_seconds": 0}, headers=headers, timeout=10).ok
    runner = Cli(cli_env(dev_env, gitlab_sandbox))
    yield runner
    runner.kill_workers()
    requests.put(config, json={}, headers=headers, timeout=10)


def test_cli_runs_a_migration_end_to_end(cli: Cli) -> None:
    """start, status, list, complete, the evaluation gate, report-rollout and refusals, through real processes."""
    cli.start_worker()
    started = cli("start", "--model", "claude_sonnet_4_5_20250929", "-f", "duo_chat", "--actor", "ai-lead")
    assert MIGRATION in started.stdout
    assert "already running" in one_line_error(cli("start", "--model", "claude_sonnet_4_5_20250929", "-f", "duo_chat", check=False))
    st = wait_status(cli, MIGRATION, lambda s: s["config_mr_url"])
    assert "/-/merge_requests/" in st["config_mr_url"] and st["pending_action"]["command"] == "complete_stage init"
    assert "belongs to a feature" in one_line_error(cli("complete", MIGRATION, "--stage", "implement", check=False))
    cli("complete", MIGRATION, "--stage", "init", "--actor", "ai-lead")
    st = wait_status(cli, MIGRATION, lambda s: s["features"] and s["features"][0]["issue_url"])
    assert st["stage"] == "features" and st["issue"]["web_url"].startswith("http://127.0.0.1")
    listed = cli("list").stdout
    assert MIGRATION in listed and "0/1" in listed

    refused = cli("complete", MIGRATION, "-f", "duo_chat", "--stage", "evaluate", check=False)
    assert "not one of: init, implement, cleanup" in one_line_error(refused)
    bad_version = cli("complete", MIGRATION, "-f", "duo_chat", "--stage", "implement", "--prompt-version", "one", check=False)
    assert "not semver" in one_line_error(bad_version)
    assert "belongs to a feature" in one_line_error(cli("approve", MIGRATION, "--reason", "fine", check=False))
    cli("complete", MIGRATION, "-f", "duo_chat", "--stage", "implement", "--prompt-version", "1.0.0-dev", "--actor", "achen")
    # The engine's gate passes the target model on the sandbox's simulator, and moves the feature on.
    feature = wait_status(cli, f"{MIGRATION}:feature:duo_chat", lambda s: s["stage"] == "rollout", timeout=90)
    assert feature["gates"][0]["result"]["verdict"] == "pass"
    assert "pass --rerun" in one_line_error(cli("evaluate", MIGRATION, "-f", "duo_chat", check=False))
    assert "not evaluate" in one_line_error(cli("evaluate", MIGRATION, "-f", "duo_chat", "--rerun", check=False))
    assert "correctness" in cli("status", MIGRATION, "-f", "duo_chat").stdout
    cli("extend-deadline", MIGRATION, "-f", "duo_chat", "--stage", "rollout", "--date", "2099-01-01", "--reason", "change freeze")
    for pct in ("10", "50", "100"):
        cli("report-rollout", MIGRATION, "-f", "duo_chat", "-p", pct)
    human = cli("status", MIGRATION, "-f", "duo_chat").stdout
    assert "stage: cleanup" in human and "implement → evaluate" in human and "change freeze" in human
    cli("complete", f"{MIGRATION}:feature:duo_chat", "--stage", "cleanup")
    st = wait_status(cli, MIGRATION, lambda s: s["stage"] == "done")
    assert [f["stage"] for f in st["features"]] == ["done"]
    assert "finished" in one_line_error(cli("pause", MIGRATION, check=False))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("start", "--model", "claude_sonnet_4_5_20250929", "-f", "no_such_feature"), "unknown feature 'no_such_feature'"),
        (("start", "--model", "gpt-17", "-f", "duo_chat"), "unknown model 'gpt-17'"),
        (("start", "--model", "claude_sonnet_4_5_20250929", "-f", "duo_chat", "--target-date", "2001-02-03"), "in the past"),
        (("start", "--model", "claude_sonnet_4_5_20250929", "-f", "duo_chat", "--target-date", "next week"), "bad date"),
        (("status", "migration-anthropic"), "malformed id"),
        (("status", "migration:anthropic/none/1"), "no workflow"),
        (("report-rollout", "migration:anthropic/none/1", "-f", "duo_chat", "-p", "abc"), "error: "),
    ],
)
def test_user_errors_are_one_line(cli: Cli, args: tuple[str, ...], expected: str) -> None:
    """Bad input gets one line on stderr and exit code 2, never a traceback."""
    assert expected in one_line_error(cli(*args, check=False))


def test_unreachable_server_is_one_line(cli: Cli) -> None:
    """A Temporal address nobody listens on is reported in one line."""
    cli.env["MODEL_MIGRATION_TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"
    assert "cannot reach Temporal" in one_line_error(cli("list", check=False))
