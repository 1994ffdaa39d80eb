"""The Unleash admin client against a real Unleash 8 server, and the Node SDK honouring what it set.

The server (PostgreSQL and unleash-server) is started once per session by ``tests.unleash_fixtures``;
without ``model-migration setup-unleash`` or PostgreSQL these tests fail and name the install command.
Each test uses flags of its own.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from model_migration import unleash_setup
from model_migration.clients.unleash import REFUSED, ROLLOUT, UNAVAILABLE, EnvironmentState, UnleashAdmin, UnleashError
from model_migration.devserver import free_port
from model_migration.domain.errors import DomainError
from model_migration.settings import Settings
from model_migration.unleash_setup import UNLEASH_VERSION, check_unleash
from tests.cli.run import cli, env
from tests.e2e.cli import one_line_error
from tests.unleash_fixtures import UnleashServer

OFF = EnvironmentState(enabled=False)
#: The SDK with an in-memory cache, ready once it has fetched the flags; prints how many ids each flag is on for.
SDK_SCRIPT = """
const { startUnleash, InMemStorageProvider } = require('unleash-client');
(async () => {
  const env = process.env;
  const unleash = await startUnleash({
    url: `${env.UNLEASH_URL}/api/`, appName: 'model-migration-tests', customHeaders: { Authorization: env.UNLEASH_TOKEN },
    disableMetrics: true, refreshInterval: 60000, storageProvider: new InMemStorageProvider(),
  });
  const counts = {};
  for (const flag of env.FLAGS.split(',')) {
    counts[flag] = 0;
    for (let i = 0; i < Number(env.USERS); i++) if (unleash.isEnabled(flag, { userId: `user-${i}` })) counts[flag] += 1;
  }
  unleash.destroy();
  console.log(JSON.stringify(counts));
})().catch((err) => { console.error(err.message); process.exit(1); });
"""


@pytest.fixture
def admin(unleash_server: UnleashServer) -> Iterator[UnleashAdmin]:
    client = UnleashAdmin(unleash_server.url, unleash_server.admin_token)
    yield client
    client.close()


def flag_name(label: str) -> str:
    return f"duo-chat.{label}.{uuid.uuid4().hex[:8]}"


def strategies(server: UnleashServer, name: str, environment: str) -> list[dict[str, object]]:
    """The strategies as Unleash lists them, read apart from the client under test."""
    url = f"{server.url}/api/admin/projects/default/features/{name}/environments/{environment}/strategies"
    answer = requests.get(url, headers={"Authorization": server.admin_token}, timeout=10)
    answer.raise_for_status()
    return list(answer.json())


def development(admin: UnleashAdmin, name: str) -> EnvironmentState:
    return admin.state(name).environments["development"]


def test_ensure_flag_creates_it_once_and_sets_its_description(admin: UnleashAdmin) -> None:
    """A new flag is off everywhere; ensuring it again changes nothing, with another description only that."""
    name = flag_name("ensure")
    admin.ensure_flag(name, "Duo Chat on the candidate model")
    admin.ensure_flag(name, "Duo Chat on the candidate model")
    state = admin.state(name)
    assert state.description == "Duo Chat on the candidate model"
    assert state.environments == {"development": OFF, "production": OFF}
    admin.ensure_flag(name, "Duo Chat on Claude Sonnet 4.5")
    assert admin.state(name).description == "Duo Chat on Claude Sonnet 4.5"


def test_set_rollout_keeps_one_strategy_and_updates_it_in_place(admin: UnleashAdmin, unleash_server: UnleashServer) -> None:
    """Setting 25 % twice, then 50 %, leaves one flexibleRollout strategy (the same one) at the last value."""
    name = flag_name("rollout")
    admin.ensure_flag(name)
    admin.set_rollout(name, "production", 25)
    first = strategies(unleash_server, name, "production")
    admin.set_rollout(name, "production", 25)
    assert strategies(unleash_server, name, "production") == first
    assert first[0]["parameters"] == {"rollout": "25", "stickiness": "userId", "groupId": name}
    admin.set_rollout(name, "production", 50)
    after = strategies(unleash_server, name, "production")
    assert [s["id"] for s in after] == [first[0]["id"]] and after[0]["name"] == ROLLOUT
    state = admin.state(name)
    assert state.environments["production"] == EnvironmentState(enabled=False, percentage=50, stickiness="userId", strategies=1)
    assert state.environments["development"] == OFF


def test_enable_and_disable_twice_leave_the_same_state(admin: UnleashAdmin) -> None:
    """On twice is on, off twice is off, per environment, and the rollout stays as set."""
    name = flag_name("switch")
    admin.ensure_flag(name)
    admin.set_rollout(name, "production", 10)
    admin.enable(name, "production")
    admin.enable(name, "production")
    on = admin.state(name)
    assert on.environments["production"] == EnvironmentState(enabled=True, percentage=10, stickiness="userId", strategies=1)
    assert on.environments["development"] == OFF
    admin.disable(name, "production")
    admin.disable(name, "production")
    assert admin.state(name).environments["production"] == EnvironmentState(enabled=False, percentage=10, stickiness="userId", strategies=1)


def test_enable_without_a_rollout_gets_unleash_default_which_set_rollout_then_takes_over(admin: UnleashAdmin) -> None:
    """Unleash adds a 100 % rollout when an environment without strategy is switched on; set_rollout updates that one."""
    name = flag_name("default")
    admin.ensure_flag(name)
    admin.enable(name, "development")
    assert development(admin, name) == EnvironmentState(enabled=True, percentage=100, stickiness="default", strategies=1)
    admin.set_rollout(name, "development", 5)
    assert development(admin, name) == EnvironmentState(enabled=True, percentage=5, stickiness="userId", strategies=1)


def test_archive_is_idempotent_and_an_archived_flag_is_gone(admin: UnleashAdmin) -> None:
    """Archiving twice, or a flag that never was, is fine; the archived flag cannot be read or made again."""
    name = flag_name("archive")
    admin.ensure_flag(name)
    admin.archive(name)
    admin.archive(name)
    admin.archive(flag_name("never"))
    with pytest.raises(UnleashError) as gone:
        admin.state(name)
    assert gone.value.status == 404 and not gone.value.retryable and name in gone.value.message
    with pytest.raises(UnleashError) as taken:
        admin.ensure_flag(name)
    assert taken.value.status == 409 and not taken.value.retryable and "archived" in taken.value.message


def test_a_missing_flag_or_environment_is_one_refused_line(admin: UnleashAdmin) -> None:
    """Rolling out, switching or reading a flag that does not exist, or in an unknown environment, names it and is not retried."""
    missing = flag_name("missing")
    calls = (lambda: admin.set_rollout(missing, "production", 5), lambda: admin.enable(missing, "production"), lambda: admin.state(missing))
    for call in calls:
        with pytest.raises(UnleashError) as caught:
            call()
        error = caught.value
        assert error.status == 404 and error.type == REFUSED and not error.retryable, error.message
        assert missing in error.message and "\n" not in error.message
    name = flag_name("env")
    admin.ensure_flag(name)
    with pytest.raises(UnleashError, match="staging") as caught:
        admin.enable(name, "staging")
    assert caught.value.status == 404 and not caught.value.retryable


def test_a_percentage_out_of_range_is_refused_before_any_call(admin: UnleashAdmin) -> None:
    """101, -1, 12.5 and True are not percentages; nothing is sent."""
    for wrong in (101, -1, 12.5, True):
        with pytest.raises(UnleashError, match="0 to 100") as caught:
            admin.set_rollout("no-such-flag", "production", wrong)  # type: ignore[arg-type]
        assert not caught.value.retryable and caught.value.status is None


def test_a_wrong_token_is_refused_and_never_retried(unleash_server: UnleashServer) -> None:
    """401 for an unknown token, 403 for a backend token on the admin API; neither retried, neither token shown."""
    for token, status in (("*:*.not-a-real-token", 401), (unleash_server.backend_tokens["production"], 403)):
        client = UnleashAdmin(unleash_server.url, token)
        with pytest.raises(UnleashError) as caught:
            client.ensure_flag(flag_name("token"))
        error = caught.value
        assert error.status == status and error.type == REFUSED and not error.retryable, error.message
        assert token not in error.message and "\n" not in error.message


def test_no_server_is_retried() -> None:
    """Nothing listening is a retryable error naming the URL."""
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UnleashError) as caught:
        UnleashAdmin(url, "*:*.secret").state("anything")
    assert caught.value.retryable and caught.value.type == UNAVAILABLE and url in caught.value.message


def test_a_server_error_is_retried_after_its_retry_after() -> None:
    """A 503 with Retry-After (a proxy in front of Unleash, say) is retryable with that delay."""

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = json.dumps({"message": "down for maintenance"}).encode()
            self.send_response(503)
            self.send_header("Retry-After", "7")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with pytest.raises(UnleashError) as caught:
            UnleashAdmin(f"http://127.0.0.1:{server.server_address[1]}", "*:*.secret").state("anything")
    finally:
        server.shutdown()
        server.server_close()
    error = caught.value
    assert error.retryable and error.status == 503 and error.retry_after == 7.0 and "down for maintenance" in error.message


def test_the_node_sdk_honours_the_percentage(admin: UnleashAdmin, unleash_server: UnleashServer) -> None:
    """The real unleash-client, over 1,000 user ids: 0 % is none, 100 % all, 25 % about a quarter."""
    sdk = unleash_server.install.sdk
    assert sdk.is_dir(), f"unleash-client is not in {sdk}: run model-migration setup-unleash"
    flags = {percentage: flag_name(f"sdk{percentage}") for percentage in (0, 25, 100)}
    for percentage, name in flags.items():
        admin.ensure_flag(name)
        admin.set_rollout(name, "production", percentage)
        admin.enable(name, "production")
    environ = {
        **env(), "UNLEASH_URL": unleash_server.url, "UNLEASH_TOKEN": unleash_server.backend_tokens["production"],
        "FLAGS": ",".join(flags.values()), "USERS": "1000",
    }  # fmt: skip
    done = subprocess.run(
        [unleash_server.install.node, "-e", SDK_SCRIPT], cwd=unleash_server.install.directory, env=environ,
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts[flags[0]] == 0 and counts[flags[100]] == 1000, counts
    assert 150 <= counts[flags[25]] <= 350, counts


def test_setup_unleash_twice_does_nothing_the_second_time(unleash_server: UnleashServer) -> None:
    """With the pinned version installed, ``setup-unleash`` says so and installs nothing."""
    state_dir = unleash_server.install.directory.parent
    done = cli("setup-unleash", environ=env(MODEL_MIGRATION_STATE_DIR=str(state_dir)))
    assert done.returncode == 0, done.stderr
    assert f"unleash-server {UNLEASH_VERSION} is already installed" in done.stdout and "nothing to do" in done.stdout


def test_setup_unleash_without_node_is_one_line_naming_the_install(tmp_path: Path) -> None:
    """``setup-unleash`` with no node on PATH exits 2 with one line naming the apt-get command; nothing is made."""
    empty = tmp_path / "bin"
    empty.mkdir()
    done = cli("setup-unleash", environ=env(PATH=str(empty), MODEL_MIGRATION_STATE_DIR=str(tmp_path / "state")))
    line = one_line_error(done)
    assert "apt-get install -y nodejs npm" in line and "unleash-server" in line, line
    assert not (tmp_path / "state").exists()


def test_check_unleash_names_the_setup_command(tmp_path: Path) -> None:
    """An empty state directory is one DomainError line naming setup-unleash."""
    with pytest.raises(DomainError) as missing:
        check_unleash(Settings(state_dir=tmp_path))
    assert "model-migration setup-unleash" in missing.value.message and "\n" not in missing.value.message


def test_setup_unleash_installs_postgresql_when_it_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fresh machine: PostgreSQL comes from Debian with apt-get, its cluster service kept stopped."""
    found = iter([None, tmp_path])
    installed: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    def postgres_bin() -> Path:
        where = next(found)
        if where is None:
            raise DomainError("PostgreSQL's initdb and postgres were not found")
        return where

    monkeypatch.setattr(unleash_setup, "postgres_bin", postgres_bin)
    monkeypatch.setattr(unleash_setup, "install", lambda *packages, services=(): installed.append((packages, services)))
    monkeypatch.setattr(unleash_setup, "installed_version", lambda directory: UNLEASH_VERSION)
    monkeypatch.setenv("MODEL_MIGRATION_STATE_DIR", str(tmp_path))
    unleash_setup.setup_unleash()
    assert installed == [(("postgresql",), ("postgresql",))]
