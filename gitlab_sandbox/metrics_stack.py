"""The rollout analysis's metrics on one machine: the simulated AI gateway and a real Prometheus
scraping it every second, both on free loopback ports. The demo and the tests start it; the caller
names the Prometheus binary (``model-migration setup-prometheus`` installs Debian's).

Prometheus's scrape manager applies new targets on a 5-second tick, so the first scrape lands
about 6 s after start; ``wait_ready`` waits for it, so the caller's clock starts with data
flowing. ``launch`` alone returns at once with both URLs known, so a caller can wait in the
background while it starts other things. ``stop`` ends Prometheus by its process id.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from gitlab_sandbox.gateway_sim import GatewaySim

JOB = "ai-gateway"
READY_TIMEOUT = 30.0
HOST = "127.0.0.1"


class MetricsStackError(RuntimeError):
    """Prometheus exited or never scraped the gateway; one line with the last line it logged."""


def prometheus_config(target: str, others: dict[str, str] | None = None) -> str:
    """Prometheus scraping the gateway ``target``, and each of ``others`` (``{job: host:port}``)."""
    jobs = {JOB: target, **(others or {})}
    return "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n" + "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['{address}']\n" for job, address in jobs.items()
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class MetricsStack:
    """The gateway sim and a Prometheus (``binary``) scraping it, with its config, TSDB and log under ``workdir``."""

    def __init__(self, workdir: Path, binary: Path, *, seed: int = 7, tick_seconds: float = 0.1) -> None:
        self.workdir, self.binary = workdir, binary
        self.gateway = GatewaySim(seed=seed, tick_seconds=tick_seconds, host=HOST)
        self.gateway_url = ""
        self.prometheus_url = ""
        #: Seconds from ``launch`` until Prometheus had scraped the gateway once.
        self.ready_after = 0.0
        self._launched = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._others: dict[str, str] = {}
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def log(self) -> Path:
        return self.workdir / "prometheus.log"

    def launch(self) -> None:
        """Start the gateway and Prometheus without waiting for the first scrape."""
        self._launched = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.gateway_url = self.gateway.start()
        config = self._write_config()
        port = _free_port()
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(
                [str(self.binary), f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
                 "--storage.tsdb.retention.time=1h", f"--web.listen-address={HOST}:{port}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.prometheus_url = f"http://{HOST}:{port}"

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Return once Prometheus has scraped the gateway; raise ``MetricsStackError`` if it exits or takes longer."""
        process = self._process
        if process is None:
            raise MetricsStackError("the metrics stack was not launched")
        query = urllib.parse.urlencode({"query": f'up{{job="{JOB}"}} == 1'})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise MetricsStackError(f"prometheus exited with {process.returncode}: {self._tail()}")
            try:
                with self._opener.open(f"{self.prometheus_url}/api/v1/query?{query}", timeout=2) as answer:
                    if json.loads(answer.read())["data"]["result"]:
                        self.ready_after = time.monotonic() - self._launched
                        return
            except (OSError, ValueError, KeyError):
                pass  # not listening yet
            time.sleep(0.1)
        raise MetricsStackError(f"prometheus did not scrape the gateway sim within {timeout:g}s: {self._tail()}")

    def start(self, timeout: float = READY_TIMEOUT) -> MetricsStack:
        """``launch`` then ``wait_ready``; whatever fails, nothing is left running."""
        try:
            self.launch()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _write_config(self) -> Path:
        config = self.workdir / "prometheus.yml"
        config.write_text(prometheus_config(self.gateway_url.removeprefix("http://"), self._others), encoding="utf-8")
        return config

    def scrape(self, job: str, target: str | None) -> None:
        """Scrape ``target`` (``host:port``) too, as ``job``; None stops scraping it. Prometheus
        reloads its configuration on SIGHUP and applies new targets on its next 5-second tick."""
        if target is None:
            self._others.pop(job, None)
        else:
            self._others[job] = target
        self._write_config()
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """SIGTERM to Prometheus's process id (it shuts down cleanly), SIGKILL if it lingers; then the gateway."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.gateway.stop()

    def __enter__(self) -> MetricsStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tail(self) -> str:
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "(no output)"
        return lines[-1] if lines else "(no output)"
