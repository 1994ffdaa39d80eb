"""The worker's health endpoint: ``GET /live`` and ``GET /ready`` for probes.

``/live`` answers 200 as soon as the process serves it: the event loop that runs the worker
is turning. ``/ready`` answers 200 only while the worker polls its task queue: 503 before it
started and from the moment it begins to drain (SIGTERM), so a load balancer or a rollout
stops counting on it while its last activities finish.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from model_migration.domain.errors import DomainError, ErrorType

log = structlog.get_logger("health")


def split_address(address: str, setting: str) -> tuple[str, int]:
    """``host:port`` (``[::]:8080`` for IPv6) into its parts; one clear line when it is not one."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise DomainError(f"{setting}={address!r} is not host:port (e.g. 0.0.0.0:8080)", type=ErrorType.INVALID_INPUT)
    return host.strip("[]") or "0.0.0.0", int(port)


class Health:
    """State the probes read, and the tiny HTTP server that answers them."""

    def __init__(self) -> None:
        self.ready = False
        self._server: asyncio.Server | None = None

    async def start(self, address: str) -> None:
        host, port = split_address(address, "MODEL_MIGRATION_HEALTH_ADDRESS")
        try:
            self._server = await asyncio.start_server(self._answer, host, port)
        except OSError as err:
            raise DomainError(
                f"cannot serve the health endpoint on {address}: {err.strerror or err}; "
                "set MODEL_MIGRATION_HEALTH_ADDRESS to a free host:port",
                type=ErrorType.INVALID_INPUT,
            ) from None
        log.info("health_serving", address=address)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            method, _, rest = request.decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            if method not in ("GET", "HEAD"):
                status, body = "405 Method Not Allowed", "method not allowed\n"
            elif path == "/live":
                status, body = "200 OK", "live\n"
            elif path == "/ready":
                status, body = ("200 OK", "ready\n") if self.ready else ("503 Service Unavailable", "not ready\n")
            else:
                status, body = "404 Not Found", "not found: try /live or /ready\n"
            payload = body.encode() if method == "GET" else b""
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
