"""Helpers shared by the GitLab client and sandbox tests."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING
from urllib.parse import quote

import requests

from model_migration.domain.models import IssueDraft

if TYPE_CHECKING:
    from tests.conftest import SandboxInfo


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def draft(**overrides: object) -> IssueDraft:
    key = unique("issue")
    fields: dict[str, object] = {
        "title": f"AI Model Migration - Anthropic/claude-test/{key}",
        "description": "## Overview\n\n- [ ] add the model",
        "marker": f"migration:{key}",
        "labels": ["AI Model Migration", "group::ai framework"],
    }
    return IssueDraft(**{**fields, **overrides})  # type: ignore[arg-type]


def api(sandbox: SandboxInfo, path: str, **params: object) -> requests.Response:
    project = quote(sandbox.project_path, safe="")
    return requests.get(
        f"{sandbox.url}/api/v4/projects/{project}{path}",
        params=params,  # type: ignore[arg-type]
        headers={"PRIVATE-TOKEN": sandbox.token},
        timeout=5,
    )
