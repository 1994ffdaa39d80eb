"""The image's entrypoint, run outside a container (these machines have none) with the environment the Kubernetes
manifests give a worker pod: it answers the probes and Prometheus, and SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from model_migration.devserver import free_port
from tests.conftest import SandboxInfo
from tests.deploy.deploy_files import BIN, METRIC, dockerfile_command, known, manifest, quoted, worker_container


def pod_environment() -> dict[str, str]:
    """The container's environment: the ConfigMap and the Secret its envFrom names, in that order."""
    sources = {"configMapRef": ("ConfigMap", "data"), "secretRef": ("Secret", "stringData")}
    env: dict[str, str] = {}
    for source in worker_container()["envFrom"]:
        ((ref, target),) = source.items()
        kind, field = sources[ref]
        env.update(manifest(kind, target["name"])[field])
    return env


def overridden(env: dict[str, str], **values: str | None) -> dict[str, str]:
    """The manifests' environment with this machine's addresses and credentials in place of the placeholders;
    every name overridden must be one the manifests set."""
    unknown = sorted(set(values) - set(env))
    assert unknown == [], f"the manifests do not set {unknown}"
    changed = {**env, **{k: v for k, v in values.items() if v is not None}}
    return {k: v for k, v in changed.items() if values.get(k, "") is not None}


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""
    except OSError:
        return 0, ""


