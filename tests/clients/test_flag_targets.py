"""``FlagTarget`` on the sandbox: GitLab's instance flags (a staging instance of its own) and a
project flag with per-environment strategies, and on a real Unleash server, driven along the
whole default ladder."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from gitlab_sandbox.gitlab import GitLabSandbox
from model_migration.clients.flag_targets import TEAM_MEMBER_FIELD, FlagTarget, GitLabInstanceFlag, GitLabProjectFlag, UnleashFlag
from model_migration.clients.gitlab import GitLabClient
from model_migration.clients.unleash import Constraint, Strategy, UnleashAdmin
from model_migration.domain.errors import ErrorType, GitLabError
from model_migration.domain.models import FlagStrategy
from model_migration.domain.rollout import DEFAULT_LADDER, PRODUCTION, Audience, LadderStep, RolloutError
from tests.unleash_fixtures import UnleashServer

if TYPE_CHECKING:
    from tests.conftest import SandboxInfo

TEAM = "GitLab team members"
#: The state after each step of DEFAULT_LADDER: staging 50, 100; production team members, 1 → 100.
EXPECTED = [
    {"staging": "50 % of actors", PRODUCTION: "off"},
    {"staging": "100 % of actors", PRODUCTION: "off"},
    {"staging": "100 % of actors", PRODUCTION: TEAM},
    *({"staging": "100 % of actors", PRODUCTION: f"{p} % of actors, {TEAM}"} for p in (1, 10, 25, 50, 75)),
    {"staging": "100 % of actors", PRODUCTION: "100 % of actors"},
]


@dataclass
class Staging:
    """A second GitLab instance: instance flags have no environments, staging is its own GitLab."""

    box: GitLabSandbox
    client: GitLabClient


@pytest.fixture(scope="module")
def staging_gitlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staging]:
    token = secrets.token_urlsafe(24)
    state = Path(tmp_path_factory.mktemp("staging")) / "gitlab.sqlite"
    with GitLabSandbox(state, token=token, evaluation_project=None) as box:
        client = GitLabClient(box.url, token, box.project_path, box.group_path)
        yield Staging(box, client)
        client.close()


@pytest.fixture
def staging(staging_gitlab: Staging) -> GitLabClient:
    return staging_gitlab.client


def _writes(*boxes: GitLabSandbox, path: str) -> Callable[[], int]:
    def count() -> int:
        return sum(1 for box in boxes for _, method, where, _, _ in box.requests.entries() if method != "GET" and path in where)

    return count


def _instance(gitlab_client: GitLabClient, staging: GitLabClient) -> GitLabInstanceFlag:
    return GitLabInstanceFlag(gitlab_client, f"mm_target_{uuid.uuid4().hex[:8]}", environments={"staging": staging})


def _project(gitlab_client: GitLabClient) -> GitLabProjectFlag:
    return GitLabProjectFlag(gitlab_client, f"mm-target-{uuid.uuid4().hex[:8]}", team_members=["101", "102"])


def _climb(target: FlagTarget, writes: Callable[[], object]) -> None:
    """DEFAULT_LADDER in order: the state after each step, and each step applied twice writes once."""
    assert target.state() == {"staging": "off", PRODUCTION: "off"}
    for step, expected in zip(DEFAULT_LADDER, EXPECTED, strict=True):
        target.apply(step)
        assert target.state() == expected, step.label
        before = writes()
        target.apply(step)
        assert writes() == before, f"{step.label} applied twice wrote again"
        assert target.state() == expected


def test_instance_flag_climbs_the_default_ladder(
    gitlab_sandbox: SandboxInfo, gitlab_client: GitLabClient, staging_gitlab: Staging
) -> None:
    """Each step sets exactly its gates; a step applied again writes nothing; remove twice."""
    target = _instance(gitlab_client, staging_gitlab.client)
    _climb(target, _writes(gitlab_sandbox.server, staging_gitlab.box, path=f"/features/{target.name}"))
    production = gitlab_client.get_feature(target.name)
    assert production is not None and production.state == "on"
    assert [g.key for g in production.gates] == ["boolean"]
    target.remove()
    target.remove()
    assert target.state() == {"staging": "off", PRODUCTION: "off"}
    assert gitlab_client.get_feature(target.name) is None and staging_gitlab.client.get_feature(target.name) is None


def test_instance_flag_gates_as_gitlab_shows_them(gitlab_client: GitLabClient, staging: GitLabClient) -> None:
    """Team members are the gitlab_team_members group; a percentage keeps that group."""
    target = _instance(gitlab_client, staging)
    target.apply(LadderStep(audience=Audience.TEAM_MEMBERS, percentage=0))
    flag = gitlab_client.get_feature(target.name)
    assert flag is not None and flag.state == "conditional"
    assert {g.key: g.value for g in flag.gates} == {"boolean": False, "groups": ["gitlab_team_members"]}
    target.apply(LadderStep(percentage=25))
    flag = gitlab_client.get_feature(target.name)
    assert flag is not None
    assert {g.key: g.value for g in flag.gates} == {
        "boolean": False, "percentage_of_actors": 25, "groups": ["gitlab_team_members"],
    }  # fmt: skip
    target.remove()


def test_instance_flag_rolls_back_and_comes_down(gitlab_client: GitLabClient, staging: GitLabClient) -> None:
    """off() in one environment or all; a lower step after 100 % clears first (GitLab refuses a
    percentage on a fully enabled flag); gates a human added are cleared by the next step."""
    target = _instance(gitlab_client, staging)
    target.apply(LadderStep(environment="staging", percentage=100))
    target.apply(LadderStep(percentage=100))
    target.off("staging")
    assert target.state() == {"staging": "off", PRODUCTION: "100 % of actors"}
    target.apply(LadderStep(percentage=10))
    assert target.state()[PRODUCTION] == f"10 % of actors, {TEAM}"
    gitlab_client.set_feature(target.name, 30, key="percentage_of_time")
    gitlab_client.set_feature(target.name, True, user="dri-chat")
    assert target.state()[PRODUCTION].startswith(f"10 % of actors, {TEAM}, 30 % of the time, actor User:")
    target.apply(LadderStep(percentage=10))
    assert target.state()[PRODUCTION] == f"10 % of actors, {TEAM}"
    target.off()
    target.off()
    assert target.state() == {"staging": "off", PRODUCTION: "off"}
    target.remove()


def test_instance_flag_without_that_environment(gitlab_client: GitLabClient) -> None:
    """A step for an environment with no instance is refused before any request."""
    target = GitLabInstanceFlag(gitlab_client, "mm_no_staging")
    calls = gitlab_client.calls
    with pytest.raises(RolloutError, match="no GitLab instance is configured for 'staging'") as error:
        target.apply(DEFAULT_LADDER[0])
    assert error.value.type == ErrorType.INVALID_INPUT and gitlab_client.calls == calls
    with pytest.raises(ValueError):
        GitLabInstanceFlag(gitlab_client, "x", environments={PRODUCTION: gitlab_client})


def test_instance_flag_with_a_guest_token_is_auth(gitlab_sandbox: SandboxInfo) -> None:
    """A token without admin rights gets GitLab's 403, as an auth error naming admin."""
    with GitLabClient(gitlab_sandbox.url, gitlab_sandbox.guest_token, gitlab_sandbox.project_path) as guest:
        with pytest.raises(GitLabError) as error:
            GitLabInstanceFlag(guest, "mm_guest").off()
    assert (error.value.type, error.value.status) == (ErrorType.GITLAB_AUTH, 403)
    assert "needs an administrator's token" in str(error.value)


