"""``model-migration codec-server``: the Web UI's remote codec endpoint over HTTP, its CORS and its token."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload

from model_migration.codec import EncryptionCodec
from model_migration.codec_server import CodecServer
from model_migration.converter import with_codec
from model_migration.devserver import DevServer, free_port
from tests.cli.run import cli, env

KEY = bytes(range(32))
KEYS = json.dumps({"k1": base64.b64encode(KEY).decode()})
UI = "http://localhost:8233"
SECRET = "Confidential: the feature's issue text"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def as_json(payload: Payload) -> dict[str, object]:
    return {"metadata": {k: b64(v) for k, v in payload.metadata.items()}, "data": b64(payload.data)}


def from_json(doc: dict[str, object]) -> Payload:
    metadata = doc.get("metadata") or {}
    assert isinstance(metadata, dict)
    return Payload(metadata={k: base64.b64decode(v) for k, v in metadata.items()}, data=base64.b64decode(str(doc.get("data", ""))))


Reply = tuple[int, dict[str, str], dict[str, object]]


def call(url: str, *, method: str = "POST", body: object = None, headers: dict[str, str] | None = None) -> Reply:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a loopback test server
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw else {}
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, dict(err.headers), json.loads(raw) if raw else {}


@pytest.fixture
def server() -> Iterator[CodecServer]:
    running = CodecServer(EncryptionCodec({"k1": KEY}, "k1"), port=free_port(), ui_origins=[UI]).start()
    yield running
    running.stop()


def test_encode_then_decode_round_trips(server: CodecServer) -> None:
    """A plain payload sent to /encode comes back encrypted, and /decode gives it back."""
    plain = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(SECRET).encode())
    status, _, encoded = call(f"{server.url}/encode", body={"payloads": [as_json(plain)]}, headers={"X-Namespace": "default"})
    assert status == 200
    payloads = encoded["payloads"]
    assert isinstance(payloads, list) and len(payloads) == 1
    assert SECRET.encode() not in from_json(payloads[0]).SerializeToString()
    status, _, decoded = call(f"{server.url}/default/decode", body=encoded)
    assert status == 200 and [from_json(p) for p in decoded["payloads"]] == [plain]  # type: ignore[attr-defined]


async def test_a_workers_payload_decodes_through_the_server(server: CodecServer) -> None:
    """What the worker's converter stores (a model, encrypted) is JSON again through /decode."""
    [stored] = await with_codec(EncryptionCodec({"k1": KEY}, "k1")).encode([{"note": SECRET}])
    status, _, decoded = call(f"{server.url}/decode", body={"payloads": [as_json(stored)]})
    [payload] = [from_json(p) for p in decoded["payloads"]]  # type: ignore[attr-defined]
    assert status == 200 and payload.metadata["encoding"] == b"json/plain" and json.loads(payload.data) == {"note": SECRET}


def test_a_bad_body_or_an_unknown_key_is_400(server: CodecServer) -> None:
    """Not the protocol's JSON, or a payload under a key this server lacks: 400 with one line."""
    status, _, doc = call(f"{server.url}/decode", body={"payloads": "nope"})
    assert status == 400 and "proto3 JSON" in str(doc["error"])
    foreign = EncryptionCodec({"k2": bytes(32)}, "k2").encrypt(Payload(data=b"x"))
    status, _, doc = call(f"{server.url}/decode", body={"payloads": [as_json(foreign)]})
    assert status == 400 and "'k2'" in str(doc["error"]) and "\n" not in str(doc["error"])
    assert call(f"{server.url}/other", body={})[0] == 404


