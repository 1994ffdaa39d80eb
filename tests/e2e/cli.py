"""Run the CLI and the worker as a user does: separate processes, configured by environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field

from temporalio.testing import WorkflowEnvironment


@dataclass
class Cli:
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "model_migration.cli", *args],
            env=self.env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "model_migration.cli", "worker"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        self.workers.append(proc)
        return proc

    def kill_workers(self, sig: int = signal.SIGKILL) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(sig)
                proc.wait(timeout=30)
        self.workers.clear()


def cli_env(dev_env: WorkflowEnvironment, sandbox) -> dict[str, str]:  # type: ignore[no-untyped-def]
    keep = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_MIGRATION_")}
    return {
        **keep,
        "MODEL_MIGRATION_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "MODEL_MIGRATION_TASK_QUEUE": f"e2e-{uuid.uuid4().hex[:8]}",
        "MODEL_MIGRATION_GITLAB_URL": sandbox.url,
        "MODEL_MIGRATION_GITLAB_TOKEN": sandbox.token,
        "MODEL_MIGRATION_GITLAB_PROJECT": sandbox.project_path,
        "MODEL_MIGRATION_LOG_FORMAT": "json",
        "MODEL_MIGRATION_LOG_LEVEL": "info",
        "PYTHONUNBUFFERED": "1",
    }
