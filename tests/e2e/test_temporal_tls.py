"""Secured connections to Temporal through nginx terminating TLS in front of the dev server
(``tests/tls_fixtures.py``): TLS, mutual TLS and an API key; every refusal and every bad setting is one line."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from model_migration.domain.errors import DomainError
from model_migration.settings import Settings
from model_migration.temporal import connect
from tests.e2e.cli import Cli, cli_env, one_line_error
from tests.tls_fixtures import SERVER_NAME, Pki, TlsProxy, make_pki


def settings(address: str, **values: object) -> Settings:
    return Settings(temporal_address=address, **values)  # type: ignore[arg-type]


async def refused(s: Settings, wait: float = 0.0) -> str:
    with pytest.raises(DomainError) as caught:
        await connect(s, wait=wait)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


async def round_trip(client: Client, dev_env: WorkflowEnvironment) -> None:
    """A workflow started through the proxy is on the dev server; the proxied client sees and ends it."""
    wid = f"tls-probe-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow("TlsProbe", id=wid, task_queue=f"tls-{wid}")
    assert (await dev_env.client.get_workflow_handle(wid).describe()).status == WorkflowExecutionStatus.RUNNING
    await handle.terminate("probe done")
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED


async def test_tls_with_the_right_ca_connects_and_answers(tls_proxy: TlsProxy, dev_env: WorkflowEnvironment) -> None:
    """The CA as a file, then as a PEM value with the certificate's DNS name: real calls go through."""
    await round_trip(await connect(settings(tls_proxy.tls, temporal_tls_ca_file=tls_proxy.pki.ca)), dev_env)
    by_name = await connect(settings(tls_proxy.tls, temporal_tls_ca=SecretStr(tls_proxy.pki.ca.read_text()),
                                     temporal_tls_server_name=SERVER_NAME))
    await round_trip(by_name, dev_env)


async def test_a_wrong_ca_is_refused_at_once_naming_the_setting(tls_proxy: TlsProxy) -> None:
    """Not a wait for an unreachable server: the untrusted certificate, and the setting to fix."""
    start = time.monotonic()
    message = await refused(settings(tls_proxy.tls, temporal_tls_ca_file=tls_proxy.pki.wrong_ca), wait=20)
    assert time.monotonic() - start < 5
    assert message == (f"the certificate of Temporal at {tls_proxy.tls} is not trusted (UnknownIssuer): set "
                       "MODEL_MIGRATION_TEMPORAL_TLS_CA_FILE (or MODEL_MIGRATION_TEMPORAL_TLS_CA) to the CA that signed it")
    name = await refused(settings(tls_proxy.tls, temporal_tls_ca_file=tls_proxy.pki.ca, temporal_tls_server_name="other.test"))
    assert "not valid for the name" in name and "MODEL_MIGRATION_TEMPORAL_TLS_SERVER_NAME" in name


async def test_tls_and_plain_grpc_mixed_up_are_named(tls_proxy: TlsProxy, dev_env: WorkflowEnvironment) -> None:
    """Plain gRPC to the TLS port, and TLS to the plain dev server, each say which way round it is."""
    plain = await refused(settings(tls_proxy.tls), wait=20)
    assert "did not answer plain gRPC" in plain and "MODEL_MIGRATION_TEMPORAL_TLS=true" in plain
    target = dev_env.client.service_client.config.target_host
    tls = await refused(settings(target, temporal_tls_ca_file=tls_proxy.pki.ca), wait=20)
    assert tls.startswith(f"Temporal at {target} does not answer TLS")


async def test_mtls_needs_the_client_certificate(tls_proxy: TlsProxy, dev_env: WorkflowEnvironment) -> None:
    """None is refused, one from another CA is refused, the right one connects."""
    pki = tls_proxy.pki
    none = await refused(settings(tls_proxy.mtls, temporal_tls_ca_file=pki.ca), wait=20)
    assert none == (f"Temporal at {tls_proxy.mtls} requires a client certificate (mutual TLS) (client certificate required): "
                    "set MODEL_MIGRATION_TEMPORAL_TLS_CERT_FILE and MODEL_MIGRATION_TEMPORAL_TLS_KEY_FILE")
    stranger = await refused(settings(tls_proxy.mtls, temporal_tls_ca_file=pki.ca, temporal_tls_cert_file=pki.stranger_cert,
                                      temporal_tls_key_file=pki.stranger_key))
    assert "refused the client certificate in MODEL_MIGRATION_TEMPORAL_TLS_CERT_FILE" in stranger
    client = await connect(settings(tls_proxy.mtls, temporal_tls_ca_file=pki.ca, temporal_tls_cert_file=pki.client_cert,
                                    temporal_tls_key_file=pki.client_key))
    await round_trip(client, dev_env)
    # The same pair as PEM values, as a Kubernetes Secret gives them in the environment.
    values = await connect(settings(tls_proxy.mtls, temporal_tls_ca_file=pki.ca, temporal_tls_cert=SecretStr(pki.client_cert.read_text()),
                                    temporal_tls_key=SecretStr(pki.client_key.read_text())))
    await round_trip(values, dev_env)


