"""``FlagsMixin`` on ``GitLabClient``: instance feature flags and project Unleash flags."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import requests

from model_migration.clients.gitlab import GitLabClient
from model_migration.domain.errors import ErrorType, GitLabError
from model_migration.domain.models import FlagGate, FlagStrategy, InstanceFlag, ProjectFlag

if TYPE_CHECKING:
    from tests.conftest import SandboxInfo


@pytest.fixture
def feature(gitlab_client: GitLabClient) -> Iterator[str]:
    name = f"mm_client_{uuid.uuid4().hex[:10]}"
    yield name
    gitlab_client.delete_feature(name)


@pytest.fixture
def flag(gitlab_client: GitLabClient) -> Iterator[str]:
    name = f"mm-client-{uuid.uuid4().hex[:10]}"
    yield name
    gitlab_client.delete_project_flag(name)


def test_key_reaches_the_server(gitlab_client: GitLabClient, feature: str) -> None:
    """python-gitlab sends ``key`` (as a query parameter): the server records that gate."""
    actors = gitlab_client.set_feature(feature, 25)
    gates = [FlagGate(key="boolean", value=False), FlagGate(key="percentage_of_actors", value=25)]
    assert actors == InstanceFlag(name=feature, state="conditional", gates=gates)
    assert actors.percentage_of_actors == 25
    timed = gitlab_client.set_feature(feature, 10, key="percentage_of_time")
    assert timed.gate("percentage_of_time") == FlagGate(key="percentage_of_time", value=10)
    assert gitlab_client.get_feature(feature) == timed


def test_on_off_and_actor_gates(gitlab_client: GitLabClient, feature: str) -> None:
    """True/False switch the flag; with an actor they switch that actor only."""
    assert gitlab_client.set_feature(feature, True).percentage_of_actors == 100
    assert gitlab_client.set_feature(feature, False).state == "off"
    gitlab_client.set_feature(feature, True, user="dri-chat")
    gitlab_client.set_feature(feature, True, group=gitlab_client.group_path)
    gitlab_client.set_feature(feature, True, project=gitlab_client.project_path)
    flag = gitlab_client.set_feature(feature, True, feature_group="gitlab_team_members")
    assert flag.state == "conditional" and flag.percentage_of_actors == 0
    actors = flag.gate("actors")
    assert actors is not None and isinstance(actors.value, list) and len(actors.value) == 3
    assert flag.gate("groups") == FlagGate(key="groups", value=["gitlab_team_members"])


def test_get_list_and_delete(gitlab_client: GitLabClient, feature: str) -> None:
    """An unset flag is None; a set one is listed; deleting twice is fine."""
    assert gitlab_client.get_feature(feature) is None
    gitlab_client.set_feature(feature, 5)
    assert feature in {f.name for f in gitlab_client.list_features()}
    gitlab_client.delete_feature(feature)
    gitlab_client.delete_feature(feature)
    assert gitlab_client.get_feature(feature) is None


def test_refused_settings_are_invalid(gitlab_client: GitLabClient, feature: str) -> None:
    """GitLab's 400s (unknown user, a percentage on a fully-on flag) are INVALID, named."""
    with pytest.raises(GitLabError) as error:
        gitlab_client.set_feature(feature, True, user="no-such-person")
    assert error.value.type == ErrorType.GITLAB_INVALID and "no-such-person is not found" in str(
        error.value
    )
    gitlab_client.set_feature(feature, True)
    with pytest.raises(GitLabError) as error:
        gitlab_client.set_feature(feature, 50)
    assert error.value.type == ErrorType.GITLAB_INVALID and feature in str(error.value)


def test_actor_lists_namespace_and_force(gitlab_client: GitLabClient, feature: str) -> None:
    """Several actors go comma-separated; ``namespace`` and ``force`` reach GitLab."""
    flag = gitlab_client.set_feature(feature, True, user=["dri-chat", "mgr-chat"], force=True)
    actors = flag.gate("actors")
    assert actors is not None and isinstance(actors.value, list) and len(actors.value) == 2
    flag = gitlab_client.set_feature(feature, True, namespace=gitlab_client.group_path)
    actors = flag.gate("actors")
    assert actors is not None and isinstance(actors.value, list) and len(actors.value) == 3
    with pytest.raises(GitLabError) as error:
        gitlab_client.set_feature(feature, False, user=["dri-chat", "no-such-person"])
    assert error.value.type == ErrorType.GITLAB_INVALID and "no-such-person is not found" in str(error.value)
    assert gitlab_client.get_feature(feature) == flag  # all or nothing


