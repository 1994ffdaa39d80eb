"""The gateway's flag gates: Unleash's hash in pure Python against the SDK's own, a project flag
evaluated as the Unleash engine evaluates it, and each gate following a real flag (the sandbox's
project and instance flags, a flag on the real Unleash server through the Python SDK)."""

from __future__ import annotations

import fnmatch
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import mmh3
import pytest
from UnleashClient.utils import normalized_hash as sdk_normalized_hash
from yggdrasil_engine.engine import UnleashEngine

from gitlab_sandbox.flag_routers import (
    TEAM_MEMBER_FIELD,
    InstanceFlagGate,
    ProjectFlagGate,
    UnleashGate,
    murmur3_32,
    normalized_hash,
    project_flag_enabled,
)
from gitlab_sandbox.gateway_sim import FeatureTraffic, GatewaySim
from model_migration.clients import flag_targets
from model_migration.clients.flag_targets import GitLabInstanceFlag, GitLabProjectFlag, UnleashFlag
from model_migration.clients.gitlab import GitLabClient
from model_migration.clients.unleash import UnleashAdmin
from model_migration.domain.rollout import Audience, LadderStep
from tests.unleash_fixtures import UnleashServer

if TYPE_CHECKING:
    from tests.conftest import SandboxInfo

USERS = [f"User:{n}" for n in range(1, 1001)]
TEAM = ("User:7", "User:8", "User:9")


def eventually(check: Callable[[], None], timeout: float = 8.0) -> None:
    """``check`` until it passes: the gates poll their flag, so a change shows within a refresh."""
    end = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > end:
                raise
        time.sleep(0.1)


def on(gate: Callable[[str], bool]) -> set[str]:
    return {u for u in USERS if gate(u)}


def test_murmur3_is_the_unleash_sdks_hash() -> None:
    """Every tail length, non-ASCII text and seeds: the same numbers as mmh3, and the same buckets as the Python SDK."""
    words = ["", "a", "ab", "abc", "abcd", "abcde", "default:User:42", "grüße:ユーザー", *USERS[:200]]
    for word in words:
        for seed in (0, 1, 0xDEADBEEF):
            assert murmur3_32(word.encode(), seed) == mmh3.hash(word, seed=seed, signed=False), (word, seed)
    assert all(normalized_hash(u, "duo_chat") == sdk_normalized_hash(u, "duo_chat") for u in USERS)


def _gitlab_flag(active: bool = True) -> dict[str, Any]:
    """A project flag as the sandbox renders it: production 25 % and a team list, staging 50 % by user id, review apps everyone."""

    def scoped(env: str) -> list[dict[str, Any]]:
        return [{"id": 1, "environment_scope": env}]

    return {"name": "duo-chat-model", "active": active, "strategies": [
        {"name": "flexibleRollout", "parameters": {"groupId": "default", "rollout": "25", "stickiness": "default"},
         "scopes": scoped("production")},
        {"name": "gitlabUserList", "parameters": {}, "scopes": scoped("production"), "user_list": {"user_xids": ",".join(TEAM)}},
        {"name": "gradualRolloutUserId", "parameters": {"groupId": "duo", "percentage": "50"}, "scopes": scoped("staging")},
        {"name": "default", "parameters": {}, "scopes": scoped("review/*")},
    ]}  # fmt: skip


def _as_gitlab_serves_it(flag: dict[str, Any], environment: str) -> dict[str, Any]:
    """GitLab's Unleash API for one environment: the strategies scoped to it, a user list as userWithId."""

    def served(s: dict[str, Any]) -> dict[str, Any]:
        if s["name"] == "gitlabUserList":
            return {"name": "userWithId", "parameters": {"userIds": s["user_list"]["user_xids"]}}
        return {"name": s["name"], "parameters": s["parameters"]}

    scoped = [s for s in flag["strategies"] if any(fnmatch.fnmatchcase(environment, c["environment_scope"]) for c in s["scopes"])]
    strategies = [served(s) for s in scoped]
    return {"version": 2, "features": [{"name": flag["name"], "enabled": flag["active"] and bool(strategies), "strategies": strategies}]}


@pytest.mark.parametrize("environment", ["production", "staging", "review/mr-12", "development"])
def test_a_project_flag_decides_as_the_unleash_engine(environment: str) -> None:
    """For every user, project_flag_enabled agrees with Unleash's own engine (yggdrasil, inside the Python SDK) given what GitLab serves."""
    flag = _gitlab_flag()
    engine = UnleashEngine()
    engine.take_state(json.dumps(_as_gitlab_serves_it(flag, environment)))
    ours = {u for u in USERS if project_flag_enabled(flag, environment, u)}
    theirs = {u for u in USERS if engine.check_enabled(flag["name"], {"userId": u}).is_enabled}
    assert ours == theirs
    expected = {"production": (200, 350), "staging": (400, 600), "review/mr-12": (1000, 1000), "development": (0, 0)}[environment]
    assert expected[0] <= len(ours) <= expected[1], len(ours)
    if environment == "production":
        assert set(TEAM) <= ours
    assert not any(project_flag_enabled(_gitlab_flag(active=False), environment, u) for u in USERS)
    assert not project_flag_enabled(None, environment, USERS[0])


