"""A real Unleash server for the session: a throwaway PostgreSQL cluster and unleash-server on free loopback ports.

PostgreSQL refuses to run as root, so when the tests are root its processes run as the ``postgres``
user that Debian's package creates (else ``nobody``), in a directory of their own under the system
temp dir (pytest's own is private to root). Unleash starts with one admin token and a backend token
per environment, telemetry and the version check off. A missing part fails the test with the command
that installs it; nothing is skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from model_migration.devserver import free_port
from model_migration.domain.errors import DomainError
from model_migration.settings import Settings
from model_migration.unleash_setup import UnleashInstall, check_unleash

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ("development", "production")  # Unleash's own; the open-source edition cannot add more
DATABASE = "unleash"
#: Seconds to wait for PostgreSQL and then Unleash (about 1 s and 3 s here on a new cluster).
START_TIMEOUT = 60.0
#: The processes started so far, each with the signal that stops it.
Running = list[tuple[subprocess.Popen[bytes], signal.Signals]]
#: unleash-server's start with options; bare specifiers resolve from the working directory, the install.
START_SCRIPT = """
import { start } from 'unleash-server';
const env = process.env;
await start({
  db: { host: '127.0.0.1', port: Number(env.UNLEASH_TEST_DB_PORT), user: env.UNLEASH_TEST_DB_USER, password: '',
        database: env.UNLEASH_TEST_DB_NAME, ssl: false },
  server: { host: '127.0.0.1', port: Number(env.UNLEASH_TEST_PORT) },
  authentication: { type: 'open-source', createAdminUser: false, enableApiToken: true },
  versionCheck: { enable: false },
});
"""


@dataclass(frozen=True)
class UnleashServer:
    """A running Unleash: its URL, an admin token (``*:*.<secret>``) and a backend token per environment."""

    url: str
    admin_token: str
    backend_tokens: dict[str, str]
    install: UnleashInstall
    startup_seconds: float = 0.0
    logs: tuple[Path, ...] = field(default=())


@pytest.fixture(scope="session")
def unleash_install() -> UnleashInstall:
    """The installed server and PostgreSQL; their absence fails the test, naming the install command."""
    settings = Settings()
    if not settings.state_dir.is_absolute():
        settings = Settings(state_dir=ROOT / settings.state_dir)
    try:
        return check_unleash(settings)
    except DomainError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def unleash_server(unleash_install: UnleashInstall) -> Iterator[UnleashServer]:
    """PostgreSQL and Unleash, started once for the session and stopped by process id at its end."""
    owner = _postgres_user()
    work = Path(tempfile.mkdtemp(prefix="model-migration-unleash-"))
    processes: Running = []
    try:
        started = time.monotonic()
        if owner is not None:
            os.chown(work, owner.pw_uid, owner.pw_gid)
        db_port = _start_postgres(unleash_install.postgres_bin, work, owner, processes)
        admin = "*:*.model-migration-tests-admin"
        backend = {env: f"*:{env}.model-migration-tests-backend" for env in ENVIRONMENTS}
        port = free_port()
        environ = {
            **os.environ, "UNLEASH_TEST_DB_PORT": str(db_port), "UNLEASH_TEST_DB_USER": DATABASE, "UNLEASH_TEST_DB_NAME": DATABASE,
            "UNLEASH_TEST_PORT": str(port), "INIT_ADMIN_API_TOKENS": admin, "INIT_BACKEND_API_TOKENS": ",".join(backend.values()),
            "SEND_TELEMETRY": "false", "CHECK_VERSION": "false", "LOG_LEVEL": "warn", "TZ": "UTC",
        }  # fmt: skip
        log = work / "unleash.log"
        with log.open("wb") as out:
            unleash = subprocess.Popen(
                [unleash_install.node, "--input-type=module", "-e", START_SCRIPT], cwd=unleash_install.directory, env=environ,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        processes.append((unleash, signal.SIGTERM))
        url = f"http://127.0.0.1:{port}"
        _wait_for_health(url, unleash, log)
        yield UnleashServer(url, admin, backend, unleash_install, time.monotonic() - started, (work / "postgres.log", log))
    finally:
        for process, stop in reversed(processes):
            _stop(process, stop)
        shutil.rmtree(work, ignore_errors=True)


def _postgres_user() -> pwd.struct_passwd | None:
    """Whom PostgreSQL runs as: None (the caller) unless that is root, which initdb and postgres refuse."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail("PostgreSQL refuses to run as root and there is no postgres or nobody user to run it as", pytrace=False)


def _as(owner: pwd.struct_passwd | None) -> dict[str, Any]:
    return {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}


def _start_postgres(bin_dir: Path, work: Path, owner: pwd.struct_passwd | None, processes: Running) -> int:
    """A new cluster in ``work`` with a trusted ``unleash`` superuser and database; returns its port."""
    data = work / "data"
    init = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", DATABASE, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, cwd=work, **_as(owner),
    )
    if init.returncode != 0:
        pytest.fail(f"initdb failed: {(init.stderr or init.stdout).strip()}", pytrace=False)
    port = free_port()
    log = work / "postgres.log"
    with log.open("wb") as out:
        postgres = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(data), "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            cwd=work, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **_as(owner),
        )  # fmt: skip
    processes.append((postgres, signal.SIGINT))
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        made = subprocess.run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", DATABASE, DATABASE],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30,
        )
        if made.returncode == 0:
            return port
        if postgres.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"PostgreSQL did not start: {_tail(log) or made.stderr.strip()}", pytrace=False)
        time.sleep(0.1)


def _wait_for_health(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None:
            pytest.fail(f"unleash-server exited with {process.returncode}: {_tail(log)}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"unleash-server did not answer {url}/health within {START_TIMEOUT:g}s: {_tail(log)}", pytrace=False)
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes], stop: signal.Signals) -> None:
    """``stop`` (SIGTERM: Unleash's graceful shutdown; SIGINT: PostgreSQL's fast one), then SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    process.send_signal(stop)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())