def test_cors_only_for_the_ui_origin(server: CodecServer) -> None:
    """The UI's origin is allowed, another origin gets no CORS header; the preflight names methods and headers."""
    _, allowed, _ = call(f"{server.url}/decode", body={"payloads": []}, headers={"Origin": UI})
    assert allowed["Access-Control-Allow-Origin"] == UI
    _, other, _ = call(f"{server.url}/decode", body={"payloads": []}, headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other
    status, preflight, _ = call(f"{server.url}/decode", method="OPTIONS", headers={
        "Origin": UI, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"})
    assert status == 204 and preflight["Access-Control-Allow-Origin"] == UI
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    assert preflight["Access-Control-Allow-Headers"] == "Content-Type, X-Namespace, Authorization"
    _, refused, _ = call(f"{server.url}/decode", method="OPTIONS", headers={"Origin": "http://evil.example"})
    assert not any(h.startswith("Access-Control-") for h in refused)


def test_a_token_is_required_when_set() -> None:
    """With a token, no header or a wrong one is 401; the right bearer token passes; the preflight needs none."""
    running = CodecServer(EncryptionCodec({"k1": KEY}, "k1"), port=free_port(), ui_origins=[UI], token=SecretStr("s3cret")).start()
    try:
        url = f"{running.url}/decode"
        assert call(url, body={"payloads": []})[0] == 401
        assert call(url, body={"payloads": []}, headers={"Authorization": "Bearer wrong"})[0] == 401
        assert call(url, body={"payloads": []}, headers={"Authorization": "s3cret"})[0] == 401
        assert call(url, body={"payloads": []}, headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert call(url, method="OPTIONS", headers={"Origin": UI})[0] == 204
        assert "s3cret" not in repr(vars(running))
    finally:
        running.stop()


def test_without_keys_it_refuses_in_one_line() -> None:
    """No MODEL_MIGRATION_CODEC_KEYS: exit 2, one line naming it, nothing served."""
    done = cli("codec-server", "--port", str(free_port()))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: the codec server needs MODEL_MIGRATION_CODEC_KEYS")
    done = cli("dev-server", "--codec", "--port", str(free_port()), "--ui-port", str(free_port()))
    assert done.returncode == 2 and "MODEL_MIGRATION_CODEC_KEYS" in done.stderr and done.stderr.count("\n") == 1


def test_the_command_serves_and_never_prints_a_key() -> None:
    """``model-migration codec-server`` answers /decode with the configured keys and prints no key or token."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "model_migration.cli", "codec-server", "--port", str(port)],
        env=env(MODEL_MIGRATION_CODEC_KEYS=KEYS, MODEL_MIGRATION_CODEC_SERVER_TOKEN="s3cret"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        sealed = EncryptionCodec({"k1": KEY}, "k1").encrypt(Payload(data=b"hello"))
        end = time.monotonic() + 30
        while True:
            try:
                status, _, doc = call(f"http://127.0.0.1:{port}/decode", body={"payloads": [as_json(sealed)]},
                                      headers={"Authorization": "Bearer s3cret"})
                break
            except urllib.error.URLError:
                assert time.monotonic() < end and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        assert status == 200 and from_json(doc["payloads"][0]).data == b"hello"  # type: ignore[index]
    finally:
        proc.terminate()
        out, errors = proc.communicate(timeout=15)
    assert proc.returncode == 0, errors
    assert "Codec server: http://127.0.0.1:" in out and "k1" in out
    assert b64(KEY) not in out + errors and "s3cret" not in out + errors


def test_dev_server_passes_the_ui_its_codec_endpoint(tmp_path: Path) -> None:
    """``dev-server --codec`` gives the Web UI ``--ui-codec-endpoint``; without it the flag is absent."""
    with_codec_endpoint = DevServer(tmp_path, ui_codec_endpoint="http://127.0.0.1:9999").command()
    at = with_codec_endpoint.index("--ui-codec-endpoint")
    assert with_codec_endpoint[at + 1] == "http://127.0.0.1:9999"
    assert "--ui-codec-endpoint" not in DevServer(tmp_path).command()
    assert "--ui-codec-endpoint" not in DevServer(tmp_path, headless=True, ui_codec_endpoint="http://x").command()
    assert "--codec" in cli("dev-server", "--help").stdout


def test_dev_server_codec_serves_and_stops_with_it(tmp_path: Path) -> None:
    """``dev-server --codec`` starts the codec server, gives its URL to the UI, and SIGTERM ends both."""
    from tests.cli.test_devserver_signals import _children, _kill_all, _read_line_with, _wait_gone

    codec_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "model_migration.cli", "dev-server", "--codec", "--codec-port", str(codec_port),
         "--port", str(free_port()), "--ui-port", str(free_port()), "--state-dir", str(tmp_path)],
        env=env(MODEL_MIGRATION_CODEC_KEYS=KEYS), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    servers: list[int] = []
    try:
        _read_line_with(proc, "State:", timeout=90)
        servers = [c for c in _children(proc.pid) if b"start-dev" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(servers) == 1
        argv = Path(f"/proc/{servers[0]}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"--ui-codec-endpoint") + 1] == f"http://127.0.0.1:{codec_port}".encode()
        sealed = EncryptionCodec({"k1": KEY}, "k1").encrypt(Payload(data=b"hello"))
        status, _, doc = call(f"http://127.0.0.1:{codec_port}/decode", body={"payloads": [as_json(sealed)]})
        assert status == 200 and from_json(doc["payloads"][0]).data == b"hello"  # type: ignore[index]
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        assert _wait_gone(servers[0])
        with pytest.raises(urllib.error.URLError):
            call(f"http://127.0.0.1:{codec_port}/decode", body={"payloads": []})
    finally:
        _kill_all(proc, servers)
