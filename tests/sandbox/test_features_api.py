"""``enabled_for``: who an instance flag lets in, by Flipper's rules, as a gateway routes."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from gitlab_sandbox.features_api import enabled_for, flipper_id, in_percentage_of_actors

IDS = range(1, 10_001)


def _flag(name: str = "duo_chat_new_model", **gates: Any) -> dict[str, Any]:
    """A ``GET /features`` entry."""
    rendered = [{"key": "boolean", "value": bool(gates.pop("boolean", False))}]
    rendered += [{"key": key, "value": value} for key, value in gates.items()]
    return {"name": name, "state": "conditional", "gates": rendered}


def _share(flag: dict[str, Any]) -> float:
    return sum(enabled_for(flag, user) for user in IDS) / len(IDS)


def test_the_bucket_is_flippers() -> None:
    """CRC-32 of the feature name and the flipper id, modulo 100 000, against p × 1000."""
    assert zlib.crc32(b"123456789") == 0xCBF43926  # the CRC-32 Ruby's Zlib.crc32 computes too
    bucket = zlib.crc32(b"duo_chat_new_modelUser:42") % 100_000
    assert in_percentage_of_actors("duo_chat_new_model", 42, bucket / 1000 + 0.001)
    assert not in_percentage_of_actors("duo_chat_new_model", 42, bucket / 1000)
    assert flipper_id(42) == "User:42" and flipper_id("Project:7") == "Project:7"


def test_zero_lets_nobody_in_and_hundred_everyone() -> None:
    """0 % of actors: none; 100 %: all; a flag never set or switched off: none."""
    assert _share(_flag(percentage_of_actors=0)) == 0
    assert _share(_flag(percentage_of_actors=100)) == 1
    assert _share(_flag(boolean=True)) == 1
    assert not enabled_for(None, 1) and not enabled_for(_flag(), 1)


@pytest.mark.parametrize("percentage", [1, 10, 25, 50, 75])
def test_a_percentage_lets_about_that_share_in(percentage: int) -> None:
    """Of 10 000 users, the share let in is within a point of the percentage."""
    assert abs(_share(_flag(percentage_of_actors=percentage)) - percentage / 100) < 0.01


def test_climbing_never_drops_an_actor() -> None:
    """Actors in at 10 % stay in at 25 %, and so on up the ladder."""
    previous: set[int] = set()
    for percentage in (1, 10, 25, 50, 75, 100):
        now = {user for user in IDS if enabled_for(_flag(percentage_of_actors=percentage), user)}
        assert previous <= now, percentage
        previous = now


def test_the_name_picks_the_actors() -> None:
    """Two flags at 25 % let different users in: the feature name is part of the hash."""
    one = {u for u in IDS if enabled_for(_flag("flag_one", percentage_of_actors=25), u)}
    two = {u for u in IDS if enabled_for(_flag("flag_two", percentage_of_actors=25), u)}
    assert one != two and 0.03 < len(one & two) / len(IDS) < 0.1  # about 25 % × 25 %


def test_groups_actors_time_and_opt_out() -> None:
    """Team members by group; listed actors; percentage of time by the roll; opt-outs win."""
    team = _flag(groups=["gitlab_team_members"], percentage_of_actors=1)
    assert enabled_for(team, 7, groups={"gitlab_team_members"})
    assert _share(team) < 0.02
    assert enabled_for(_flag(actors=["User:5"]), 5) and not enabled_for(_flag(actors=["User:5"]), 6)
    timed = _flag(percentage_of_time=30)
    assert enabled_for(timed, 1, time_roll=0.29) and not enabled_for(timed, 1, time_roll=0.3)
    opted_out = _flag(boolean=True, actors=["User:5:opt_out"])
    assert not enabled_for(opted_out, 5) and enabled_for(opted_out, 6)
