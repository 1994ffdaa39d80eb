"""Contract: instance feature flags (``gl.features``) and project Unleash flags
(``project.feature_flags``), through python-gitlab only, on the sandbox or a real GitLab."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import gitlab
import pytest

from tests.contract.conftest import Target


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _gates(feature: Any) -> dict[str, Any]:
    return {gate["key"]: gate["value"] for gate in feature.gates}


@pytest.fixture
def feature(target: Target) -> Iterator[str]:
    name = _name("mm_contract")
    yield name
    target.gl.features.delete(name)


@pytest.fixture
def flag(target: Target) -> Iterator[str]:
    name = _name("mm-flag")
    yield name
    try:
        target.project.feature_flags.delete(name)
    except gitlab.exceptions.GitlabDeleteError:
        pass


def _strategy(name: str, parameters: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "parameters": parameters, "scopes": [{"environment_scope": "*"}], **extra}


GRADUAL, FLEXIBLE, PARAMS = "gradualRolloutUserId", "flexibleRollout", "Strategies parameters"
PERCENTAGE_RULE = f"{PARAMS} percentage must be a string between 0 and 100 inclusive"
XIDS_RULE = "must be a string of unique comma separated values each 256 characters or less"
PERCENT = _strategy(GRADUAL, {"groupId": "default", "percentage": "10"})

# -- instance feature flags ------------------------------------------------------------------


def test_feature_true_false_and_percentages(target: Target, feature: str) -> None:
    """true is on, false is off, a number with ``key`` sets that percentage gate."""
    on = target.gl.features.set(feature, True)
    assert (on.state, _gates(on)) == ("on", {"boolean": True})
    off = target.gl.features.set(feature, False)
    assert (off.state, _gates(off)) == ("off", {"boolean": False})
    actors = target.gl.features.set(feature, 25, key="percentage_of_actors")
    assert actors.state == "conditional"
    assert _gates(actors) == {"boolean": False, "percentage_of_actors": 25}
    time = target.gl.features.set(feature, 30, key="percentage_of_time")
    assert _gates(time)["percentage_of_time"] == 30 and _gates(time)["percentage_of_actors"] == 25
    assert _gates(target.gl.features.set(feature, 0))["boolean"] is False
    assert target.gl.features.set(feature, 0).state == "off"


def test_feature_without_key_is_percentage_of_time(target: Target, feature: str) -> None:
    """GitLab's default key: a bare number is a percentage of time."""
    assert _gates(target.gl.features.set(feature, 40)) == {
        "boolean": False,
        "percentage_of_time": 40,
    }


def test_feature_actor_gates(target: Target, feature: str) -> None:
    """feature_group, user, group and project gates name those actors; false removes one."""
    target.gl.auth()
    me = target.gl.user
    assert me is not None
    gl = target.gl
    gl.features.set(feature, True, feature_group="gitlab_team_members")
    gl.features.set(feature, True, user=me.username)
    gl.features.set(feature, True, group=target.group.full_path)
    result = gl.features.set(feature, True, project=target.project.path_with_namespace)
    assert result.state == "conditional"
    wanted = {f"User:{me.id}", f"Group:{target.group.id}", f"Project:{target.project.id}"}
    assert set(_gates(result)["actors"]) == wanted
    assert _gates(result)["groups"] == ["gitlab_team_members"]
    less = gl.features.set(feature, False, user=me.username)
    assert set(_gates(less)["actors"]) == wanted - {f"User:{me.id}"}


def test_feature_list_and_delete_twice(target: Target, feature: str) -> None:
    """The list shows set flags; deleting twice is fine and removes it from the list."""
    target.gl.features.set(feature, 10, key="percentage_of_actors")
    listed = {f.name: f for f in target.gl.features.list(get_all=True)}
    assert _gates(listed[feature])["percentage_of_actors"] == 10
    target.gl.features.delete(feature)
    target.gl.features.delete(feature)
    assert feature not in {f.name for f in target.gl.features.list(get_all=True)}


