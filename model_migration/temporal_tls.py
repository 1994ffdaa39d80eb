"""TLS and API-key settings of the Temporal connection: loaded, checked, and turned into the SDK's
``TLSConfig``; and the SDK's connection errors that are about them, told apart.

Every problem is one ``DomainError`` line naming the setting to fix; no PEM content or key reaches it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from pydantic import SecretStr
from temporalio.service import RPCError, TLSConfig

from model_migration.domain.errors import DomainError, ErrorType
from model_migration.settings import Settings

ENV = "MODEL_MIGRATION_"
CA, CERT, KEY = "TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"
API_KEY = f"{ENV}TEMPORAL_API_KEY"


class TlsSettingError(DomainError):
    def __init__(self, message: str) -> None:
        super().__init__(message, type=ErrorType.INVALID_INPUT)


@dataclass(frozen=True)
class Pem:
    """One PEM setting's content and where it came from (a setting name, and the path for a file)."""

    data: bytes
    source: str


def _pem(name: str, value: SecretStr | None, path: Path | None) -> Pem | None:
    value_env, file_env = f"{ENV}{name}", f"{ENV}{name}_FILE"
    if value is not None and path is not None:
        raise TlsSettingError(f"both {value_env} and {file_env} are set; set only one of them")
    if path is not None:
        try:
            return Pem(path.read_bytes(), f"{file_env} ({path})")
        except FileNotFoundError:
            raise TlsSettingError(f"{file_env}: no file at {path}") from None
        except IsADirectoryError:
            raise TlsSettingError(f"{file_env}: {path} is a directory, not a PEM file") from None
        except OSError as err:
            raise TlsSettingError(f"{file_env}: cannot read {path}: {err.strerror or err}") from None
    if value is not None:
        # A value put on one line (e.g. in a .env file) may carry its newlines as "\n".
        text = value.get_secret_value()
        if "\n" not in text.strip():
            text = text.replace("\\n", "\n")
        return Pem(text.encode(), value_env)
    return None


def _certificates(pem: Pem, what: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem.data)
    except ValueError:
        raise TlsSettingError(f"{pem.source} is not a PEM {what} (-----BEGIN CERTIFICATE-----)") from None