def test_project_flag_climbs_the_default_ladder(gitlab_sandbox: SandboxInfo, gitlab_client: GitLabClient) -> None:
    """Per-environment strategies; a step applied again writes nothing; remove twice."""
    target = _project(gitlab_client)
    _climb(target, _writes(gitlab_sandbox.server, path="/feature_flags"))
    flag = gitlab_client.get_project_flag(target.name)
    assert flag is not None
    assert sorted((s.name, s.scopes) for s in flag.strategies) == [("default", [PRODUCTION]), ("default", ["staging"])]
    target.remove()
    target.remove()
    assert gitlab_client.get_project_flag(target.name) is None
    assert gitlab_client.get_flag_user_list(target.user_list_name) is None


def test_project_flag_strategies(gitlab_client: GitLabClient) -> None:
    """flexibleRollout and the team list share production; the percentage changes in place."""
    target = _project(gitlab_client)
    target.apply(LadderStep(environment="staging", percentage=50))
    target.apply(LadderStep(audience=Audience.TEAM_MEMBERS, percentage=0))
    target.apply(LadderStep(percentage=10))
    flag = gitlab_client.get_project_flag(target.name)
    assert flag is not None and flag.active
    by_env = {(s.scopes[0], s.name): s for s in flag.strategies}
    assert sorted(by_env) == [(PRODUCTION, "flexibleRollout"), (PRODUCTION, "gitlabUserList"), ("staging", "flexibleRollout")]
    rollout = by_env[(PRODUCTION, "flexibleRollout")]
    assert rollout.parameters == {"groupId": "default", "rollout": "10", "stickiness": "default"}
    team = gitlab_client.get_flag_user_list(target.user_list_name)
    assert team is not None and team.user_xids == ["101", "102"]
    assert by_env[(PRODUCTION, "gitlabUserList")].user_list_id == team.id
    target.apply(LadderStep(percentage=25))
    raised = gitlab_client.get_project_flag(target.name)
    assert raised is not None
    again = {(s.scopes[0], s.name): s for s in raised.strategies}
    assert again[(PRODUCTION, "flexibleRollout")].id == rollout.id
    assert again[(PRODUCTION, "flexibleRollout")].parameters["rollout"] == "25"
    assert again[("staging", "flexibleRollout")] == by_env[("staging", "flexibleRollout")]
    target.remove()


