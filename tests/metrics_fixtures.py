"""A session-wide metrics stack: the simulated AI gateway and a real Prometheus scraping it every second.

Prometheus's scrape manager applies new targets on a 5-second tick, so the first scrape lands
about 6 s after start; the fixture waits for it, so a test's clock starts with data flowing.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from gitlab_sandbox.gateway_sim import GatewaySim
from model_migration.devserver import free_port
from model_migration.domain.errors import DomainError
from model_migration.prometheus_setup import check_prometheus

JOB = "ai-gateway"
READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class MetricsStack:
    prometheus_url: str
    gateway_url: str
    gateway: GatewaySim
    #: Seconds from the fixture's start until Prometheus had scraped the gateway once.
    ready_after: float


def prometheus_config(target: str) -> str:
    return (
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: ['{target}']\n"
    )


@pytest.fixture(scope="session")
def metrics_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsStack]:
    started = time.monotonic()
    binary = _prometheus()
    workdir = tmp_path_factory.mktemp("prometheus")
    gateway = GatewaySim(seed=7, tick_seconds=0.1)
    gateway_url = gateway.start()
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(gateway_url.removeprefix("http://")), encoding="utf-8")
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}", "--storage.tsdb.retention.time=1h",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_first_scrape(url, process, log)
        yield MetricsStack(prometheus_url=url, gateway_url=gateway_url, gateway=gateway, ready_after=time.monotonic() - started)
    finally:
        process.terminate()  # SIGTERM to its process id: Prometheus shuts down cleanly
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        gateway.stop()


def _prometheus() -> Path:
    """The binary; without it the test fails (never skips) naming the install command."""
    try:
        return check_prometheus()
    except DomainError as err:
        missing = str(err)
    pytest.fail(missing, pytrace=False)


def _wait_for_first_scrape(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with requests.Session() as session:
        session.trust_env = False
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited with {process.returncode}: {_tail(log)}", pytrace=False)
            try:
                answer = session.get(f"{url}/api/v1/query", params={"query": f'up{{job="{JOB}"}} == 1'}, timeout=2)
                if answer.ok and answer.json()["data"]["result"]:
                    return
            except requests.RequestException:
                pass  # not listening yet
            time.sleep(0.1)
    pytest.fail(f"prometheus did not scrape the gateway sim within {READY_TIMEOUT:g}s: {_tail(log)}", pytrace=False)


def _tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"
