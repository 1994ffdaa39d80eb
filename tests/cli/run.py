"""Run the CLI as a user does, in a subprocess, with no Temporal server unless a test starts one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from model_migration.devserver import free_port


def env(**extra: str) -> dict[str, str]:
    """The caller's environment without MODEL_MIGRATION_* settings, pointed at a Temporal
    address where nothing listens, so a command that wrongly connected would say so."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_MIGRATION_")}
    return {**keep, "MODEL_MIGRATION_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}", "PYTHONUNBUFFERED": "1", **extra}


def cli(*args: str, environ: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_migration.cli", *args], env=environ or env(),
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def json_lines(text: str) -> list[dict[str, object]]:
    """Every non-empty line of ``text`` as a JSON object; fails on the first line that is not one."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return records