def test_project_flag_off_and_back(gitlab_client: GitLabClient) -> None:
    """off(env) drops that environment's strategies; off() makes the flag inactive; a step after
    that turns it active again with only that environment's strategies."""
    target = _project(gitlab_client)
    target.off()  # no flag yet: nothing to do
    target.apply(LadderStep(environment="staging", percentage=100))
    target.apply(LadderStep(percentage=50))
    target.off("staging")
    assert target.state() == {"staging": "off", PRODUCTION: f"50 % of actors, {TEAM}"}
    target.off()
    target.off()
    assert target.state() == {"staging": "off", PRODUCTION: "off"}
    flag = gitlab_client.get_project_flag(target.name)
    assert flag is not None and not flag.active and flag.strategies == []
    target.apply(LadderStep(percentage=50))
    assert target.state() == {"staging": "off", PRODUCTION: f"50 % of actors, {TEAM}"}
    target.remove()


def test_project_flag_refusals(gitlab_client: GitLabClient) -> None:
    """No team members for a team-members step, or a strategy shared between environments."""
    bare = GitLabProjectFlag(gitlab_client, f"mm-bare-{uuid.uuid4().hex[:8]}")
    with pytest.raises(RolloutError, match="no team members"):
        bare.apply(LadderStep(audience=Audience.TEAM_MEMBERS, percentage=0))
    bare.apply(LadderStep(percentage=10))  # without team members, a percentage alone
    assert bare.state()[PRODUCTION] == "10 % of actors"
    gitlab_client.update_project_flag(bare.name, strategies=[FlagStrategy(name="default", scopes=["*"])])
    assert bare.state() == {"staging": "100 % of actors", PRODUCTION: "100 % of actors"}
    with pytest.raises(RolloutError, match="default strategy for \\*"):
        bare.apply(LadderStep(percentage=10))
    bare.off(PRODUCTION)  # a rollback still works: it removes the shared strategy
    assert bare.state() == {"staging": "off", PRODUCTION: "off"}
    bare.remove()


