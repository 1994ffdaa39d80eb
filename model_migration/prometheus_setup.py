"""``model-migration setup-prometheus``: Debian's Prometheus (2.42), the metrics backend the rollout analysis queries.

The tests run their own Prometheus on a free loopback port, so the packaged service is installed
stopped (``apt.py``). Recommends are left out: they would bring ``prometheus-node-exporter``,
another service on a fixed port.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import typer

from model_migration.apt import install, install_command
from model_migration.domain.errors import DomainError, ErrorType

PACKAGE = "prometheus"
INSTALL = install_command(PACKAGE)
SETUP_COMMAND = "model-migration setup-prometheus"
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
    install(PACKAGE, services=(PACKAGE,))
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