async def test_the_api_key_is_sent_and_a_wrong_one_is_named(tls_proxy: TlsProxy, dev_env: WorkflowEnvironment) -> None:
    """The proxy passes only ``authorization: Bearer <key>``: connecting proves the engine sends it."""
    ca = tls_proxy.pki.ca
    missing = await refused(settings(tls_proxy.api_key_address, temporal_tls_ca_file=ca), wait=20)
    assert missing.startswith(f"Temporal at {tls_proxy.api_key_address} requires credentials (Request unauthorized): "
                              "set MODEL_MIGRATION_TEMPORAL_API_KEY")
    wrong = await refused(settings(tls_proxy.api_key_address, temporal_tls_ca_file=ca, temporal_api_key=SecretStr("not-the-key")))
    assert wrong.startswith(f"Temporal at {tls_proxy.api_key_address} refused the API key in MODEL_MIGRATION_TEMPORAL_API_KEY")
    assert "not-the-key" not in wrong
    await round_trip(await connect(settings(tls_proxy.api_key_address, temporal_tls_ca_file=ca,
                                            temporal_api_key=SecretStr(tls_proxy.api_key))), dev_env)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _encrypted_key(pki: Pki, path: Path) -> Path:
    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), password=None)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"secret")))
    return path


BAD_SETTINGS = [
    ("missing_ca", "MODEL_MIGRATION_TEMPORAL_TLS_CA_FILE: no file at {tmp}/nope.pem"),
    ("missing_key", "MODEL_MIGRATION_TEMPORAL_TLS_KEY_FILE: no file at {tmp}/nope.key"),
    ("ca_not_pem", "MODEL_MIGRATION_TEMPORAL_TLS_CA_FILE ({tmp}/junk.pem) is not a PEM CA certificate (-----BEGIN CERTIFICATE-----)"),
    ("cert_value_not_pem", "MODEL_MIGRATION_TEMPORAL_TLS_CERT is not a PEM client certificate (-----BEGIN CERTIFICATE-----)"),
    ("key_not_pem", "MODEL_MIGRATION_TEMPORAL_TLS_KEY_FILE ({pki}/client.pem) is not a PEM private key (-----BEGIN PRIVATE KEY-----)"),
    ("cert_without_key", "MODEL_MIGRATION_TEMPORAL_TLS_CERT_FILE ({pki}/client.pem) is set but no private key: "
                         "set MODEL_MIGRATION_TEMPORAL_TLS_KEY_FILE (or MODEL_MIGRATION_TEMPORAL_TLS_KEY) for mutual TLS"),
    ("key_without_cert", "MODEL_MIGRATION_TEMPORAL_TLS_KEY is set but no client certificate: "
                         "set MODEL_MIGRATION_TEMPORAL_TLS_CERT_FILE (or MODEL_MIGRATION_TEMPORAL_TLS_CERT) for mutual TLS"),
    ("wrong_key", "MODEL_MIGRATION_TEMPORAL_TLS_KEY_FILE ({pki}/stranger.key) is not the private key of the certificate in "
                  "MODEL_MIGRATION_TEMPORAL_TLS_CERT_FILE ({pki}/client.pem)"),
    ("encrypted_key", "MODEL_MIGRATION_TEMPORAL_TLS_KEY_FILE ({tmp}/locked.key) is an encrypted private key; "
                      "give it unencrypted (kept as a secret)"),
    ("both", "both MODEL_MIGRATION_TEMPORAL_TLS_CA and MODEL_MIGRATION_TEMPORAL_TLS_CA_FILE are set; set only one of them"),
]


