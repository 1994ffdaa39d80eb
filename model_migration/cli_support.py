"""What every command module shares: who the actor is, and running one coroutine with a client."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import Client

from model_migration.settings import Settings

T = TypeVar("T")


def actor_or_user(given: str) -> str:
    """The ``--actor`` given, else the local user's name."""
    if given:
        return given
    try:
        return getpass.getuser()
    except Exception:  # no user database entry, e.g. in a container
        return "cli"


def with_client(work: Callable[[Client], Awaitable[T]]) -> T:
    """Connect to Temporal with the settings, run ``work`` with the client, return its answer."""
    from model_migration.temporal import connect

    async def main() -> T:
        return await work(await connect(Settings()))

    return asyncio.run(main())
