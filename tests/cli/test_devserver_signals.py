"""``model-migration dev-server`` takes its Temporal server down with it on SIGTERM and SIGINT."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from model_migration.devserver import free_port
from tests.cli.run import env


def _read_line_with(proc: subprocess.Popen[str], text: str, timeout: float) -> str:
    """The first stdout line containing ``text``; read in a thread, as a pipe read cannot time out."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if text in line:
            return line
    raise AssertionError(f"no {text!r} from the dev server within {timeout:.0f}s (exit code {proc.poll()})")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    """True once ``pid`` has exited (a zombie counts as gone), False if it outlives ``timeout``."""
    end = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.1)
    return not _alive(pid)


def _kill_all(proc: subprocess.Popen[str], servers: list[int]) -> None:
    """Whatever a failed test left running: the CLI, then the servers it started."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pid in servers:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_temporal_server_it_started(sig: signal.Signals, tmp_path: Path) -> None:
    """The signal goes to the CLI process alone; the temporal child must be gone afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "model_migration.cli", "dev-server", "--port", str(port), "--ui-port", str(free_port()),
         "--state-dir", str(tmp_path)],
        env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        start_new_session=True,  # so no terminal or test runner signal reaches the child for it
    )
    servers: list[int] = []
    try:
        _read_line_with(proc, "State:", timeout=90)
        servers = [c for c in _children(proc.pid) if b"start-dev" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(servers) == 1, _children(proc.pid)
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        assert _wait_gone(servers[0]), f"temporal server {servers[0]} outlived the CLI"
    finally:
        _kill_all(proc, servers)