@pytest.mark.parametrize("value", ["-1", "abc", "150"])
@pytest.mark.parametrize("key", ["percentage_of_actors", None])
def test_invalid_percentage_is_400(
    target: Target, feature: str, value: str, key: str | None
) -> None:
    """A negative, non-numeric or above-100 value is a 400 "400 Bad request - ..."."""
    if value == "150" and target.name == "real":
        pytest.skip("GitLab lets Flipper's ArgumentError for >100 through as a 500")
    extra = {"key": key} if key else {}
    with pytest.raises(gitlab.exceptions.GitlabSetError) as raised:
        target.gl.features.set(feature, value, **extra)
    assert raised.value.response_code == 400
    assert str(raised.value.error_message).startswith("400 Bad request - ")


def test_unknown_key_and_unknown_actor_are_400(target: Target, feature: str) -> None:
    """A key other than the two percentages, or a user nobody has, is refused with a reason."""
    with pytest.raises(gitlab.exceptions.GitlabSetError) as raised:
        target.gl.features.set(feature, 20, key="percentage_of_users")
    assert raised.value.response_code == 400
    assert "percentage_of_users" in str(raised.value.error_message)
    ghost = _name("nobody")
    with pytest.raises(gitlab.exceptions.GitlabSetError) as raised:
        target.gl.features.set(feature, True, user=ghost)
    assert (raised.value.response_code, raised.value.error_message) == (
        400, f"400 Bad request - {ghost} is not found!"
    )  # fmt: skip


def test_percentage_on_a_fully_enabled_feature_is_400(target: Target, feature: str) -> None:
    """Rolling back from "on" to a percentage needs "off" first, as in GitLab."""
    target.gl.features.set(feature, True)
    with pytest.raises(gitlab.exceptions.GitlabSetError) as raised:
        target.gl.features.set(feature, 50, key="percentage_of_actors")
    assert raised.value.error_message == (
        "400 Bad request - Cannot enable percentage of actors for a fully-enabled flag"
    )


# -- project (Unleash) feature flags ---------------------------------------------------------


def test_project_flag_with_each_strategy(target: Target, flag: str) -> None:
    """Every strategy kind is created, read back with ids and scopes, and rendered alike."""
    user_list = target.project.feature_flags_user_lists.create(
        {"name": _name("mm-list"), "user_xids": "1,2"}
    )
    try:
        strategies = [
            _strategy("default", {}),
            PERCENT,
            _strategy(
                "flexibleRollout", {"groupId": "default", "rollout": "25", "stickiness": "userId"}
            ),
            _strategy("userWithId", {"userIds": "alice,bob"}),
            _strategy("gitlabUserList", {}, user_list_id=user_list.id),
        ]
        created = target.project.feature_flags.create(
            {
                "name": flag,
                "description": "d",
                "version": "new_version_flag",
                "strategies": strategies,
            }
        )
        read = target.project.feature_flags.get(flag)
        assert read.version == "new_version_flag" and read.active is True
        got = [(s["name"], s["parameters"]) for s in read.strategies]
        assert got == [(s["name"], s["parameters"]) for s in strategies]
        assert all(s["scopes"][0]["environment_scope"] == "*" for s in read.strategies)
        assert read.strategies[-1]["user_list"]["id"] == user_list.id
        assert [s["id"] for s in created.strategies] == [s["id"] for s in read.strategies]
        target.project.feature_flags.delete(flag)
    finally:
        user_list.delete()


def test_a_user_list_a_strategy_uses_is_kept_409(target: Target, flag: str) -> None:
    """Deleting a user list that a flag's strategy names is a 409 (``ensure_no_associated_strategies``);
    once the flag is gone the list deletes."""
    user_list = target.project.feature_flags_user_lists.create({"name": _name("mm-kept"), "user_xids": "1"})
    try:
        target.project.feature_flags.create({"name": flag, "strategies": [_strategy("gitlabUserList", {}, user_list_id=user_list.id)]})
        with pytest.raises(gitlab.exceptions.GitlabDeleteError) as raised:
            user_list.delete()
        assert (raised.value.response_code, raised.value.error_message) == (409, ["User list is associated with a strategy"])
        assert target.project.feature_flags_user_lists.get(user_list.iid).name == user_list.name
        target.project.feature_flags.delete(flag)
    finally:
        user_list.delete()
    with pytest.raises(gitlab.exceptions.GitlabGetError):
        target.project.feature_flags_user_lists.get(user_list.iid)


