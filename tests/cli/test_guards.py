"""Doors the CLI guards on its own: each refusal is one line, exit 2, and nothing is started.

Temporal's address points where nothing listens, so a refusal that came from the server
instead of the CLI would read "cannot reach Temporal" and fail these tests.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_migration.devserver import free_port
from tests.cli.run import cli, env, json_lines
from tests.e2e.cli import one_line_error

M = "migration:anthropic/claude-sonnet-4-5/20250929"
START = ("start", "--model", "claude_sonnet_4_5_20250929", "-f", "duo_chat")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port this test holds open, as another server would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_no_arguments_prints_the_help() -> None:
    """Bare ``model-migration`` shows usage and the commands, not an error."""
    done = cli()
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout and "start" in done.stdout and "dev-server" in done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("option", "value"),
    [("--activity-timeout", "0"), ("--activity-timeout", "-5"), ("--day-seconds", "0"), ("--day-seconds", "-2.5")],
)
def test_tunables_must_be_positive(option: str, value: str) -> None:
    """A zero or negative duration is refused by the CLI, naming the option."""
    line = one_line_error(cli(*START, option, value))
    assert option in line and "above 0" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("complete", M, "-f", "duo_chat", "--stage", "evaluate"), "not one of: init, implement, cleanup"),
        (("complete", M, "--stage", "rollout"), "not one of: init, implement, cleanup"),
        (("complete", M, "-f", "duo_chat", "--stage", "init"), "init belongs to the migration"),
        (("complete", f"{M}:feature:duo_chat", "--stage", "init"), "init belongs to the migration"),
        (("complete", M, "--stage", "implement"), "implement belongs to a feature: add --feature"),
    ],
)
def test_complete_offers_only_stages_a_person_completes(args: tuple[str, ...], expected: str) -> None:
    """complete --stage takes init on a migration and implement or cleanup on a feature."""
    assert expected in one_line_error(cli(*args))


def test_extend_deadline_on_a_migration_asks_for_a_feature() -> None:
    """Deadlines are per feature; a migration id without --feature is told so."""
    line = one_line_error(cli("extend-deadline", M, "--stage", "rollout", "--date", "2099-01-01", "--reason", "freeze"))
    assert "--feature" in line


def test_start_refuses_a_retired_replaced_model_before_connecting() -> None:
    """A migration away from a model that has already retired is refused with its date."""
    line = one_line_error(cli(*START, "--replaces", "code_gecko_002"))
    assert "code_gecko_002 was retired on 2025-04-09" in line and "nothing was started" in line


def test_start_refuses_an_incompatible_model_before_connecting() -> None:
    """The infrastructure check runs before anything starts and gives its reasons."""
    line = one_line_error(cli("start", "--model", "codestral_2501_vertex", "-f", "code_completion"))
    assert "infrastructure check failed" in line and "already runs on codestral_2501_vertex" in line


@pytest.mark.parametrize("command", ["dev-server", "sandbox"])
def test_a_port_in_use_is_refused_before_the_banner(command: str, busy_port: int, tmp_path: Path) -> None:
    """A port someone else listens on is named in one line, and no banner is printed."""
    done = cli(command, "--port", str(busy_port), "--state-dir", str(tmp_path / "state"))
    assert f"--port {busy_port} is already in use" in one_line_error(done)
    assert done.stdout == "" and not (tmp_path / "state").exists()


def test_dev_server_ui_port_in_use_is_refused(busy_port: int, tmp_path: Path) -> None:
    """The Web UI port is checked like the gRPC port."""
    done = cli("dev-server", "--port", str(free_port()), "--ui-port", str(busy_port), "--state-dir", str(tmp_path))
    assert f"--ui-port {busy_port} is already in use" in one_line_error(done)
    assert done.stdout == ""


@pytest.mark.parametrize("port", ["0", "70000", "-1"])
@pytest.mark.parametrize("command", ["dev-server", "sandbox"])
def test_an_invalid_port_is_refused(command: str, port: str, tmp_path: Path) -> None:
    """Ports outside 1-65535 are named in one line."""
    done = cli(command, "--port", port, "--state-dir", str(tmp_path / "state"))
    assert f"--port {port} is not a port number" in one_line_error(done)
    assert done.stdout == "" and not (tmp_path / "state").exists()


@pytest.mark.parametrize(("command", "option"), [("dev-server", "--ip"), ("sandbox", "--host")])
def test_an_invalid_host_is_refused(command: str, option: str, tmp_path: Path) -> None:
    """A host that is no address of this machine is named in one line."""
    done = cli(command, option, "not a host!", "--port", str(free_port()), "--state-dir", str(tmp_path / "state"))
    assert f"{option} 'not a host!'" in one_line_error(done)
    assert done.stdout == "" and not (tmp_path / "state").exists()


def test_an_unexpected_failure_is_one_line_too(tmp_path: Path) -> None:
    """A broken catalog directory (a file, not a directory) gives one line, not a traceback."""
    (tmp_path / "catalog").write_text("not a directory")
    done = cli(*START, environ=env(MODEL_MIGRATION_CATALOG_DIR=str(tmp_path / "catalog")))
    assert done.returncode in (1, 2), done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr


def test_worker_off_a_terminal_logs_only_json() -> None:
    """A worker that cannot reach Temporal says so as a JSON line, like every other line it writes."""
    done = cli("worker", environ=env(MODEL_MIGRATION_GITLAB_TOKEN="secret-token-value"))
    assert done.returncode == 2
    records = json_lines(done.stderr)
    assert records and records[-1]["level"] == "error" and "cannot reach Temporal" in records[-1]["error"]
    assert "secret-token-value" not in done.stderr
