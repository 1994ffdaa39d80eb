"""A second GitLab sandbox whose project runs configured jobs, and a webhook receiver.

The shared sandbox keeps the default ``echo_variables`` job, so other tests' pipelines are
unaffected. Job configuration is a sandbox feature: on a real GitLab these fixtures skip.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import gitlab
import pytest

from gitlab_sandbox.gitlab import GitLabSandbox
from gitlab_sandbox.pipelines import JobSpec
from tests.contract.conftest import Target

SANDBOX_ONLY = "job configuration (JobSpec) and loopback webhooks exist only in the sandbox"
CI_PROJECT = "ci-contract/jobs"

#: The command job: records its environment and checkout, sleeps ``SLEEP`` seconds, then
#: exits with ``EXIT_CODE``.
_EVALUATE = """
import json, os, sys, time
env = {k: v for k, v in os.environ.items() if k.startswith("CI") or k.startswith("EVAL_")}
with open("results.json", "w") as out:
    json.dump({"env": env, "checkout": sorted(os.listdir("."))}, out)
print("evaluated", env.get("EVAL_MODEL"))
time.sleep(float(os.environ.get("SLEEP", "0")))
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
"""


def _prepare(variables: dict[str, str]) -> dict[str, bytes]:
    return {"prepared.txt": f"dataset={variables.get('EVAL_DATASET', '')}".encode()}


CI_JOBS = {
    CI_PROJECT: [
        JobSpec("prepare", handler=_prepare, stage="build"),
        JobSpec("evaluate", command=[sys.executable, "-c", _EVALUATE], artifacts=["results.json"]),
        JobSpec("report", handler=lambda variables: {}, stage="report"),
    ]
}


@pytest.fixture(scope="session")
def ci_target(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A sandbox whose ``CI_PROJECT`` runs prepare → evaluate (a command) → report."""
    if target.name != "sandbox":
        pytest.skip(SANDBOX_ONLY)
    token = secrets.token_urlsafe(16)
    state = tmp_path_factory.mktemp("gitlab-ci") / "gitlab.sqlite"
    sandbox = GitLabSandbox(state, token=token, project_path=CI_PROJECT, jobs=CI_JOBS)
    url = sandbox.start()
    gl = gitlab.Gitlab(url, private_token=token, retry_transient_errors=False)
    try:
        yield Target("sandbox", gl, gl.projects.get(CI_PROJECT), gl.groups.get("ci-contract"))
    finally:
        sandbox.stop()


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"nothing after {timeout}s")


def wait_finished(pipeline: Any) -> Any:
    """Refresh a python-gitlab pipeline until it has finished (at most 20 s)."""

    def finished() -> bool:
        pipeline.refresh()
        return pipeline.status in ("success", "failed", "canceled", "skipped")

    wait_for(finished)
    return pipeline


class Receiver:
    """A webhook receiver on 127.0.0.1 recording (X-Gitlab-Event, payload) pairs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                calls.append((self.headers["X-Gitlab-Event"], json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [
            payload for event, payload in list(self.calls) if payload.get("object_kind") == kind
        ]


@pytest.fixture
def receiver(ci_target: Target) -> Iterator[Receiver]:
    found = Receiver()
    threading.Thread(target=found.server.serve_forever, daemon=True).start()
    yield found
    found.server.shutdown()
    found.server.server_close()