def test_project_flag_update_in_place_destroy_and_add(target: Target, flag: str) -> None:
    """PUT with a strategy id changes it in place; ``_destroy`` removes; no id adds."""
    created = target.project.feature_flags.create({"name": flag, "strategies": [PERCENT]})
    old_id = created.strategies[0]["id"]
    changed = target.project.feature_flags.update(flag, {
        "active": False,
        "strategies": [{"id": old_id, "parameters": {"groupId": "default", "percentage": "50"}}],
    })  # fmt: skip
    assert changed["active"] is False
    assert [(s["id"], s["parameters"]["percentage"]) for s in changed["strategies"]] == [
        (old_id, "50")
    ]
    rollout = {"groupId": "default", "rollout": "5", "stickiness": "default"}
    swapped = target.project.feature_flags.update(
        flag,
        {"strategies": [{"id": old_id, "_destroy": True}, _strategy("flexibleRollout", rollout)]},
    )
    assert [s["name"] for s in swapped["strategies"]] == ["flexibleRollout"]
    assert swapped["strategies"][0]["id"] != old_id


def test_project_flag_delete_then_not_found(target: Target, flag: str) -> None:
    """DELETE answers the flag; afterwards GET and DELETE are 404."""
    target.project.feature_flags.create({"name": flag})
    target.project.feature_flags.delete(flag)
    with pytest.raises(gitlab.exceptions.GitlabGetError) as raised:
        target.project.feature_flags.get(flag)
    assert raised.value.response_code == 404
    with pytest.raises(gitlab.exceptions.GitlabDeleteError):
        target.project.feature_flags.delete(flag)


def test_duplicate_project_flag_name_is_400(target: Target, flag: str) -> None:
    """A second flag with the same name: 400 ["Name has already been taken"]."""
    target.project.feature_flags.create({"name": flag})
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as raised:
        target.project.feature_flags.create({"name": flag})
    assert (raised.value.response_code, raised.value.error_message) == (
        400, ["Name has already been taken"]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (_strategy(GRADUAL, {"groupId": "default", "percentage": 50}), PERCENTAGE_RULE),
        (_strategy(GRADUAL, {"groupId": "default", "percentage": "101"}), PERCENTAGE_RULE),
        (_strategy(FLEXIBLE, {"groupId": "default", "rollout": "-5", "stickiness": "default"}),
         f"{PARAMS} rollout must be a string between 0 and 100 inclusive"),
        (_strategy(GRADUAL, {"groupId": "Default1", "percentage": "5"}),
         f"{PARAMS} groupId parameter is invalid"),
        (_strategy(FLEXIBLE, {"groupId": "default", "rollout": "5", "stickiness": "ip"}),
         f"{PARAMS} stickiness parameter must be default, userId, sessionId, or random"),
        (_strategy(GRADUAL, {"percentage": "5"}), f"{PARAMS} are invalid"),
        (_strategy("userWithId", {"userIds": "a,,b"}),
         f"{PARAMS} userIds {XIDS_RULE}"),
        (_strategy("everyone", {}), "Strategies name strategy name is invalid"),
    ],
)  # fmt: skip
def test_invalid_strategy_is_400(
    target: Target, flag: str, strategy: dict[str, Any], message: str
) -> None:
    """Bad percentages, groupIds, stickiness or keys: 400 with GitLab's message list."""
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as raised:
        target.project.feature_flags.create({"name": flag, "strategies": [strategy]})
    assert (raised.value.response_code, raised.value.error_message) == (400, [message])
    with pytest.raises(gitlab.exceptions.GitlabGetError):
        target.project.feature_flags.get(flag)


def test_invalid_update_changes_nothing(target: Target, flag: str) -> None:
    """A PUT that fails validation leaves the flag as it was."""
    created = target.project.feature_flags.create({"name": flag, "strategies": [PERCENT]})
    strategy_id = created.strategies[0]["id"]
    bad = {"id": strategy_id, "parameters": {"groupId": "default", "percentage": "abc"}}
    with pytest.raises(gitlab.exceptions.GitlabUpdateError) as raised:
        target.project.feature_flags.update(flag, {"active": False, "strategies": [bad]})
    assert raised.value.response_code == 400
    read = target.project.feature_flags.get(flag)
    assert read.active is True and read.strategies[0]["parameters"]["percentage"] == "10"


# -- the Features API's refusals and actor forms ---------------------------------------------


