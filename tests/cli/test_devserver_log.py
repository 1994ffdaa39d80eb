"""The dev server's own warnings (history size, continue-as-new) reach its log file, not the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_migration.devserver import DevServer


def test_server_warnings_go_to_the_log_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """At --log-level warn the server writes its warnings to <state>/temporal.log; the terminal stays clean."""
    server = DevServer(tmp_path / "temporal", headless=True)
    assert server.command()[server.command().index("--log-level") + 1] == "warn"
    with server:
        pass
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    log = server.log_file.read_text()
    assert server.log_file == tmp_path / "temporal" / "temporal.log"
    assert "level=WARN" in log, log[-2000:]