async def answered(url: str, status: int, process: subprocess.Popen[bytes], logs: Path, timeout: float = 60.0) -> str:
    """The body of ``url`` once it answers ``status``; fails with the worker's output if it exits or takes too long."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        code, body = await asyncio.to_thread(get, url)
        if code == status:
            return body
        if process.poll() is not None or loop.time() > end:
            process.kill()
            pytest.fail(f"GET {url}: {code or 'no answer'} (worker exit code {process.poll()}):\n{logs.read_text()[-3000:]}")
        await asyncio.sleep(0.2)


async def test_the_image_entrypoint_runs_a_worker_from_the_manifests(
    dev_env: WorkflowEnvironment, gitlab_sandbox: SandboxInfo, tmp_path: Path,
) -> None:
    """The Dockerfile's ENTRYPOINT + CMD with the ConfigMap and Secret (Temporal, GitLab and ports pointed at this
    machine's test servers): /live and /ready answer 200 on the health port, /metrics serves the SDK's and only
    known names, and SIGTERM drains and exits 0."""
    command = dockerfile_command()
    executable = BIN / command[0]  # the image puts its venv's bin first on PATH, as this venv's is here
    assert executable.is_file(), f"{command[0]} is not installed: pip install -e '.[test]'"
    health, metrics = free_port(), free_port()
    key_id = "deploy-test"
    env = overridden(
        pod_environment(),
        MODEL_MIGRATION_TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
        MODEL_MIGRATION_TEMPORAL_NAMESPACE="default",
        MODEL_MIGRATION_TEMPORAL_TLS="false",  # the dev server has no TLS; the TLS tests cover secured connections
        MODEL_MIGRATION_TEMPORAL_API_KEY=None,
        MODEL_MIGRATION_TASK_QUEUE=f"deploy-{uuid.uuid4().hex[:8]}",
        MODEL_MIGRATION_GITLAB_URL=gitlab_sandbox.url,
        MODEL_MIGRATION_GITLAB_PROJECT=gitlab_sandbox.project_path,
        MODEL_MIGRATION_GITLAB_GROUP=gitlab_sandbox.group_path,
        MODEL_MIGRATION_GITLAB_TOKEN=gitlab_sandbox.token,
        MODEL_MIGRATION_CODEC_KEYS=json.dumps({key_id: base64.b64encode(secrets.token_bytes(32)).decode()}),
        MODEL_MIGRATION_CODEC_KEY_ID=key_id,
        MODEL_MIGRATION_CODEC_SERVER_TOKEN=secrets.token_urlsafe(16),
        MODEL_MIGRATION_STATE_DIR=str(tmp_path / "state"),
        MODEL_MIGRATION_HEALTH_ADDRESS=f"127.0.0.1:{health}",
        MODEL_MIGRATION_METRICS_ADDRESS=f"127.0.0.1:{metrics}",
    )
    # Nothing from this process's environment but what any container has.
    env |= {"PATH": f"{BIN}{os.pathsep}/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    (tmp_path / "state").mkdir()
    logs = tmp_path / "worker.log"
    with logs.open("wb") as out:
        process = subprocess.Popen([str(executable), *command[1:]], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    try:
        await answered(f"http://127.0.0.1:{health}/live", 200, process, logs)
        await answered(f"http://127.0.0.1:{health}/ready", 200, process, logs)
        body = await answered(f"http://127.0.0.1:{metrics}/metrics", 200, process, logs)
        served = {m for line in body.splitlines() if not line.startswith("#") for m in METRIC.findall(line.split("{")[0].split(" ")[0])}
        assert "temporal_worker_task_slots_available" in served and "temporal_num_pollers" in served, sorted(served)
        assert [n for n in sorted(served) if not known(n)] == [], "names the alerts and dashboard do not know"
        assert any(re.fullmatch(r"temporal_\w+_seconds_bucket", n) for n in served), sorted(served)
        process.send_signal(signal.SIGTERM)
        drain = float(env["MODEL_MIGRATION_GRACEFUL_SHUTDOWN"])
        code = await asyncio.to_thread(process.wait, drain + 15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = logs.read_text()
    assert code == 0, f"{quoted(command)} exited {code}:\n{output[-3000:]}"
    assert "worker_stopped" in output, output[-3000:]
    assert gitlab_sandbox.token not in output and env["MODEL_MIGRATION_CODEC_KEYS"] not in output


async def test_the_codec_server_deployment_runs_and_round_trips_a_payload(tmp_path: Path) -> None:
    """codec-server.yaml's command with its environment (keys and token from the Secret, bound to loopback on a free
    port here): the UI's origin gets CORS, a request without the token is refused, encode then decode gives the payload back."""
    (container,) = manifest("Deployment", "model-migration-codec-server")["spec"]["template"]["spec"]["containers"]
    args = list(container["args"])
    assert args[0] == "codec-server" and container["livenessProbe"]["tcpSocket"]["port"] == "codec"
    (declared,) = container["ports"]
    assert str(declared["containerPort"]) == args[args.index("--port") + 1]
    origin = args[args.index("--ui-origin") + 1]
    port = free_port()
    args[args.index("--port") + 1], args[args.index("--host") + 1] = str(port), "127.0.0.1"
    secret = manifest("Secret", "model-migration")["stringData"]
    token = secrets.token_urlsafe(16)
    values = {"MODEL_MIGRATION_CODEC_KEYS": json.dumps({"k1": base64.b64encode(secrets.token_bytes(32)).decode()}),
              "MODEL_MIGRATION_CODEC_KEY_ID": "k1", "MODEL_MIGRATION_CODEC_SERVER_TOKEN": token}
    env = {"PATH": f"{BIN}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "model-migration" and ref["key"] in secret, ref
            env[item["name"]] = values[ref["key"]]
    executable = BIN / dockerfile_command()[0]
    process = subprocess.Popen([str(executable), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def post(path: str, body: object, auth: bool = True) -> tuple[int, dict[str, str], object]:
        headers = {"Content-Type": "application/json", "Origin": origin, **({"Authorization": f"Bearer {token}"} if auth else {})}
        request = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), None

    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while (await asyncio.to_thread(get, url + "/decode"))[0] == 0:
            assert process.poll() is None and loop.time() < end, process.stdout.read().decode() if process.stdout else ""
            await asyncio.sleep(0.2)
        plain = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": base64.b64encode(b'"confidential"').decode()}
        refused, _, _ = await asyncio.to_thread(post, "/encode", {"payloads": [plain]}, False)
        assert refused == 401
        status, headers, encoded = await asyncio.to_thread(post, "/encode", {"payloads": [plain]})
        assert status == 200 and headers.get("Access-Control-Allow-Origin") == origin
        assert encoded["payloads"][0]["data"] != plain["data"]  # type: ignore[index]
        status, _, decoded = await asyncio.to_thread(post, "/decode", encoded)
        assert status == 200 and decoded == {"payloads": [plain]}
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 0
