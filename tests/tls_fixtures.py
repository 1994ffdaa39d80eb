"""A TLS-terminating gRPC proxy (Debian's nginx) in front of the session's dev server, with
certificates from a CA the fixture makes, so that secured connections are tested without Temporal Cloud.

Four listeners on free loopback ports: TLS only; mutual TLS (a client certificate from the CA is
required); TLS plus an API key (``authorization: Bearer <key>``); both. A second CA signs nothing
the proxy trusts: it is the "wrong CA".
"""

from __future__ import annotations

import datetime
import getpass
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from temporalio.testing import WorkflowEnvironment

from model_migration.devserver import free_port
from tests.install_tools import INSTALL_TOOLS, find_nginx

#: The DNS name in the server certificate besides 127.0.0.1.
SERVER_NAME = "temporal.test"
READY_TIMEOUT = 15.0


@dataclass(frozen=True)
class Pki:
    """PEM files: the proxy's CA, a CA the proxy knows nothing of, and what each signed."""

    ca: Path
    wrong_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: A client certificate that the wrong CA signed (the mTLS listener refuses it).
    stranger_cert: Path
    stranger_key: Path


@dataclass(frozen=True)
class TlsProxy:
    pki: Pki
    tls: str  # host:port of each listener
    mtls: str
    api_key_address: str
    mtls_api_key: str  # both a client certificate and the API key
    api_key: str
    error_log: Path


Signed = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> tuple[Path, Path]:
    cert_path = directory / f"{stem}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory / f"{stem}.key"
    if key is not None:
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def _builder(subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _ca(common: str) -> Signed:
    key = _key()
    cert = (
        _builder(common, _name(common), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                       critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(common: str, ca: Signed, *, server: bool) -> Signed:
    ca_cert, ca_key = ca
    key = _key()
    builder = (
        _builder(common, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME), x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(directory: Path) -> Pki:
    ca, wrong = _ca("model-migration test CA"), _ca("some other CA")
    ca_path, _ = _write(directory, "ca", ca[0])
    wrong_path, _ = _write(directory, "wrong-ca", wrong[0])
    server = _write(directory, "server", *_leaf(SERVER_NAME, ca, server=True))
    client = _write(directory, "client", *_leaf("model-migration worker", ca, server=False))
    stranger = _write(directory, "stranger", *_leaf("model-migration worker", wrong, server=False))
    return Pki(ca_path, wrong_path, *server, *client, *stranger)


def _server(port: int, pki: Pki, upstream: str, *, mtls: bool, api_key: bool) -> str:
    """One listener: TLS with the server certificate; with ``mtls`` a client certificate from the CA is
    required, with ``api_key`` the bearer token. A refusal is a gRPC UNAUTHENTICATED status, as a
    Temporal server's own refusal is (nginx's own answer, an HTTP 4xx page, is no gRPC)."""
    def refuse(message: str) -> str:  # a trailers-only gRPC response
        return f"""
            default_type application/grpc;
            add_header grpc-status 16 always;
            add_header grpc-message "{message}" always;
            return 200;"""

    client = f"""
        ssl_client_certificate {pki.ca};
        ssl_verify_client on;
        error_page 496 = @no_certificate;
        error_page 495 = @bad_certificate;
        location @no_certificate {{{refuse("client certificate required")}
        }}
        location @bad_certificate {{{refuse("client certificate not trusted")}
        }}""" if mtls else ""
    key_check = """
            if ($api_key_ok = 0) {
                return 401;
            }""" if api_key else ""
    key_refusal = f"""
        error_page 401 = @unauthorized;
        location @unauthorized {{{refuse("Request unauthorized")}
        }}""" if api_key else ""
    return f"""
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {pki.server_cert};
        ssl_certificate_key {pki.server_key};{client}{key_refusal}
        location / {{{key_check}
            grpc_pass grpc://{upstream};
            grpc_read_timeout 300s;  # above the SDK's long polls
            grpc_send_timeout 300s;
        }}
    }}"""


def nginx_config(directory: Path, pki: Pki, upstream: str, ports: tuple[int, int, int, int], api_key: str) -> str:
    """The proxy's nginx.conf: everything it writes stays in ``directory``; it runs in the foreground."""
    tls, mtls, keyed, both = ports
    # A root master hands work to an unprivileged user by default, which could not use the private temp dirs.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    servers = "".join((
        _server(tls, pki, upstream, mtls=False, api_key=False),
        _server(mtls, pki, upstream, mtls=True, api_key=False),
        _server(keyed, pki, upstream, mtls=False, api_key=True),
        _server(both, pki, upstream, mtls=True, api_key=True),
    ))
    return f"""{user}daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_max_body_size 0;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    map $http_authorization $api_key_ok {{
        "Bearer {api_key}" 1;
        default 0;
    }}{servers}
}}
"""


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def tls_proxy(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsProxy]:
    """nginx terminating TLS in front of the session's dev server; fails (never skips) without nginx."""
    nginx = find_nginx()
    if nginx is None:
        pytest.fail(f"nginx not installed; run: {INSTALL_TOOLS}", pytrace=False)
    directory = tmp_path_factory.mktemp("tls-proxy")
    pki = make_pki(directory)
    ports = (free_port(), free_port(), free_port(), free_port())
    api_key = secrets.token_urlsafe(24)
    config = directory / "nginx.conf"
    config.write_text(nginx_config(directory, pki, dev_env.client.service_client.config.target_host, ports, api_key))
    error_log = directory / "error.log"
    process = subprocess.Popen(
        [str(nginx), "-p", str(directory), "-e", str(error_log), "-c", str(config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        end = time.monotonic() + READY_TIMEOUT
        while not all(_listening(p) for p in ports):
            if process.poll() is not None or time.monotonic() > end:
                stderr = process.stderr.read().decode() if process.poll() is not None and process.stderr else ""
                log = error_log.read_text() if error_log.exists() else ""
                pytest.fail(f"nginx did not start: {(stderr + log).strip()[-2000:]}", pytrace=False)
            time.sleep(0.05)
        yield TlsProxy(pki, *(f"127.0.0.1:{p}" for p in ports), api_key=api_key, error_log=error_log)
    finally:
        process.terminate()  # by pid: SIGTERM is nginx's fast shutdown
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