def _non_admin_token(target: Target) -> str:
    if target.sandbox is not None:
        return str(target.sandbox.guest_token)
    token = os.environ.get("GITLAB_NON_ADMIN_TOKEN")
    if not token:
        pytest.skip("set GITLAB_NON_ADMIN_TOKEN (a user who is no administrator) to check the 403s")
    return token


def test_features_writes_need_an_admin(target: Target, feature: str) -> None:
    """POST and DELETE /features/:name with a non-admin token: 403, and nothing is set."""
    other = gitlab.Gitlab(target.gl.url, private_token=_non_admin_token(target), retry_transient_errors=False)
    with pytest.raises(gitlab.exceptions.GitlabSetError) as raised:
        other.features.set(feature, True)
    assert raised.value.response_code == 403
    with pytest.raises(gitlab.exceptions.GitlabDeleteError) as deleted:
        other.features.delete(feature)
    assert deleted.value.response_code == 403
    assert feature not in {f.name for f in target.gl.features.list(get_all=True)}


def test_features_list_needs_an_admin(target: Target) -> None:
    """GET /features with a non-admin token: 403 (``authenticated_as_admin!``)."""
    other = gitlab.Gitlab(target.gl.url, private_token=_non_admin_token(target), retry_transient_errors=False)
    with pytest.raises(gitlab.exceptions.GitlabListError) as raised:
        other.features.list(get_all=True)
    assert raised.value.response_code == 403


def test_feature_group_need_not_be_registered(target: Target, feature: str) -> None:
    """Flipper makes any group name a group ("Stop raising in Flipper.group"): an unregistered
    one is accepted and lets nobody in, so a typo in ``feature_group`` is not refused."""
    result = target.gl.features.set(feature, True, feature_group="mm_no_such_group")
    assert (result.state, _gates(result)) == ("conditional", {"boolean": False, "groups": ["mm_no_such_group"]})


def test_feature_group_is_one_name_commas_and_all(target: Target, feature: str) -> None:
    """Unlike ``user``, ``group`` and ``project``, ``feature_group`` is not split on commas
    (``Feature::Target#feature_group`` passes it whole): "a,b" is one group, which nobody is in."""
    result = target.gl.features.set(feature, True, feature_group="gitlab_team_members,mm_other")
    assert (result.state, _gates(result)) == ("conditional", {"boolean": False, "groups": ["gitlab_team_members,mm_other"]})


def test_key_with_an_actor_is_400(target: Target, feature: str) -> None:
    """``key`` and any actor parameter are mutually exclusive (Grape's 400)."""
    with pytest.raises(gitlab.exceptions.GitlabSetError) as raised:
        target.gl.features.set(feature, 50, feature_group="gitlab_team_members", key="percentage_of_actors")
    assert (raised.value.response_code, raised.value.error_message) == (400, "key, feature_group are mutually exclusive")


def test_percentage_for_an_actor_is_400(target: Target, feature: str) -> None:
    """A percentage applies to the whole flag: with an actor it is "Cannot set ... for ..."."""
    with pytest.raises(gitlab.exceptions.GitlabSetError) as raised:
        target.gl.features.set(feature, 50, feature_group="gitlab_team_members")
    assert raised.value.response_code == 400
    assert str(raised.value.error_message).startswith(f"400 Bad request - Cannot set '{feature}' to \"50\" for ")


def test_actor_lists_are_all_or_nothing(target: Target, feature: str) -> None:
    """Comma-separated actors: every one is looked up first, so one unknown name sets nothing."""
    target.gl.auth()
    me = target.gl.user
    assert me is not None
    ghost = _name("nobody")
    with pytest.raises(gitlab.exceptions.GitlabSetError) as raised:
        target.gl.features.set(feature, True, user=f"{me.username},{ghost}")
    assert raised.value.error_message == f"400 Bad request - {ghost} is not found!"
    assert feature not in {f.name for f in target.gl.features.list(get_all=True)}
    both = target.gl.features.set(feature, True, user=me.username, group=f"{target.group.full_path}")
    assert set(_gates(both)["actors"]) == {f"User:{me.id}", f"Group:{target.group.id}"}


def test_fractional_percentage_and_force(target: Target, feature: str) -> None:
    """Percentages go to three decimal places; ``force`` (skip the name checks) is accepted."""
    result = target.gl.features.set(feature, "0.5", key="percentage_of_actors", force=True)
    assert result.state == "conditional" and _gates(result)["percentage_of_actors"] == 0.5
