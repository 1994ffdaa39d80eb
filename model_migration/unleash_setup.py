"""``model-migration setup-unleash``: the pinned Unleash server, installed where the tests start it.

unleash-server 8.2.0 goes into ``<state_dir>/unleash`` with npm, install scripts off (its own only
sets up git hooks; a dependency's would report the install to a third party). Its package says
Node.js >= 22, but it starts and serves its admin and client APIs on Node.js 20, the Debian
one here, so npm's engine warning is expected. The install brings the Node SDK, ``unleash-client``,
along as a dependency. Unleash keeps its data in PostgreSQL: Debian's ``postgresql`` package
(installed with apt-get when it is missing, as root) provides the ``initdb`` and ``postgres``
binaries that the tests run on a throwaway cluster. A marker
file is written only after npm finished, so an install cut short is redone and a complete one is
left alone.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import typer

from model_migration.apt import install, install_command
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.node_setup import NODE_INSTALL, node_tools, node_version
from model_migration.promptfoo_setup import _npm
from model_migration.settings import Settings

UNLEASH_VERSION = "8.2.0"
SETUP_COMMAND = "model-migration setup-unleash"
POSTGRES_PACKAGE = "postgresql"
POSTGRES_INSTALL = install_command(POSTGRES_PACKAGE)
#: The binaries a throwaway cluster needs: ``initdb`` makes it, ``postgres`` serves it, ``createdb`` adds Unleash's database.
POSTGRES_TOOLS = ("initdb", "postgres", "createdb")
#: Where Debian puts each PostgreSQL major's binaries (on PATH only ``createdb``, as a wrapper script).
DEBIAN_POSTGRES = Path("/usr/lib/postgresql")
#: Written into the install directory once npm succeeded.
MARKER = ".model-migration-unleash"


@dataclass(frozen=True)
class UnleashInstall:
    """What a local Unleash needs: the npm install directory, node, and PostgreSQL's binaries."""

    directory: Path
    node: str
    postgres_bin: Path

    @property
    def sdk(self) -> Path:
        """The Node SDK that came with the server."""
        return self.directory / "node_modules" / "unleash-client"


def register(app: typer.Typer) -> None:
    app.command("setup-unleash")(setup_unleash)


def unleash_dir(settings: Settings) -> Path:
    return settings.state_dir / "unleash"


def setup_unleash() -> None:
    """Install the pinned Unleash server with npm, and PostgreSQL with apt-get when it is missing (as
    root); does nothing when both are there."""
    settings = Settings()
    target = unleash_dir(settings)
    try:
        postgres = postgres_bin()
    except DomainError:  # a fresh machine: Debian's PostgreSQL, its cluster service kept stopped
        install(POSTGRES_PACKAGE, services=(POSTGRES_PACKAGE,))
        postgres = postgres_bin()
    if installed_version(target) == UNLEASH_VERSION:
        print(f"unleash-server {UNLEASH_VERSION} is already installed in {target}, PostgreSQL in {postgres}; nothing to do")
        return
    node, npm = node_tools(f"unleash-server {UNLEASH_VERSION}")
    target.mkdir(parents=True, exist_ok=True)
    (target / MARKER).unlink(missing_ok=True)
    print(f"installing unleash-server {UNLEASH_VERSION} into {target} with npm (about a minute) ...", flush=True)
    _npm(npm, "install", "--prefix", str(target), "--ignore-scripts", "--no-audit", "--no-fund", f"unleash-server@{UNLEASH_VERSION}")
    version = _package_version(target, "unleash-server")
    if version != UNLEASH_VERSION:
        raise DomainError(f"npm installed unleash-server {version or 'nothing'} into {target}, not {UNLEASH_VERSION}",
                          type=ErrorType.INVALID_INPUT)
    marker = {"unleash-server": UNLEASH_VERSION, "unleash-client": _package_version(target, "unleash-client"), "node": node_version(node)}
    (target / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
    print(f"unleash-server {UNLEASH_VERSION} installed in {target}; PostgreSQL in {postgres}")


def installed_version(directory: Path) -> str | None:
    """The unleash-server version a finished ``setup-unleash`` left in ``directory``, else None."""
    try:
        marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = _package_version(directory, "unleash-server")
    return version if isinstance(marker, dict) and marker.get("unleash-server") == version else None


def check_unleash(settings: Settings) -> UnleashInstall:
    """Everything a local Unleash needs, or a one-line DomainError naming the command that installs what is missing."""
    directory = unleash_dir(settings).absolute()
    version = installed_version(directory)
    if version != UNLEASH_VERSION:
        found = f"unleash-server {version} is installed" if version else "nothing is installed"
        raise DomainError(f"a local Unleash needs unleash-server {UNLEASH_VERSION}, {found} in {directory}: run {SETUP_COMMAND}",
                          type=ErrorType.INVALID_INPUT)
    node = shutil.which("node")
    if node is None:
        raise DomainError(f"a local Unleash needs Node.js on PATH: {NODE_INSTALL}", type=ErrorType.INVALID_INPUT)
    return UnleashInstall(directory, node, postgres_bin())


def postgres_bin() -> Path:
    """The directory with PostgreSQL's server binaries: where ``postgres`` on PATH really lives, else Debian's newest major."""
    found = shutil.which("postgres")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted((p for p in DEBIAN_POSTGRES.glob("*/bin") if p.parent.name.isdigit()), key=lambda p: -int(p.parent.name))
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in POSTGRES_TOOLS):
            return candidate
    raise DomainError(f"PostgreSQL's initdb and postgres were not found (Unleash keeps its data there): {POSTGRES_INSTALL}",
                      type=ErrorType.INVALID_INPUT)


def _package_version(directory: Path, package: str) -> str | None:
    try:
        manifest = json.loads((directory / "node_modules" / package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = manifest.get("version") if isinstance(manifest, dict) else None
    return version if isinstance(version, str) else None
