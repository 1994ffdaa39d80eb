"""Request identity: a retried command carries the same request id and the same payload.

Temporal runs an update id once and answers a repeat with the first result. The result
carries the first command's name and digest, so a sender that reused an id for a different
command can tell, and say so, instead of taking the first answer for its own.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel


def command_digest(name: str, payload: BaseModel) -> str:
    """A short, stable digest of one command: its update name and its payload's JSON."""
    body = payload.model_dump_json(exclude_defaults=False)
    return hashlib.sha256(f"{name}\n{body}".encode()).hexdigest()[:16]
