"""``model-migration setup-prometheus``: Debian's Prometheus (2.42), the metrics backend the rollout analysis queries.

The tests run their own Prometheus on a free loopback port, so the packaged service must not run:
while apt installs, a ``policy-rc.d`` that answers 101 keeps the package's scripts from starting
it (unless the machine already has such a file, which is left alone), and afterwards the service
is stopped and disabled. Recommends are left out: they would bring ``prometheus-node-exporter``,
another service on a fixed port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from model_migration.domain.errors import DomainError, ErrorType

PACKAGE = "prometheus"
INSTALL = f"apt-get install -y --no-install-recommends {PACKAGE}"
SETUP_COMMAND = "model-migration setup-prometheus"
POLICY_RC = Path("/usr/sbin/policy-rc.d")
#: Where Debian puts the binary, for a PATH without /usr/bin.
DEBIAN_BINARY = Path("/usr/bin/prometheus")


def register(app: typer.Typer) -> None:
    app.command("setup-prometheus")(setup_prometheus)


def setup_prometheus() -> None:
    """Install Prometheus with apt-get (root only), its service stopped; does nothing when it is there."""
    found = find_prometheus()
    if found is not None:
        print(f"prometheus is already installed: {found}; nothing to do")
        return
    if os.geteuid() != 0:
        raise DomainError(f"prometheus is not installed; as root, run: {INSTALL}", type=ErrorType.INVALID_INPUT)
    print(f"installing prometheus with: {INSTALL} ...", flush=True)
    with _services_held():
        if _apt("install", "-y", "--no-install-recommends", PACKAGE) != 0:
            _apt("update")  # a fresh machine's package lists may be empty or stale
            if _apt("install", "-y", "--no-install-recommends", PACKAGE) != 0:
                raise DomainError(f"{INSTALL} failed; see apt-get's output above", type=ErrorType.INVALID_INPUT)
    _stop_service()
    print(f"prometheus installed: {check_prometheus()} (its system service stopped and disabled)")


def find_prometheus() -> Path | None:
    """The prometheus binary on PATH (or Debian's), else None."""
    on_path = shutil.which("prometheus")
    if on_path is not None:
        return Path(on_path)
    return DEBIAN_BINARY if DEBIAN_BINARY.is_file() and os.access(DEBIAN_BINARY, os.X_OK) else None


def check_prometheus() -> Path:
    """The prometheus binary, or a one-line DomainError naming the install command."""
    found = find_prometheus()
    if found is None:
        raise DomainError(
            f"prometheus is not installed (Debian's prometheus 2.42): run {SETUP_COMMAND}, or as root: {INSTALL}",
            type=ErrorType.INVALID_INPUT,
        )
    return found


@contextmanager
def _services_held() -> Iterator[None]:
    """Debian's way to keep a package's scripts from starting its service: a policy-rc.d answering 101."""
    if POLICY_RC.exists():
        yield
        return
    POLICY_RC.write_text("#!/bin/sh\n# written by model-migration setup-prometheus while apt-get runs\nexit 101\n", encoding="utf-8")
    POLICY_RC.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC.unlink(missing_ok=True)


def _stop_service() -> None:
    """Stop the packaged service and keep it from starting at boot, whichever init system is there."""
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        _quiet("systemctl", "disable", "--now", PACKAGE)
        return
    if Path("/etc/init.d", PACKAGE).exists():
        _quiet("service", PACKAGE, "stop")
        _quiet("update-rc.d", PACKAGE, "disable")


def _apt(*args: str) -> int:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, stdin=subprocess.DEVNULL).returncode


def _quiet(*command: str) -> None:
    if shutil.which(command[0]) is None:
        return
    subprocess.run(list(command), capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