def test_a_gate_routes_one_feature_and_none_undoes_it() -> None:
    """set_gate sends the users its gate lets in to the candidate; the feature's percentage no longer counts; None goes back to it."""
    sim = GatewaySim(seed=8)
    sim.configure({"f": FeatureTraffic(candidate="m2", baseline="m1", percentage=100), "g": FeatureTraffic(candidate="m2", baseline="m1")})
    sim.set_gate("f", lambda user: user in TEAM)
    assert {u for u in USERS if sim.route("f", u) == "m2"} == set(TEAM)
    assert all(sim.route("g", u) == "m1" for u in USERS)  # another feature keeps its own percentage
    sim.set_gate("f", None)
    assert all(sim.route("f", u) == "m2" for u in USERS)


@pytest.fixture
def gitlab(gitlab_sandbox: SandboxInfo) -> Iterator[GitLabClient]:
    with GitLabClient(gitlab_sandbox.url, gitlab_sandbox.token, gitlab_sandbox.project_path, gitlab_sandbox.group_path) as client:
        yield client


def test_the_project_flag_gate_follows_the_flag(gitlab_sandbox: SandboxInfo, gitlab: GitLabClient) -> None:
    """Team members, then 25 % and team members, then deleted: the gate reads each from the sandbox."""
    target = GitLabProjectFlag(gitlab, f"mm-gate-{uuid.uuid4().hex[:8]}", team_members=TEAM)
    with ProjectFlagGate(gitlab_sandbox.url, gitlab_sandbox.token, gitlab_sandbox.project_path, target.name, refresh=0.1) as gate:
        assert on(gate) == set()
        target.apply(LadderStep(audience=Audience.TEAM_MEMBERS, percentage=0))
        eventually(lambda: _equal(on(gate), set(TEAM)))
        target.apply(LadderStep(percentage=25))
        eventually(lambda: _between(len(on(gate)), 200, 350))
        assert set(TEAM) <= on(gate) and on(gate) == {u for u in USERS if project_flag_enabled(gate.found, "production", u)}
        target.remove()
        eventually(lambda: _equal(on(gate), set()))


def test_the_instance_flag_gate_follows_the_flag(gitlab_sandbox: SandboxInfo, gitlab: GitLabClient) -> None:
    """Team members are the gitlab_team_members group; a percentage of actors is Flipper's crc32 bucket."""
    target = GitLabInstanceFlag(gitlab, f"mm_gate_{uuid.uuid4().hex[:8]}")
    with InstanceFlagGate(gitlab_sandbox.url, gitlab_sandbox.token, target.name, team_members=TEAM, refresh=0.1) as gate:
        target.apply(LadderStep(audience=Audience.TEAM_MEMBERS, percentage=0))
        eventually(lambda: _equal(on(gate), set(TEAM)))
        target.apply(LadderStep(percentage=25))
        eventually(lambda: _between(len(on(gate)), 200, 350))
        target.remove()
        eventually(lambda: _equal(on(gate), set()))


def test_the_unleash_gate_asks_the_python_sdk(unleash_server: UnleashServer) -> None:
    """The real UnleashClient with a production backend token: team members by the gitlabTeamMember
    context field, 25 % exactly the users Unleash's hash puts in (group id the flag's name), off is
    nobody, and only production counts."""
    assert TEAM_MEMBER_FIELD == flag_targets.TEAM_MEMBER_FIELD
    admin = UnleashAdmin(unleash_server.url, unleash_server.admin_token)
    try:
        target = UnleashFlag(admin, f"mm-gate.{uuid.uuid4().hex[:8]}", environments={"staging": "development", "production": "production"})
        target.apply(LadderStep(environment="staging", percentage=100))
        with UnleashGate(unleash_server.url, unleash_server.backend_tokens["production"], target.name, team_members=TEAM) as gate:
            assert on(gate) == set()  # on in development only
            target.apply(LadderStep(audience=Audience.TEAM_MEMBERS, percentage=0))
            eventually(lambda: _equal(on(gate), set(TEAM)))
            target.apply(LadderStep(percentage=25))
            hashed = {u for u in USERS if normalized_hash(u, target.name) <= 25}
            eventually(lambda: _equal(on(gate), hashed | set(TEAM)))
            assert 200 <= len(hashed) <= 300
            target.off()
            eventually(lambda: _equal(on(gate), set()))
            target.remove()
    finally:
        admin.close()


def _equal(seen: set[str], wanted: set[str]) -> None:
    assert seen == wanted, (len(seen), sorted(seen)[:5])


def _between(count: int, low: int, high: int) -> None:
    assert low <= count <= high, count
