"""Unusable codec settings end a command with one line naming the setting, before it connects."""

from __future__ import annotations

import base64
import json

import pytest

from tests.cli.run import cli, env

KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(("settings", "expected"), [
    ({"MODEL_MIGRATION_CODEC_KEYS": "{not json"}, "error: MODEL_MIGRATION_CODEC_KEYS is not JSON"),
    ({"MODEL_MIGRATION_CODEC_KEYS": json.dumps({"k1": KEY[:-8]})}, "error: MODEL_MIGRATION_CODEC_KEYS: key 'k1' is"),
    ({"MODEL_MIGRATION_CODEC_KEYS": json.dumps({"k1": KEY}), "MODEL_MIGRATION_CODEC_KEY_ID": "k2"},
     "error: MODEL_MIGRATION_CODEC_KEY_ID 'k2' is not among the keys of MODEL_MIGRATION_CODEC_KEYS: k1"),
])
def test_bad_codec_settings_are_one_line(settings: dict[str, str], expected: str) -> None:
    """A bad key or a current id not among the keys: exit 2, one line, no key shown."""
    done = cli("status", "migration:anthropic/claude-sonnet-4-5/v1", environ=env(**settings))
    assert done.returncode == 2 and done.stderr.startswith(expected) and done.stderr.count("\n") == 1, done.stderr
    assert KEY[:-8] not in done.stderr
