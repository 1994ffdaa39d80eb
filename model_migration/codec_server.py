"""The Temporal Web UI's remote codec endpoint: ``POST /encode`` and ``POST /decode`` over the payload codec.

Temporal's codec server protocol: a JSON body ``{"payloads": [...]}`` of payloads in proto3 JSON (every
metadata value and the data base64), answered in the same shape. The UI sends ``X-Namespace``; the
paths are also served under a namespace segment (``/<namespace>/decode``) for ``temporal --codec-endpoint``
templates. Only the configured UI origins get CORS headers, and with a token every request but a
preflight must carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads

from model_migration.codec import KEYS_SETTING, EncryptionCodec, codec_from
from model_migration.domain.errors import DomainError

TOKEN_SETTING = "MODEL_MIGRATION_CODEC_SERVER_TOKEN"
ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"
ALLOWED_METHODS = "POST, OPTIONS"
MAX_BODY = 64 * 1024 * 1024  # a whole history's payloads; Temporal caps one payload at 2 MB


def require_codec(keys: SecretStr | None, current: str | None) -> EncryptionCodec:
    """The configured codec, or one line naming the setting: a codec server without keys decodes nothing."""
    codec = codec_from(keys, current)
    if codec is None:
        raise DomainError(f"the codec server needs {KEYS_SETTING}: set it to the keys the workers encrypt with")
    return codec


class CodecServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, codec: EncryptionCodec, *, host: str = "127.0.0.1", port: int = 8081,
        ui_origins: Sequence[str] = ("http://localhost:8233",), token: SecretStr | None = None,
    ) -> None:
        self.codec = codec
        self.ui_origins = frozenset(o.rstrip("/") for o in ui_origins)
        # Kept as the SecretStr: nothing that prints this server shows the token.
        self.token = token if token is not None and token.get_secret_value() else None
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> CodecServer:
        """Serve in a background thread (``dev-server --codec``, tests); ``stop`` ends it."""
        self._thread = threading.Thread(target=self.serve_forever, name="codec-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server_close()

    def authorized(self, header: str | None) -> bool:
        if self.token is None:
            return True
        scheme, _, value = (header or "").partition(" ")
        expected = self.token.get_secret_value()
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected.encode())


class _Handler(BaseHTTPRequestHandler):
    server: CodecServer
    protocol_version = "HTTP/1.1"
    server_version = "model-migration-codec"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # request lines carry payload sizes at most; quiet, as the UI polls it per event

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
        self._reply(HTTPStatus.NO_CONTENT, None, preflight=True)

    def do_POST(self) -> None:  # noqa: N802
        operation = self._operation()
        if operation is None:
            self._error(HTTPStatus.NOT_FOUND, "not found: POST /encode or /decode")
            return
        if not self.server.authorized(self.headers.get("Authorization")):
            self._error(HTTPStatus.UNAUTHORIZED, "a bearer token is required", bearer=True)
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._error(HTTPStatus.BAD_REQUEST, "a Content-Length of at most 64 MB is required")
            return
        body = self.rfile.read(length)
        try:
            payloads = json_format.Parse(body, Payloads(), ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError) as err:
            self._error(HTTPStatus.BAD_REQUEST, f'expected {{"payloads": [...]}} in proto3 JSON: {str(err).splitlines()[0]}')
            return
        try:
            done = Payloads(payloads=[operation(p) for p in payloads.payloads])
        except DomainError as err:
            self._error(HTTPStatus.BAD_REQUEST, str(err))
            return
        self._reply(HTTPStatus.OK, json_format.MessageToJson(done, indent=None).encode())

    def do_GET(self) -> None:  # noqa: N802
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "POST /encode or /decode")

    def _operation(self) -> Callable[[Payload], Payload] | None:
        path = self.path.split("?", 1)[0].rstrip("/")
        last = path.rsplit("/", 1)[-1]
        if path.count("/") > 2:  # "/decode" or "/<namespace>/decode"
            return None
        return {"encode": self.server.codec.encrypt, "decode": self.server.codec.decrypt}.get(last)

    def _error(self, status: HTTPStatus, message: str, *, bearer: bool = False) -> None:
        self.close_connection = True  # its body may be unread: this connection cannot carry another request
        self._reply(status, json.dumps({"error": message}).encode(), bearer=bearer)

    def _reply(self, status: HTTPStatus, body: bytes | None, *, preflight: bool = False, bearer: bool = False) -> None:
        self.send_response(status)
        origin = (self.headers.get("Origin") or "").rstrip("/")
        if origin and origin in self.server.ui_origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Vary", "Origin")
            if preflight:
                self.send_header("Access-Control-Allow-Methods", ALLOWED_METHODS)
                self.send_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
                self.send_header("Access-Control-Max-Age", "600")
        if bearer:
            self.send_header("WWW-Authenticate", 'Bearer realm="codec"')
        if body is not None:
            self.send_header("Content-Type", "application/json")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        if body:
            self.wfile.write(body)
