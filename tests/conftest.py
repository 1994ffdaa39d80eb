"""Shared fixtures. One GitLab sandbox serves the whole session; tests stay apart by using
unique titles, markers and labels."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from gitlab_sandbox.gitlab import GitLabSandbox
from model_migration.catalog import load_catalog
from model_migration.clients.gitlab import GitLabClient

pytest_plugins = ["tests.temporal_fixtures", "tests.unleash_fixtures", "tests.metrics_fixtures", "tests.tls_fixtures"]

#: Test users plus every DRI and manager in the shipped catalog, so workflows can assign them.
SANDBOX_USERS = ("dri-chat", "mgr-chat", "bot", *load_catalog().usernames())


@dataclass(frozen=True)
class SandboxInfo:
    url: str
    token: str
    project_path: str
    group_path: str
    state_file: Path
    usernames: tuple[str, ...]
    guest_token: str = ""
    server: Any = None  # the GitLabSandbox: faults, rate limits, the request log




@pytest.fixture(scope="session")
def gitlab_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxInfo]:
    state_file = tmp_path_factory.mktemp("gitlab") / "gitlab.sqlite"
    token, guest = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    sandbox = GitLabSandbox(state_file, token=token, usernames=SANDBOX_USERS, guest_token=guest)
    url = sandbox.start()
    try:
        yield SandboxInfo(
            url=url,
            token=token,
            project_path=sandbox.project_path,
            group_path=sandbox.group_path,
            state_file=state_file,
            usernames=SANDBOX_USERS,
            guest_token=guest,
            server=sandbox,
        )
    finally:
        sandbox.stop()


@pytest.fixture
def gitlab_client(gitlab_sandbox: SandboxInfo) -> Iterator[GitLabClient]:
    client = GitLabClient(
        gitlab_sandbox.url,
        SecretStr(gitlab_sandbox.token),
        gitlab_sandbox.project_path,
        gitlab_sandbox.group_path,
    )
    yield client
    client.close()