# -- UnleashFlag on the real Unleash server (tests/unleash_fixtures.py) ------------------------

#: The ladder's environments on the test server, which has only Unleash's own two.
UNLEASH_ENVIRONMENTS = {"staging": "development", PRODUCTION: "production"}


class CountingAdmin(UnleashAdmin):
    """UnleashAdmin counting its requests, and its writes apart."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests = self.writes = 0

    def _call(self, method: str, path: str, operation: str, **kwargs: Any) -> Any:
        self.requests += 1
        self.writes += method != "GET"
        return super()._call(method, path, operation, **kwargs)


@pytest.fixture
def unleash_admin(unleash_server: UnleashServer) -> Iterator[CountingAdmin]:
    admin = CountingAdmin(unleash_server.url, unleash_server.admin_token)
    yield admin
    admin.close()


def _unleash(admin: UnleashAdmin, **kwargs: Any) -> UnleashFlag:
    return UnleashFlag(admin, f"mm-target.{uuid.uuid4().hex[:8]}", environments=kwargs.pop("environments", UNLEASH_ENVIRONMENTS), **kwargs)


def _events(server: UnleashServer, name: str) -> int:
    """How many changes Unleash's event log holds for the flag: the server's own count of writes."""
    answer = requests.get(f"{server.url}/api/admin/events/{name}", headers={"Authorization": server.admin_token}, timeout=10)
    answer.raise_for_status()
    return len(answer.json()["events"])


def _listed(server: UnleashServer, name: str, environment: str) -> list[dict[str, Any]]:
    """The strategies as Unleash's API lists them, read apart from the client under test."""
    url = f"{server.url}/api/admin/projects/default/features/{name}/environments/{environment}/strategies"
    answer = requests.get(url, headers={"Authorization": server.admin_token}, timeout=10)
    answer.raise_for_status()
    return [{k: s[k] for k in ("name", "title", "parameters", "constraints")} for s in answer.json()]


def test_unleash_flag_climbs_the_default_ladder(unleash_server: UnleashServer, unleash_admin: CountingAdmin) -> None:
    """Each step sets exactly its strategies; a step applied again writes nothing (no request, no
    event in Unleash's log); at 100 % one flexibleRollout per environment; archived twice."""
    target = _unleash(unleash_admin)
    _climb(target, lambda: (unleash_admin.writes, _events(unleash_server, target.name)))
    rollout = {"name": "flexibleRollout", "title": None, "constraints": [],
               "parameters": {"rollout": "100", "stickiness": "userId", "groupId": target.name}}  # fmt: skip
    assert _listed(unleash_server, target.name, "development") == [rollout]
    assert _listed(unleash_server, target.name, "production") == [rollout]
    target.remove()
    target.remove()
    assert target.state() == {"staging": "off", PRODUCTION: "off"}
    assert unleash_admin.environments(target.name) is None