def test_features_api_needs_an_admin(gitlab_sandbox: SandboxInfo, feature: str) -> None:
    """A non-admin token's 403 is AUTH and says an administrator's token is needed."""
    guest = GitLabClient(gitlab_sandbox.url, gitlab_sandbox.guest_token, gitlab_sandbox.project_path)
    with guest:
        for call in (lambda: guest.set_feature(feature, 10), lambda: guest.delete_feature(feature)):
            with pytest.raises(GitLabError) as error:
                call()
            assert (error.value.type, error.value.status) == (ErrorType.GITLAB_AUTH, 403)
            assert "needs an administrator's token" in str(error.value)


def test_flag_user_list_ensure_and_delete(gitlab_client: GitLabClient) -> None:
    """Ensure creates once and returns it after; other users are refused; delete twice."""
    name = f"mm-list-{uuid.uuid4().hex[:8]}"
    assert gitlab_client.get_flag_user_list(name) is None
    created = gitlab_client.ensure_flag_user_list(name, ["7", "8"])
    assert created.user_xids == ["7", "8"] and created.iid > 0
    calls = gitlab_client.calls
    assert gitlab_client.ensure_flag_user_list(name, ["7", "8"]) == created
    assert gitlab_client.calls - calls == 1  # one read, no create
    with pytest.raises(GitLabError) as error:
        gitlab_client.ensure_flag_user_list(name, ["7"])
    assert error.value.type == ErrorType.GITLAB_INVALID and "exists with other users (7,8)" in str(error.value)
    gitlab_client.delete_flag_user_list(name)
    gitlab_client.delete_flag_user_list(name)
    assert gitlab_client.get_flag_user_list(name) is None


def test_ensure_project_flag_creates_once(gitlab_client: GitLabClient, flag: str) -> None:
    """The second ensure returns the existing flag unchanged: no duplicate, no overwrite."""
    created = gitlab_client.ensure_project_flag(flag, "rollout", [FlagStrategy.percent_of_users(1)])
    assert created.strategies[0].parameters == {"groupId": "default", "percentage": "1"}
    assert created.strategies[0].scopes == ["*"] and created.strategies[0].id is not None
    again = gitlab_client.ensure_project_flag(flag, "other", [FlagStrategy(name="default")])
    assert again == created and again.description == "rollout"


def test_ensure_project_flag_after_a_lost_answer(
    gitlab_sandbox: SandboxInfo, gitlab_client: GitLabClient, flag: str
) -> None:
    """The create's answer is lost (TRANSIENT); the retry finds the flag instead of failing."""
    admin = f"{gitlab_sandbox.url}/-/sandbox/faults"
    auth = {"PRIVATE-TOKEN": gitlab_sandbox.token}
    rule = {"method": "POST", "path": "/feature_flags$", "fault": "drop_after_write", "count": 1}
    assert requests.post(admin, json=rule, headers=auth, timeout=5).status_code == 201
    try:
        with pytest.raises(GitLabError) as error:
            gitlab_client.ensure_project_flag(flag, "d", [FlagStrategy(name="default")])
        assert error.value.type == ErrorType.GITLAB_TRANSIENT
    finally:
        requests.delete(admin, headers=auth, timeout=5)
    found = gitlab_client.ensure_project_flag(flag, "d", [FlagStrategy(name="default")])
    assert [s.name for s in found.strategies] == ["default"]


