"""``model-migration setup-promptfoo``: the pinned promptfoo CLI, installed where the promptfoo harness runs it.

promptfoo 0.118.0 is the last release that runs on Node.js 20 (later ones need Node 22). It goes
into ``Settings().resolved_promptfoo_dir()`` with npm, install scripts off (nothing is fetched
from outside the registry), then its one native module, better-sqlite3, is built for this Node.
A marker file is written only after both steps succeed, so an install cut short is redone and a
complete one is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import typer

from model_migration.clients.promptfoo_harness import SETUP_COMMAND, promptfoo_cli
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.node_setup import NODE_INSTALL, node_tools, node_version
from model_migration.settings import Settings

PROMPTFOO_VERSION = "0.118.0"
MIN_NODE = 20
#: Written into the install directory once the install and the native rebuild both succeeded.
MARKER = ".model-migration-promptfoo"


def register(app: typer.Typer) -> None:
    app.command("setup-promptfoo")(setup_promptfoo)


def setup_promptfoo() -> None:
    """Install the pinned promptfoo CLI (the promptfoo harness) with npm; does nothing when it is there."""
    settings = Settings()
    target = settings.resolved_promptfoo_dir()
    if installed_version(target) == PROMPTFOO_VERSION:
        print(f"promptfoo {PROMPTFOO_VERSION} is already installed in {target}; nothing to do")
        return
    node, npm = node_tools(f"promptfoo {PROMPTFOO_VERSION}", MIN_NODE)
    target.mkdir(parents=True, exist_ok=True)
    (target / MARKER).unlink(missing_ok=True)
    print(f"installing promptfoo {PROMPTFOO_VERSION} into {target} with npm (about 2 minutes) ...", flush=True)
    prefix = ["--prefix", str(target)]
    _npm(npm, "install", *prefix, "--ignore-scripts", "--no-audit", "--no-fund", f"promptfoo@{PROMPTFOO_VERSION}")
    _npm(npm, "rebuild", *prefix, "better-sqlite3")
    version = _package_version(target)
    if version != PROMPTFOO_VERSION:
        message = f"npm installed promptfoo {version or 'nothing'} into {target}, not {PROMPTFOO_VERSION}"
        raise DomainError(message, type=ErrorType.INVALID_INPUT)
    (target / MARKER).write_text(json.dumps({"promptfoo": PROMPTFOO_VERSION, "node": node_version(node)}) + "\n", encoding="utf-8")
    print(f"promptfoo {PROMPTFOO_VERSION} installed: {promptfoo_cli(target)}")


def installed_version(directory: Path) -> str | None:
    """The promptfoo version a finished ``setup-promptfoo`` left in ``directory``, else None."""
    try:
        marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = _package_version(directory)
    if not isinstance(marker, dict) or marker.get("promptfoo") != version or not promptfoo_cli(directory).is_file():
        return None
    return version


def check_promptfoo(settings: Settings) -> Path:
    """The install directory, if the pinned CLI and a Node to run it are there; else a one-line DomainError."""
    directory = settings.resolved_promptfoo_dir()
    version = installed_version(directory)
    if version is None:
        raise DomainError(
            f"the promptfoo harness needs promptfoo {PROMPTFOO_VERSION}, not installed in {directory}: run {SETUP_COMMAND}",
            type=ErrorType.INVALID_INPUT,
        )
    if version != PROMPTFOO_VERSION:
        raise DomainError(
            f"promptfoo {version} is installed in {directory}, this engine runs {PROMPTFOO_VERSION}: run {SETUP_COMMAND}",
            type=ErrorType.INVALID_INPUT,
        )
    if shutil.which("node") is None:
        raise DomainError(f"the promptfoo harness needs Node.js >= {MIN_NODE} on PATH: {NODE_INSTALL}", type=ErrorType.INVALID_INPUT)
    return directory


def _npm(npm: str, *args: str) -> None:
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_loglevel": "error"}
    done = subprocess.run([npm, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {done.returncode}"
        raise DomainError(f"npm {args[0]} failed: {last}", type=ErrorType.INVALID_INPUT)


def _package_version(directory: Path) -> str | None:
    try:
        package = json.loads((directory / "node_modules" / "promptfoo" / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = package.get("version") if isinstance(package, dict) else None
    return version if isinstance(version, str) else None
