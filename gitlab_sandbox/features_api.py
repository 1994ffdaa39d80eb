"""Who an instance feature flag lets in: Flipper's gates, evaluated as GitLab evaluates them.

The Features API itself (``GET /features``, ``POST`` and ``DELETE /features/:name``, admin only)
is ``gitlab_sandbox.features``, served through ``FlagsApi``. This module is its other half, and
pure: a simulated AI gateway routes a request to the new model exactly when GitLab's
``Feature.enabled?(flag, user)`` would say yes, given the flag as ``GET /features`` shows it.

Flipper (``lib/flipper/feature.rb``) lets an actor in when any gate is open:

- ``boolean`` true, or ``percentage_of_time`` 100: everyone;
- ``actors``: the actor's flipper id (``User:42``) is listed;
- ``groups``: the actor belongs to a listed group (``gitlab_team_members``); an unregistered
  group lets nobody in;
- ``percentage_of_actors`` p: ``crc32(feature name + flipper id) % 100_000 < p * 1_000``
  (``lib/flipper/gates/percentage_of_actors.rb``), so an actor in at 10 % stays in at 25 %;
- ``percentage_of_time`` p: a fresh ``rand < p / 100`` on every check.

GitLab (``lib/feature.rb``) then refuses an actor who opted out (``User:42:opt_out`` listed).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Collection, Mapping
from typing import Any

SCALING_FACTOR = 1_000  # Flipper's: percentages to three decimal places


def flipper_id(actor: str | int) -> str:
    """A user id becomes ``User:<id>``; a string is taken as a flipper id already."""
    return f"User:{actor}" if isinstance(actor, int) else actor


def in_percentage_of_actors(feature_name: str, actor: str | int, percentage: float) -> bool:
    """Flipper's bucket: the same actor is in at every percentage at or above its own."""
    if percentage <= 0:
        return False
    if percentage >= 100:
        return True
    bucket = zlib.crc32(f"{feature_name}{flipper_id(actor)}".encode()) % (100 * SCALING_FACTOR)
    return bucket < percentage * SCALING_FACTOR


def enabled_for(
    feature_state: Mapping[str, Any] | None,
    actor_id: str | int,
    *,
    groups: Collection[str] = (),
    time_roll: float | None = None,
) -> bool:
    """Whether GitLab lets ``actor_id`` in. ``feature_state`` is one entry of ``GET /features``
    (``name``, ``state``, ``gates``); ``None`` is a flag never set, which is off (GitLab's
    default for a flag without a definition). ``actor_id`` is a flipper id (``User:42``) or a
    user id; ``groups`` are the Flipper groups the actor belongs to. ``time_roll`` is the
    uniform draw in [0, 1) for a ``percentage_of_time`` gate (a fresh one when ``None``)."""
    if not feature_state:
        return False
    gates = {gate["key"]: gate.get("value") for gate in feature_state.get("gates") or []}
    actor = flipper_id(actor_id)
    actors = set(gates.get("actors") or ())
    percentage_of_time = float(gates.get("percentage_of_time") or 0)
    opened = (
        gates.get("boolean") is True
        or percentage_of_time >= 100
        or actor in actors
        or bool(set(groups) & set(gates.get("groups") or ()))
        or in_percentage_of_actors(str(feature_state["name"]), actor, float(gates.get("percentage_of_actors") or 0))
        or (percentage_of_time > 0 and (random.random() if time_roll is None else time_roll) < percentage_of_time / 100)
    )
    return opened and f"{actor}:opt_out" not in actors
