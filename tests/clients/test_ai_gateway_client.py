"""The AI gateway client over real HTTP to the session sandbox: model definitions into notices, and each failure's type."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from model_migration.catalog import load_catalog
from model_migration.clients.ai_gateway import AiGatewayClient, AiGatewayError
from model_migration.domain.deprecation_notices import (
    changes,
    deprecation_workflow_id,
    merge_notices,
    notices_from_catalog,
    notices_from_gateway,
)
from model_migration.domain.errors import ErrorType
from model_migration.settings import Settings

CATALOG = load_catalog()
DEFINITIONS = r"^/ai-gateway/v1/models/definitions$"
SONNET_ID = "deprecation:anthropic/claude-3-7-sonnet"


@pytest.fixture
def gateway(gitlab_sandbox) -> Iterator[AiGatewayClient]:  # type: ignore[no-untyped-def]
    client = AiGatewayClient(Settings(gitlab_url=gitlab_sandbox.url).resolved_ai_gateway_url(), timeout=5)
    yield client
    client.close()


@pytest.fixture
def overrides(gitlab_sandbox) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """Set the sandbox gateway's overrides; the ones in place before are put back after the test."""
    url, headers = f"{gitlab_sandbox.url}/-/sandbox/ai-gateway/models", {"PRIVATE-TOKEN": gitlab_sandbox.token}
    before = requests.get(url, headers=headers, timeout=10).json()

    def put(models: dict[str, Any]) -> None:
        answer = requests.put(url, json={"models": models}, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text

    yield put
    assert requests.put(url, json=before, headers=headers, timeout=10).status_code == 200


def test_definitions_become_the_same_notices_as_the_catalogs(gateway: AiGatewayClient) -> None:
    """The sandbox's answer validates; its deprecations name the catalog's removals, so the notices agree on every cutoff."""
    models = {m.identifier: m for m in gateway.model_definitions()}
    assert set(models) >= {m.gitlab_identifier for m in CATALOG.models}
    gecko = models["code_gecko_002"].deprecation
    assert gecko is not None and (gecko.deprecation_date, gecko.removal_version) == (date(2024, 4, 9), "17.11")
    from_gateway = notices_from_gateway(models.values(), CATALOG)
    assert [(n.model, n.cutoff) for n in from_gateway] == [(n.model, n.cutoff) for n in notices_from_catalog(CATALOG)]
    merged = merge_notices(notices_from_catalog(CATALOG), from_gateway)
    found = changes({}, merged)
    assert len(found.new) == 3 and found.moved == ()
    assert changes(found.known_after({}), merge_notices(notices_from_catalog(CATALOG), notices_from_gateway(
        gateway.model_definitions(), CATALOG))) == ((), ())


def test_a_removal_moved_in_the_gateway_moves_the_cutoff(gateway: AiGatewayClient, overrides: Any) -> None:
    """The gateway now removes Claude 3.7 Sonnet in 18.8: the running deprecation's cutoff moves to 18.8's release."""
    known = {SONNET_ID: date(2026, 2, 19)}
    overrides({"claude_3_7_sonnet_20250219": {"deprecation": {"deprecation_date": "2025-10-28", "removal_version": "18.8"}}})
    merged = merge_notices(notices_from_catalog(CATALOG), notices_from_gateway(gateway.model_definitions(), CATALOG))
    new, moved = changes(known, merged)
    assert [(deprecation_workflow_id(n), n.cutoff) for n in moved] == [(SONNET_ID, date(2026, 1, 15))]
    assert SONNET_ID not in {deprecation_workflow_id(n) for n in new}


def test_outages_are_retryable(gateway: AiGatewayClient, gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """5xx, 429 (with its Retry-After) and no server at all are AI_GATEWAY_UNAVAILABLE, each one line."""
    gitlab_sandbox.server.inject_fault(DEFINITIONS, "502", count=1)
    with pytest.raises(AiGatewayError) as bad_gateway:
        gateway.model_definitions()
    gitlab_sandbox.server.inject_fault(DEFINITIONS, "429", count=1, retry_after=7)
    with pytest.raises(AiGatewayError) as limited:
        gateway.model_definitions()
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(AiGatewayError) as unreachable:
        AiGatewayClient(f"http://127.0.0.1:{port}/ai-gateway", timeout=2).model_definitions()
    for err in (bad_gateway.value, limited.value, unreachable.value):
        assert err.type == ErrorType.AI_GATEWAY_UNAVAILABLE and "\n" not in err.message
        assert err.type not in ErrorType.non_retryable()
    assert "502" in bad_gateway.value.message and limited.value.retry_after == 7.0
    assert "ConnectionError" in unreachable.value.message


def test_a_wrong_url_is_not_retried(gitlab_sandbox) -> None:  # type: ignore[no-untyped-def]
    """A base URL that is not the gateway's (a 404) is AI_GATEWAY_REFUSED, naming the setting to check."""
    with pytest.raises(AiGatewayError) as wrong:
        AiGatewayClient(f"{gitlab_sandbox.url}/api/v4").model_definitions()
    assert wrong.value.type == ErrorType.AI_GATEWAY_REFUSED and wrong.value.type in ErrorType.non_retryable()
    assert "MODEL_MIGRATION_AI_GATEWAY_URL" in wrong.value.message and "\n" not in wrong.value.message


# -- answers the sandbox never gives: a stand-in server beside the test -------------------------


class _Canned(BaseHTTPRequestHandler):
    status = 200
    content_type = "application/json"
    body = b"{}"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet."""


@pytest.fixture
def canned() -> Iterator[Any]:
    """Serve one canned answer on 127.0.0.1; returns a client pointed at it."""
    servers: list[ThreadingHTTPServer] = []

    def serve(body: bytes, content_type: str = "application/json") -> AiGatewayClient:
        handler = type("Handler", (_Canned,), {"body": body, "content_type": content_type})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return AiGatewayClient(f"http://127.0.0.1:{server.server_address[1]}", timeout=5)

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("body", "named"), [
    ({"models": [{"identifier": "a", "name": "A"}, {"identifier": "b", "name": "B", "deprecation": {"deprecation_date": "soon",
                                                                                                  "removal_version": "18.9"}}]},
     "models[1] (b).deprecation.deprecation_date"),
    ({"models": [{"identifier": "a", "name": "A", "deprecation": {"deprecation_date": "2025-10-28"}}]},
     "models[0] (a).deprecation.removal_version"),
    ({"definitions": []}, "models: Field required"),
    ([1, 2], "(the answer)"),
])
def test_json_of_another_shape_is_refused_naming_the_field(canned: Any, body: Any, named: str) -> None:
    """JSON that is not the definitions' shape is AI_GATEWAY_REFUSED (the contract changed), naming the model and field."""
    with pytest.raises(AiGatewayError) as malformed:
        canned(json.dumps(body).encode()).model_definitions()
    assert malformed.value.type == ErrorType.AI_GATEWAY_REFUSED
    assert named in malformed.value.message and "\n" not in malformed.value.message


def test_a_page_instead_of_json_is_retryable(canned: Any) -> None:
    """An HTML page where JSON belongs (a proxy or maintenance page in the way) is AI_GATEWAY_UNAVAILABLE."""
    with pytest.raises(AiGatewayError) as page:
        canned(b"<html><body>Down for maintenance</body></html>", "text/html; charset=utf-8").model_definitions()
    assert page.value.type == ErrorType.AI_GATEWAY_UNAVAILABLE and "text/html" in page.value.message
