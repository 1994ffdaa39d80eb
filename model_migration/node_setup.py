"""Node.js and npm for the setup commands: found on PATH, else installed with apt-get (as root).

NodeSource's ``nodejs`` package carries npm and Debian's does not, so ``nodejs`` goes first and
``npm`` only if it is still missing. Debian 12's own Node.js is 18; where only that is on offer,
a tool that needs 20 says how to get it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from model_migration.apt import install
from model_migration.domain.errors import DomainError, ErrorType

NODE_INSTALL = "apt-get install -y nodejs npm"
NODESOURCE = "https://deb.nodesource.com"


def node_tools(needed_by: str, minimum: int | None = None) -> tuple[str, str]:
    """The paths of node and npm, installing what is missing (as root, where apt-get is); one line
    when that cannot be done or the node found is older than ``minimum`` (a major version)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            at_least = f" >= {minimum}" if minimum is not None else ""
            raise DomainError(
                f"{_missing(node, npm)} not found: {needed_by} needs Node.js{at_least} and npm; as root, run: {NODE_INSTALL}",
                type=ErrorType.INVALID_INPUT,
            )
        if node is None:
            install("nodejs")
        if shutil.which("npm") is None:
            install("npm")
        node, npm = shutil.which("node"), shutil.which("npm")
        if node is None or npm is None:
            message = f"{_missing(node, npm)} still not found after apt-get: {needed_by} needs Node.js and npm on PATH"
            raise DomainError(message, type=ErrorType.INVALID_INPUT)
    if minimum is not None:
        version = node_version(node)
        major = re.match(r"v?(\d+)", version)
        if major is None or int(major.group(1)) < minimum:
            raise DomainError(
                f"node {version or '(no version)'} is too old: {needed_by} needs Node.js >= {minimum}; "
                f"add NodeSource's Node.js {minimum} packages ({NODESOURCE}), then run: apt-get install -y nodejs",
                type=ErrorType.INVALID_INPUT,
            )
    return node, npm


def _missing(node: str | None, npm: str | None) -> str:
    return " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)


def node_version(node: str) -> str:
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()
