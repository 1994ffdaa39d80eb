"""The sandbox's API modules. Each contributes routes and, optionally, its own tables.

A module is a class built with ``(store)`` that has ``register(router)`` and may define a
class attribute ``SCHEMA`` (SQL run once at start-up, ``CREATE TABLE IF NOT EXISTS ...``).
"""

from __future__ import annotations

from typing import Any, Protocol

from gitlab_sandbox.ai_gateway import AiGatewayApi
from gitlab_sandbox.epics import GitLabEpics
from gitlab_sandbox.experiments import ExperimentsApi
from gitlab_sandbox.flags import FlagsApi
from gitlab_sandbox.gitlab_api import GitLabApi
from gitlab_sandbox.gitlab_web import GitLabWeb
from gitlab_sandbox.hooks import GitLabHooks
from gitlab_sandbox.merge_requests import MergeRequestsApi
from gitlab_sandbox.pipelines import PipelinesApi
from gitlab_sandbox.repository import RepositoryApi
from gitlab_sandbox.routing import Router
from gitlab_sandbox.store import SCHEMA, Store


class Module(Protocol):
    SCHEMA: str

    def __init__(self, store: Store, *args: Any) -> None: ...

    def register(self, router: Router) -> None: ...


#: Registration order matters only where two patterns could match one path.
MODULES: list[type[Any]] = [
    GitLabApi, GitLabEpics, GitLabHooks, RepositoryApi, MergeRequestsApi, PipelinesApi, FlagsApi, ExperimentsApi, AiGatewayApi,
    GitLabWeb,  # last: its project pages catch every other path
]


def full_schema() -> str:
    return SCHEMA + "".join(getattr(module, "SCHEMA", "") for module in MODULES)


def register_all(store: Store, router: Router) -> None:
    for module in MODULES:
        module(store).register(router)
