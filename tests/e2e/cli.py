"""Run the CLI and the worker as a user does: separate processes, configured by environment."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from temporalio.testing import WorkflowEnvironment

from model_migration.catalog import default_catalog_dir

#: A shipped model whose features are not on it, copied under new versions so that every test
#: gets migration ids of its own on the session's dev server.
TEMPLATE_MODEL = "claude_sonnet_4_5_20250929"


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


def catalog_with_models(directory: Path, *tags: str) -> tuple[Path, list[str]]:
    """The shipped catalog plus one fresh model per tag; returns the directory and the models'
    identifiers, whose migration ids no other test uses."""
    shipped = default_catalog_dir()
    models = yaml.safe_load((shipped / "models.yml").read_text())
    template = next(m for m in models if m["gitlab_identifier"] == TEMPLATE_MODEL)
    names = []
    for tag in tags:
        version = f"t{uuid.uuid4().hex[:8]}{tag}"
        names.append(f"{TEMPLATE_MODEL}_{version}")
        models.append({**template, "gitlab_identifier": names[-1], "version": version, "name": f"Test model {version}"})
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "models.yml").write_text(yaml.safe_dump(models, sort_keys=False))
    (directory / "features.yml").write_text((shipped / "features.yml").read_text())
    return directory, names


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def wait_status(cli: Cli, wid: str, ready, timeout: float = 60) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while True:
        done = cli("status", wid, "--json", check=False)
        if done.returncode == 0:
            st = json.loads(done.stdout)
            if ready(st):
                return st
        if time.monotonic() > end:
            raise AssertionError(f"{wid} never got ready: {done.stdout or done.stderr}")
        time.sleep(0.5)


class Proxy:
    """A TCP forwarder on a free loopback port; ``close`` makes its address unreachable, as a
    GitLab that goes away after the worker has checked it."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return  # closed
            far = socket.create_connection(self.target)
            self.open += [near, far]
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            return  # the other side or close() ended it
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        # Closing alone leaves a socket that a thread blocks in accept() on still listening.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self.open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
