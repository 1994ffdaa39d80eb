"""Debian packages the setup commands install with apt-get (as root), their services kept stopped.

The tests run their own servers on free loopback ports, so a package's own service must not run:
while apt installs, a ``policy-rc.d`` that answers 101 keeps the package's scripts from starting
it (unless the machine already has such a file, which is left alone), and afterwards the service
is stopped and disabled. Recommends are left out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model_migration.domain.errors import DomainError, ErrorType

POLICY_RC = Path("/usr/sbin/policy-rc.d")


def install_command(*packages: str) -> str:
    return f"apt-get install -y --no-install-recommends {' '.join(packages)}"


def install(*packages: str, services: tuple[str, ...] = ()) -> None:
    """Install ``packages`` (root only), then stop and disable ``services``; one line on failure."""
    command = install_command(*packages)
    if os.geteuid() != 0:
        raise DomainError(f"{', '.join(packages)} not installed; as root, run: {command}", type=ErrorType.INVALID_INPUT)
    if shutil.which("apt-get") is None:
        raise DomainError(f"{', '.join(packages)} not installed, and this machine has no apt-get: install them with its package manager",
                          type=ErrorType.INVALID_INPUT)
    print(f"installing {', '.join(packages)} with: {command} ...", flush=True)
    with _services_held():
        if _apt("install", "-y", "--no-install-recommends", *packages) != 0:
            _apt("update")  # a fresh machine's package lists may be empty or stale
            if _apt("install", "-y", "--no-install-recommends", *packages) != 0:
                raise DomainError(f"{command} failed; see apt-get's output above", type=ErrorType.INVALID_INPUT)
    for service in services:
        _stop_service(service)


@contextmanager
def _services_held() -> Iterator[None]:
    """Debian's way to keep a package's scripts from starting its service: a policy-rc.d answering 101."""
    if POLICY_RC.exists():
        yield
        return
    POLICY_RC.write_text("#!/bin/sh\n# written by model-migration while apt-get runs\nexit 101\n", encoding="utf-8")
    POLICY_RC.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC.unlink(missing_ok=True)


def _stop_service(service: str) -> None:
    """Stop the packaged service and keep it from starting at boot, whichever init system is there."""
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        _quiet("systemctl", "disable", "--now", service)
        return
    if Path("/etc/init.d", service).exists():
        _quiet("service", service, "stop")
        _quiet("update-rc.d", service, "disable")


def _apt(*args: str) -> int:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, stdin=subprocess.DEVNULL).returncode


def _quiet(*command: str) -> None:
    if shutil.which(command[0]) is None:
        return
    subprocess.run(list(command), capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