def test_unleash_flag_team_members_are_a_constraint(unleash_server: UnleashServer, unleash_admin: CountingAdmin) -> None:
    """Team members: a default strategy constrained to gitlabTeamMember IN ["true"] (the context
    field made once); the percentage beside it changes in place."""
    target = _unleash(unleash_admin)
    target.apply(LadderStep(audience=Audience.TEAM_MEMBERS, percentage=0))
    team = {"name": "default", "title": TEAM, "parameters": {},
            "constraints": [{"contextName": TEAM_MEMBER_FIELD, "operator": "IN", "values": ["true"], "inverted": False,
                             "caseInsensitive": False}]}  # fmt: skip
    assert _listed(unleash_server, target.name, "production") == [team]
    field = requests.get(f"{unleash_server.url}/api/admin/context/{TEAM_MEMBER_FIELD}",
                         headers={"Authorization": unleash_server.admin_token}, timeout=10)  # fmt: skip
    assert field.status_code == 200 and [v["value"] for v in field.json()["legalValues"]] == ["true", "false"]
    target.apply(LadderStep(percentage=10))
    first = unleash_admin.environments(target.name)
    assert first is not None and first["production"].enabled and not first["development"].enabled
    target.apply(LadderStep(percentage=25))
    after = unleash_admin.environments(target.name)
    assert after is not None
    rollout = next(s for s in after["production"].strategies if s.name == "flexibleRollout")
    assert rollout.id == next(s.id for s in first["production"].strategies if s.name == "flexibleRollout")
    assert rollout.parameters == {"rollout": "25", "stickiness": "userId", "groupId": target.name}
    assert target.state() == {"staging": "off", PRODUCTION: f"25 % of actors, {TEAM}"}
    target.remove()


def test_unleash_flag_off_and_back(unleash_server: UnleashServer, unleash_admin: CountingAdmin) -> None:
    """off(env) switches one environment off, off() every one (twice is fine, so is a flag never
    made); the step applied again after a rollback only switches it back on; a strategy a person
    added is named in the state and gone after the next step."""
    target = _unleash(unleash_admin)
    target.off()
    target.apply(LadderStep(environment="staging", percentage=100))
    target.apply(LadderStep(percentage=50))
    target.off("staging")
    assert target.state() == {"staging": "off", PRODUCTION: f"50 % of actors, {TEAM}"}
    target.off()
    target.off()
    assert target.state() == {"staging": "off", PRODUCTION: "off"}
    writes = unleash_admin.writes
    target.apply(LadderStep(percentage=50))
    assert unleash_admin.writes == writes + 1  # switched on; the strategies were left in place
    assert target.state() == {"staging": "off", PRODUCTION: f"50 % of actors, {TEAM}"}
    narrowed = Strategy(name="flexibleRollout", parameters={"rollout": "30", "stickiness": "userId", "groupId": "x"},
                        constraints=(Constraint(context_name="userId", operator="IN", values=("7", "9")),))  # fmt: skip
    unleash_admin.add_strategy(target.name, "production", narrowed)
    assert target.state()[PRODUCTION] == f"50 % of actors, {TEAM}, flexibleRollout 30 % where userId IN 7, 9"
    target.apply(LadderStep(percentage=75))
    assert target.state()[PRODUCTION] == f"75 % of actors, {TEAM}"
    target.remove()
    target.off()  # archived: nothing is on anywhere
    assert _events(unleash_server, target.name) > 0


def test_unleash_flag_refuses_an_unmapped_environment(unleash_admin: CountingAdmin) -> None:
    """A step in an environment the flag does not map is one RolloutError line before any request;
    one mapped to an environment Unleash does not have is refused naming the ones it has."""
    target = _unleash(unleash_admin, environments={PRODUCTION: "production"})
    for call in (lambda: target.apply(DEFAULT_LADDER[0]), lambda: target.off("staging")):
        with pytest.raises(RolloutError, match="no Unleash environment is mapped for 'staging' \\(only production\\)") as error:
            call()
        assert error.value.type == ErrorType.INVALID_INPUT and "\n" not in str(error.value)
    assert unleash_admin.requests == 0
    wrong = _unleash(unleash_admin, environments={"staging": "staging", PRODUCTION: "production"})
    with pytest.raises(RolloutError, match="Unleash has no environment 'staging' .*development, production"):
        wrong.apply(DEFAULT_LADDER[0])
    wrong.remove()
    with pytest.raises(ValueError):
        UnleashFlag(unleash_admin, "x", environments={})
