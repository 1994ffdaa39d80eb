"""Contract tests: written against python-gitlab only, run against the sandbox or a real GitLab.

Set GITLAB_URL, GITLAB_TOKEN, GITLAB_TEST_PROJECT and GITLAB_TEST_GROUP to run them against a
real GitLab (an admin token is needed for the instance Features API tests). Without them the
real-GitLab run is skipped and says why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gitlab
import pytest

REAL_VARS = ("GITLAB_URL", "GITLAB_TOKEN", "GITLAB_TEST_PROJECT", "GITLAB_TEST_GROUP")


@dataclass
class Target:
    """One GitLab to test against: the python-gitlab client, the project and the group."""

    name: str
    gl: gitlab.Gitlab
    project: Any
    group: Any
    sandbox: Any = None  # the sandbox info, when the target is the sandbox


def _connect(url: str, token: str) -> gitlab.Gitlab:
    return gitlab.Gitlab(url, private_token=token, retry_transient_errors=False)


@pytest.fixture(scope="session", params=["sandbox", "real"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "real":
        missing = [name for name in REAL_VARS if not os.environ.get(name)]
        if missing:
            pytest.skip(f"real GitLab contract run skipped: set {', '.join(missing)}")
        gl = _connect(os.environ["GITLAB_URL"], os.environ["GITLAB_TOKEN"])
        yield Target("real", gl, gl.projects.get(os.environ["GITLAB_TEST_PROJECT"]), gl.groups.get(os.environ["GITLAB_TEST_GROUP"]))
        return
    sandbox = request.getfixturevalue("gitlab_sandbox")
    gl = _connect(sandbox.url, sandbox.token)
    yield Target("sandbox", gl, gl.projects.get(sandbox.project_path), gl.groups.get(sandbox.group_path), sandbox)