def test_ensure_project_flag_takes_one_created_meanwhile(
    gitlab_client: GitLabClient, flag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the flag appears between the lookup and the create, the 400 "taken" yields it."""
    gitlab_client.ensure_project_flag(flag, "first", [])
    real = gitlab_client.get_project_flag
    misses = iter([None])
    monkeypatch.setattr(
        gitlab_client, "get_project_flag", lambda name: next(misses, None) or real(name)
    )
    assert gitlab_client.ensure_project_flag(flag, "second", []).description == "first"


def test_set_percentage_updates_in_place(gitlab_client: GitLabClient, flag: str) -> None:
    """The same strategy keeps its id and scopes; percentages go as strings; one PUT."""
    created = gitlab_client.ensure_project_flag(
        flag, "d", [FlagStrategy.percent_of_users(1, scopes=["production"])]
    )
    calls = gitlab_client.calls
    raised = gitlab_client.set_project_flag_percentage(flag, 50)
    assert gitlab_client.calls - calls == 2  # the read for the strategy id, then one PUT
    (strategy,) = raised.strategies
    assert strategy.id == created.strategies[0].id and strategy.scopes == ["production"]
    assert strategy.parameters == {"groupId": "default", "percentage": "50"}


def test_set_percentage_keeps_rollout_settings(gitlab_client: GitLabClient, flag: str) -> None:
    """A flexibleRollout keeps its stickiness and groupId; only the rollout changes."""
    gitlab_client.ensure_project_flag(
        flag, "d", [FlagStrategy.percent_rollout(5, stickiness="userId")]
    )
    (strategy,) = gitlab_client.set_project_flag_percentage(flag, 40, "flexibleRollout").strategies
    assert strategy.parameters == {"groupId": "default", "rollout": "40", "stickiness": "userId"}


def test_set_percentage_switches_strategy(gitlab_client: GitLabClient, flag: str) -> None:
    """Asking for flexibleRollout replaces other strategies with one rollout strategy."""
    gitlab_client.ensure_project_flag(
        flag,
        "d",
        [FlagStrategy.percent_of_users(10), FlagStrategy(name="default", scopes=["review/*"])],
    )
    rolled = gitlab_client.set_project_flag_percentage(flag, 75, strategy="flexibleRollout")
    assert [(s.name, s.parameters["rollout"], s.scopes) for s in rolled.strategies] == [
        ("flexibleRollout", "75", ["*"])
    ]
    assert gitlab_client.get_project_flag(flag) == rolled


def test_set_percentage_refuses_nonsense_without_a_request(
    gitlab_client: GitLabClient, flag: str
) -> None:
    """Out-of-range percentages and unknown strategies fail INVALID before any request."""
    calls = gitlab_client.calls
    for percentage, strategy in (
        (150, "gradualRolloutUserId"),
        (-1, "flexibleRollout"),
        (5, "userWithId"),
    ):
        with pytest.raises(GitLabError) as error:
            gitlab_client.set_project_flag_percentage(flag, percentage, strategy=strategy)
        assert error.value.type == ErrorType.GITLAB_INVALID
    assert gitlab_client.calls == calls


def test_update_active_and_replace_strategies(gitlab_client: GitLabClient, flag: str) -> None:
    """active alone is one PUT; new strategies replace the old ones."""
    gitlab_client.ensure_project_flag(flag, "d", [FlagStrategy.percent_of_users(10)])
    calls = gitlab_client.calls
    assert gitlab_client.update_project_flag(flag, active=False).active is False
    assert gitlab_client.calls - calls == 1
    users = FlagStrategy(name="userWithId", parameters={"userIds": "1,2"})
    replaced = gitlab_client.update_project_flag(flag, strategies=[users])
    assert [(s.name, s.parameters) for s in replaced.strategies] == [
        ("userWithId", {"userIds": "1,2"})
    ]
    assert replaced.active is False


def test_invalid_strategy_is_invalid(gitlab_client: GitLabClient, flag: str) -> None:
    """GitLab's validation message list becomes one INVALID line."""
    bad = FlagStrategy(
        name="gradualRolloutUserId", parameters={"groupId": "Bad!", "percentage": "5"}
    )
    with pytest.raises(GitLabError) as error:
        gitlab_client.ensure_project_flag(flag, "d", [bad])
    assert error.value.type == ErrorType.GITLAB_INVALID and "groupId parameter is invalid" in str(
        error.value
    )
    assert gitlab_client.get_project_flag(flag) is None


def test_delete_project_flag_twice(gitlab_client: GitLabClient, flag: str) -> None:
    """Deleting is idempotent; a missing flag reads as None, and updating it is NOT_FOUND."""
    gitlab_client.ensure_project_flag(flag, "d", [])
    gitlab_client.delete_project_flag(flag)
    gitlab_client.delete_project_flag(flag)
    assert gitlab_client.get_project_flag(flag) is None
    with pytest.raises(GitLabError) as error:
        gitlab_client.update_project_flag(flag, active=True)
    assert error.value.type == ErrorType.GITLAB_NOT_FOUND


def test_models_round_trip() -> None:
    """The flag models are frozen pydantic models that survive a JSON round trip."""
    flag = ProjectFlag(name="f", strategies=[FlagStrategy.percent_rollout(5, stickiness="userId")])
    assert ProjectFlag.model_validate_json(flag.model_dump_json()) == flag
    with pytest.raises(ValueError):
        flag.name = "g"  # type: ignore[misc]