def _private_key(pem: Pem) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem.data, password=None)
    except TypeError:
        raise TlsSettingError(f"{pem.source} is an encrypted private key; give it unencrypted (kept as a secret)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsSettingError(f"{pem.source} is not a PEM private key (-----BEGIN PRIVATE KEY-----)") from None


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def tls_config(s: Settings) -> TLSConfig | bool | None:
    """The SDK's ``tls=`` argument: a ``TLSConfig`` when any TLS material or server name is set, True for
    ``temporal_tls`` alone (the system's CAs), else None (the SDK turns TLS on when an API key is set)."""
    ca = _pem(CA, s.temporal_tls_ca, s.temporal_tls_ca_file)
    cert = _pem(CERT, s.temporal_tls_cert, s.temporal_tls_cert_file)
    key = _pem(KEY, s.temporal_tls_key, s.temporal_tls_key_file)
    server_name: str | None = s.temporal_tls_server_name
    if ca is not None:
        _certificates(ca, "CA certificate")
    if cert is not None and key is None:
        raise TlsSettingError(f"{cert.source} is set but no private key: set {ENV}{KEY}_FILE (or {ENV}{KEY}) for mutual TLS")
    if key is not None and cert is None:
        raise TlsSettingError(f"{key.source} is set but no client certificate: set {ENV}{CERT}_FILE (or {ENV}{CERT}) for mutual TLS")
    if cert is not None and key is not None:
        leaf = _certificates(cert, "client certificate")[0]
        if _public(leaf.public_key()) != _public(_private_key(key).public_key()):
            raise TlsSettingError(f"{key.source} is not the private key of the certificate in {cert.source}")
    if ca is None and cert is None and server_name is None:
        return True if s.temporal_tls else None
    return TLSConfig(
        server_root_ca_cert=ca.data if ca else None,
        domain=server_name,
        client_cert=cert.data if cert else None,
        client_private_key=key.data if key else None,
    )


_STATUS = re.compile(r'Status \{ code: (\w+), message: "((?:[^"\\]|\\.)*)"')
_CERT, _KEY = f"{ENV}{CERT}_FILE", f"{ENV}{KEY}_FILE"


def connection_error(err: Exception, address: str, tls: TLSConfig | bool | None, api_key: bool) -> DomainError | None:
    """One line for a failure that waiting will not cure (TLS, a refused credential), else None.

    The SDK reports a failed handshake, and a status from the first call, as text in a RuntimeError."""
    text = str(err)
    lower = text.lower()
    code, message = _status(err, text)
    has_cert = isinstance(tls, TLSConfig) and tls.client_cert is not None
    http_refusal = re.search(r"status: (401|403) ", text)
    if code in ("Unauthenticated", "PermissionDenied") or http_refusal:
        said = f" ({message})" if message and not http_refusal else f" (HTTP {http_refusal.group(1)})" if http_refusal else ""
        if "certificate" in message.lower():
            if has_cert:
                return DomainError(f"Temporal at {address} refused the client certificate in {_CERT}{said}: "
                                   "use one signed by the CA the server trusts")
            return DomainError(f"Temporal at {address} requires a client certificate (mutual TLS){said}: set {_CERT} and {_KEY}")
        if api_key:
            return DomainError(f"Temporal at {address} refused the API key in {API_KEY}{said}: "
                               "check the key, and that it may use this namespace")
        return DomainError(f"Temporal at {address} requires credentials{said}: set {API_KEY}, or {_CERT} and {_KEY} for mutual TLS")
    if "certificaterequired" in lower:  # a server that ends the handshake when no client certificate comes
        return DomainError(f"Temporal at {address} requires a client certificate (mutual TLS): set {_CERT} and {_KEY}")
    if "alert" in lower and ("badcertificate" in lower or "unknownca" in lower or "certificateunknown" in lower):
        return DomainError(f"Temporal at {address} refused the client certificate in {_CERT}: use one signed by the CA the server trusts")
    if "notvalidforname" in lower:
        return DomainError(f"the certificate of Temporal at {address} is not valid for the name the engine checked: "
                           f"set {ENV}TEMPORAL_TLS_SERVER_NAME to a name in it")
    if "invalidcertificate" in lower or "unknownissuer" in lower or "invalid peer certificate" in lower:
        return DomainError(f"the certificate of Temporal at {address} is not trusted ({_reason(text)}): "
                           f"set {ENV}{CA}_FILE (or {ENV}{CA}) to the CA that signed it")
    if "invalidcontenttype" in lower or "corruptmessage" in lower:
        return DomainError(f"Temporal at {address} does not answer TLS: check {ENV}TEMPORAL_ADDRESS, or turn TLS off "
                           f"(unset {ENV}TEMPORAL_TLS and the {ENV}TEMPORAL_TLS_* settings; an API key needs TLS)")
    if "frame_size_error" in lower and not tls:
        return DomainError(f"Temporal at {address} did not answer plain gRPC; if it uses TLS, set {ENV}TEMPORAL_TLS=true "
                           f"(and {ENV}{CA}_FILE for a private CA)")
    if tls and any(word in lower for word in ("handshake", "certificate", "alert")):
        return DomainError(f"TLS with Temporal at {address} failed ({_reason(text)}): check {ENV}{CA}_FILE, "
                           f"{ENV}TEMPORAL_TLS_SERVER_NAME, {_CERT} and {_KEY}")
    return None


def _status(err: Exception, text: str) -> tuple[str, str]:
    if isinstance(err, RPCError):
        return "".join(part.title() for part in err.status.name.split("_")), err.message
    found = _STATUS.search(text)
    return (found.group(1), found.group(2)) if found else ("", "")


def _reason(text: str) -> str:
    """The innermost error's name, e.g. ``UnknownIssuer``, without the transport's nesting."""
    found = re.search(r"(?:error|InvalidCertificate|AlertReceived)\((\w+)", text)
    return found.group(1) if found else "handshake failed"
