"""The worker asks GitLab who its token belongs to before it starts, and stops with one line if not."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

import worker as worker_module
from model_migration.clients.gitlab import GitLabClient
from model_migration.clients.harness import HarnessKind
from model_migration.domain.errors import DomainError, ErrorType, GitLabError
from model_migration.settings import Settings

if TYPE_CHECKING:
    from tests.conftest import SandboxInfo

ROOT = Path(__file__).resolve().parents[2]
BAD_TOKEN = "glpat-" + "x" * 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _settings(sandbox: SandboxInfo, url: str | None = None, token: str | None = None) -> Settings:
    return Settings(
        gitlab_url=url or sandbox.url, gitlab_token=SecretStr(token or sandbox.token),
        gitlab_project=sandbox.project_path, gitlab_group=sandbox.group_path,
    )  # fmt: skip


def test_whoami_names_the_tokens_user(gitlab_client: GitLabClient) -> None:
    """``whoami`` is ``GET /user``: the sandbox token is the bot's."""
    me = gitlab_client.whoami()
    assert me.username == "model-migration-bot" and me.id > 0


def test_check_passes_for_a_good_token(gitlab_sandbox: SandboxInfo) -> None:
    """With the right URL and token the check answers with the token's user."""
    assert worker_module.check_gitlab(worker_module.gitlab_factory(_settings(gitlab_sandbox))).username == "model-migration-bot"


def test_refused_token_is_one_line_naming_the_url_and_the_setting(gitlab_sandbox: SandboxInfo) -> None:
    """A 401 says the token was refused by that URL and which variable to set; no token shown."""
    make = worker_module.gitlab_factory(_settings(gitlab_sandbox, token=BAD_TOKEN))
    with pytest.raises(GitLabError) as caught:
        worker_module.check_gitlab(make)
    assert caught.value.message == (
        f"the GitLab token was refused by {gitlab_sandbox.url}; set MODEL_MIGRATION_GITLAB_TOKEN"
    )
    assert (caught.value.type, caught.value.status) == (ErrorType.GITLAB_AUTH, 401)


def test_unreachable_gitlab_is_one_line_naming_the_url() -> None:
    """Nothing listening: the message names the URL and the cause, not the token."""
    url = f"http://127.0.0.1:{_free_port()}"
    settings = Settings(gitlab_url=url, gitlab_token=SecretStr(BAD_TOKEN), gitlab_timeout=2)
    with pytest.raises(GitLabError) as caught:
        worker_module.check_gitlab(worker_module.gitlab_factory(settings))
    assert caught.value.message == f"GitLab at {url} is unreachable (connection refused)"
    assert BAD_TOKEN not in caught.value.message


async def test_run_stops_before_starting_when_gitlab_refuses(gitlab_sandbox: SandboxInfo) -> None:
    """``run`` raises the check's error before it touches Temporal (here: no client at all)."""
    stop = asyncio.Event()
    with pytest.raises(GitLabError, match="token was refused"):
        await worker_module.run(_settings(gitlab_sandbox, token=BAD_TOKEN), client=None, stop=stop)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", ["bad token", "nothing listens"])
def test_worker_command_exits_non_zero_with_one_line(dev_env: WorkflowEnvironment, gitlab_sandbox: SandboxInfo, case: str) -> None:
    """``model-migration worker`` against a refusing or absent GitLab prints one line and exits non-zero."""
    url = gitlab_sandbox.url if case == "bad token" else f"http://127.0.0.1:{_free_port()}"
    env = {
        **os.environ,
        "MODEL_MIGRATION_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "MODEL_MIGRATION_GITLAB_URL": url,
        "MODEL_MIGRATION_GITLAB_TOKEN": BAD_TOKEN,
        "MODEL_MIGRATION_GITLAB_TIMEOUT": "2",
    }
    done = subprocess.run(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    wanted = (
        f"the GitLab token was refused by {url}; set MODEL_MIGRATION_GITLAB_TOKEN"
        if case == "bad token" else f"GitLab at {url} is unreachable (connection refused)"
    )  # fmt: skip
    # The last line, whether the command line writes it plain or as a JSON log line.
    assert wanted in done.stderr.strip().splitlines()[-1]
    assert BAD_TOKEN not in done.stderr + done.stdout


def test_a_catalog_that_names_promptfoo_needs_it_installed(gitlab_sandbox: SandboxInfo, tmp_path: Path) -> None:
    """A feature evaluated by promptfoo with no promptfoo installed stops the start with one line naming the fix."""
    from model_migration.catalog import default_catalog_dir
    from model_migration.clients.gitlab import WaitGate
    from model_migration.clients.gitlab_labels import UserDirectory

    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "models.yml").write_text((default_catalog_dir() / "models.yml").read_text())
    features = (default_catalog_dir() / "features.yml").read_text()
    line = "  dataset: duo_chat.questions.v3\n"
    features = features.replace(line, line + "  evaluation: {harness: promptfoo}\n", 1)
    (catalog / "features.yml").write_text(features)
    settings = _settings(gitlab_sandbox).model_copy(update={"catalog_dir": catalog, "promptfoo_dir": tmp_path / "no-promptfoo"})
    with pytest.raises(DomainError) as caught:
        worker_module.evaluation_activities(settings, WaitGate(), UserDirectory())
    assert caught.value.message.startswith("duo_chat evaluate with promptfoo: ")
    assert "model-migration setup-promptfoo" in caught.value.message and "\n" not in caught.value.message
    # The shipped catalog names no promptfoo feature: the worker starts without it, and has no promptfoo harness.
    plain = worker_module.evaluation_activities(
        _settings(gitlab_sandbox).model_copy(update={"promptfoo_dir": tmp_path / "no-promptfoo"}), WaitGate(), UserDirectory(),
    )
    assert plain is not None and HarnessKind.PROMPTFOO not in plain._harnesses  # noqa: SLF001
