"""Connection failures other servers and proxies give than the test's nginx: each still one line naming the setting."""

from __future__ import annotations

import pytest
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from model_migration.temporal_tls import connection_error

PREFIX = "Failed client connect: `get_system_info` call error after connection: "
CASES = [
    # A proxy that answers a bad key with an HTTP 401 page instead of a gRPC status.
    ("http_401", PREFIX + 'Status { code: Internal, message: "protocol error: received message with invalid compression flag: 60 '
     '(valid flags are 0 and 1) while receiving response with status: 401 Unauthorized", metadata: MetadataMap { headers: {} }, '
     "source: None }", True, False,
     "Temporal at h:7233 refused the API key in MODEL_MIGRATION_TEMPORAL_API_KEY (HTTP 401): "
     "check the key, and that it may use this namespace"),
    # A server that ends the TLS session when no client certificate comes (Temporal's own frontend with requireClientAuth).
    ("alert_certificate_required", PREFIX + 'Status { code: Unknown, message: "transport error", source: Some(tonic::transport::Error('
     "Transport, hyper::Error(Io, Custom { kind: InvalidData, error: AlertReceived(CertificateRequired) })) }", False, False,
     "Temporal at h:7233 requires a client certificate (mutual TLS): set MODEL_MIGRATION_TEMPORAL_TLS_CERT_FILE and "
     "MODEL_MIGRATION_TEMPORAL_TLS_KEY_FILE"),
    ("alert_bad_certificate", PREFIX + 'Status { code: Unknown, message: "transport error", source: Some(tonic::transport::Error('
     "Transport, hyper::Error(Io, Custom { kind: InvalidData, error: AlertReceived(BadCertificate) })) }", False, True,
     "Temporal at h:7233 refused the client certificate in MODEL_MIGRATION_TEMPORAL_TLS_CERT_FILE: "
     "use one signed by the CA the server trusts"),
]


@pytest.mark.parametrize(("text", "api_key", "client_cert", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_other_refusals_are_named(text: str, api_key: bool, client_cert: bool, expected: str) -> None:
    """The SDK reports them as text in a RuntimeError."""
    pair = {"client_cert": b"cert", "client_private_key": b"key"} if client_cert else {}
    tls = TLSConfig(server_root_ca_cert=b"ca", **pair)
    assert str(connection_error(RuntimeError(text), "h:7233", tls, api_key)) == expected


def test_an_rpc_status_refusing_the_key_is_named() -> None:
    """Temporal Cloud's answer to a revoked key, raised as an RPCError by a later call."""
    err = RPCError("Request unauthorized", RPCStatusCode.UNAUTHENTICATED, b"")
    assert str(connection_error(err, "h:7233", None, True)).startswith(
        "Temporal at h:7233 refused the API key in MODEL_MIGRATION_TEMPORAL_API_KEY (Request unauthorized)")


def test_an_unreachable_server_is_left_to_the_wait() -> None:
    """Connection refused is no TLS problem: connect() keeps trying for ``wait`` seconds, then says it cannot reach Temporal."""
    text = ('Failed client connect: Server connection error: tonic::transport::Error(Transport, ConnectError(ConnectError('
            '"tcp connect error", 127.0.0.1:1, Os { code: 111, kind: ConnectionRefused, message: "Connection refused" })))')
    assert connection_error(RuntimeError(text), "h:7233", TLSConfig(server_root_ca_cert=b"ca"), True) is None