@pytest.mark.parametrize(("case", "expected"), BAD_SETTINGS, ids=[case for case, _ in BAD_SETTINGS])
async def test_a_bad_setting_is_one_line(pki: Pki, tmp_path: Path, case: str, expected: str) -> None:
    """Checked before any connection (nothing listens at the address), naming the setting and the path, never the PEM."""
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    pair = {"temporal_tls_cert_file": pki.client_cert, "temporal_tls_key_file": pki.client_key}
    values: dict[str, object] = {
        "missing_ca": {"temporal_tls_ca_file": tmp_path / "nope.pem"},
        "missing_key": {**pair, "temporal_tls_key_file": tmp_path / "nope.key"},
        "ca_not_pem": {"temporal_tls_ca_file": tmp_path / "junk.pem"},
        "cert_value_not_pem": {"temporal_tls_cert": SecretStr("junk"), "temporal_tls_key_file": pki.client_key},
        "key_not_pem": {**pair, "temporal_tls_key_file": pki.client_cert},
        "cert_without_key": {"temporal_tls_cert_file": pki.client_cert},
        "key_without_cert": {"temporal_tls_key": SecretStr(pki.client_key.read_text())},
        "wrong_key": {**pair, "temporal_tls_key_file": pki.stranger_key},
        "encrypted_key": {**pair, "temporal_tls_key_file": _encrypted_key(pki, tmp_path / "locked.key")},
        "both": {"temporal_tls_ca_file": pki.ca, "temporal_tls_ca": SecretStr(pki.ca.read_text())},
    }[case]
    message = await refused(settings("127.0.0.1:1", **values))
    assert message == expected.format(tmp=tmp_path, pki=pki.ca.parent)
    assert "PRIVATE KEY-----\n" not in message and "BEGIN CERTIFICATE-----\n" not in message


@pytest.fixture
def secured(dev_env: WorkflowEnvironment, gitlab_sandbox, tls_proxy: TlsProxy) -> Cli:  # type: ignore[no-untyped-def]
    """The CLI's environment for the listener that wants both a client certificate and the API key."""
    pki = tls_proxy.pki
    env = cli_env(dev_env, gitlab_sandbox)
    env.update({
        "MODEL_MIGRATION_TEMPORAL_ADDRESS": tls_proxy.mtls_api_key,
        "MODEL_MIGRATION_TEMPORAL_TLS_CA_FILE": str(pki.ca),
        "MODEL_MIGRATION_TEMPORAL_TLS_SERVER_NAME": SERVER_NAME,
        "MODEL_MIGRATION_TEMPORAL_TLS_CERT_FILE": str(pki.client_cert),
        "MODEL_MIGRATION_TEMPORAL_TLS_KEY": pki.client_key.read_text(),
        "MODEL_MIGRATION_TEMPORAL_API_KEY": tls_proxy.api_key,
    })
    return Cli(env)


def test_the_cli_connects_with_mtls_and_the_api_key_from_the_environment(secured: Cli, tls_proxy: TlsProxy) -> None:
    """``list`` answers through the proxy; a wrong key is one line that does not show the key."""
    assert secured("list", "--json").stdout.strip().startswith("[")
    secured.env["MODEL_MIGRATION_TEMPORAL_API_KEY"] = "wrong-key-123"
    line = one_line_error(secured("list", check=False))
    assert "refused the API key in MODEL_MIGRATION_TEMPORAL_API_KEY" in line and "wrong-key-123" not in line
    del secured.env["MODEL_MIGRATION_TEMPORAL_TLS_KEY"]
    line = one_line_error(secured("list", check=False))
    assert "is set but no private key" in line and "BEGIN" not in line


async def _pollers(dev_env: WorkflowEnvironment, queue: str) -> int:
    answer = await dev_env.client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=dev_env.client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    ))
    return len(answer.pollers)


async def test_the_worker_polls_through_mtls_and_the_api_key(secured: Cli, dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """``model-migration worker`` configured by the environment only: it starts and polls its task queue through the proxy."""
    queue = secured.env["MODEL_MIGRATION_TASK_QUEUE"]
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "model_migration.cli", "worker"], env=secured.env,
                                  stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while await _pollers(dev_env, queue) == 0:
            assert worker.poll() is None and time.monotonic() < end, log_path.read_text()
            await asyncio.sleep(0.2)
        assert "worker_started" in log_path.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    text = log_path.read_text()
    assert secured.env["MODEL_MIGRATION_TEMPORAL_API_KEY"] not in text and "PRIVATE KEY" not in text
