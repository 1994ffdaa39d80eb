"""``FlagTarget``: the one feature flag a rollout drives along its ladder, on GitLab.

Every write sets a value, never adds to one, so applying a step again (a retried activity)
leaves the same flag and makes no write at all when nothing differs.

A step's audience, in every implementation:

- ``TEAM_MEMBERS``: GitLab team members only;
- ``ACTORS`` p below 100: p % of actors, and GitLab team members too in the environments of
  ``keep_team_members_in`` (production by default: GitLab's rollout sets the team-members gate
  first and leaves it while the percentage climbs, so team members are never narrowed);
- ``ACTORS`` 100: everyone.

``state()`` reads each environment back as "off", "GitLab team members", "25 % of actors,
GitLab team members" or "100 % of actors", naming anything else found (a percentage of time,
single actors) so a note shows what a human changed.

On an Unleash server (``UnleashFlag``) team members are a constraint on a context field, not a
list of user ids: a ``default`` strategy titled "GitLab team members" with the constraint
``gitlabTeamMember IN ["true"]``, the Unleash idiom for a group the application knows (as GitLab
knows its ``gitlab_team_members`` Flipper group), so the flag holds no list to keep up to date. The
application puts ``gitlabTeamMember: "true"`` in the context of a team member's requests. It is a
``default`` strategy, not a constrained ``flexibleRollout``, so that the percentage stays the
one ``flexibleRollout`` (stickiness ``userId``, group id the flag's name) that
``UnleashAdmin.set_rollout`` manages. Unleash 8 has no ``userWithId`` strategy any more.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from model_migration.clients.gitlab_flags import FlagUserList
from model_migration.clients.unleash import ROLLOUT, Constraint, Environment, Strategy, UnleashAdmin, UnleashError
from model_migration.domain.models import FlagStrategy, InstanceFlag, ProjectFlag
from model_migration.domain.rollout import PRODUCTION, Audience, LadderStep, RolloutError

TEAM_MEMBERS_GROUP = "gitlab_team_members"  # the Flipper group GitLab registers (EE)
TEAM_MEMBERS = "GitLab team members"
OFF = "off"
EVERYONE = "100 % of actors"


class FlagTarget(Protocol):
    def apply(self, step: LadderStep) -> None:
        """Set the flag in ``step.environment`` to exactly that step's audience."""

    def off(self, environment: str | None = None) -> None:
        """Roll back: off in ``environment``, or in every environment."""

    def remove(self) -> None:
        """Delete the flag everywhere; a flag already gone is fine."""

    def state(self) -> dict[str, str]:
        """Each environment's audience, readable (see the module docstring)."""


@dataclass(frozen=True)
class Wanted:
    percentage: int  # of actors; 100 is everyone
    team_members: bool


def wanted(step: LadderStep, keep_team_members_in: Collection[str]) -> Wanted:
    if step.audience == Audience.TEAM_MEMBERS:
        return Wanted(0, True)
    return Wanted(step.percentage, step.percentage < 100 and step.environment in keep_team_members_in)


def describe(percentage: float, team_members: bool, others: Sequence[str] = ()) -> str:
    if percentage >= 100:
        return EVERYONE
    parts = [f"{percentage:g} % of actors"] if percentage > 0 else []
    return ", ".join([*parts, *([TEAM_MEMBERS] if team_members else []), *others]) or OFF


# -- GitLab's instance feature flags (Flipper, the Features API) -----------------------------


class FeaturesClient(Protocol):
    def set_feature(
        self, name: str, value: bool | int | float, *, key: str | None = ..., feature_group: str | None = ...
    ) -> InstanceFlag: ...

    def get_feature(self, name: str) -> InstanceFlag | None: ...

    def delete_feature(self, name: str) -> None: ...


@dataclass(frozen=True)
class _Gates:
    boolean: bool = False
    percentage_of_actors: float = 0
    percentage_of_time: float = 0
    actors: tuple[str, ...] = ()
    groups: frozenset[str] = frozenset()

    @classmethod
    def of(cls, flag: InstanceFlag | None) -> _Gates:
        if flag is None:
            return cls()
        values = {gate.key: gate.value for gate in flag.gates}

        def number(key: str) -> float:
            value = values.get(key)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0

        def names(key: str) -> list[str]:
            value = values.get(key)
            return [str(v) for v in value] if isinstance(value, list) else []

        return cls(values.get("boolean") is True, number("percentage_of_actors"), number("percentage_of_time"),
                   tuple(names("actors")), frozenset(names("groups")))  # fmt: skip

    def matches(self, want: Wanted) -> bool:
        if want.percentage >= 100:
            return self == _Gates(boolean=True)
        groups = frozenset({TEAM_MEMBERS_GROUP} if want.team_members else ())
        return self == _Gates(percentage_of_actors=want.percentage, groups=groups)

    def readable(self) -> str:
        if self.boolean or self.percentage_of_time >= 100:
            return EVERYONE
        others = [f"{self.percentage_of_time:g} % of the time"] if self.percentage_of_time else []
        others += [f"group {g}" for g in sorted(self.groups - {TEAM_MEMBERS_GROUP})]
        others += [f"actor {a}" for a in self.actors]
        return describe(self.percentage_of_actors, TEAM_MEMBERS_GROUP in self.groups, others)


class GitLabInstanceFlag:
    """An instance feature flag, as GitLab.com rolls its own features out (``/chatops run
    feature set``). ``client`` is the production instance; ``environments`` maps any other
    environment to its own instance (e.g. ``{"staging": <staging GitLab's client>}``), since
    an instance flag has no environments of its own. Every client needs an admin token."""

    def __init__(
        self,
        client: FeaturesClient,
        name: str,
        *,
        environments: Mapping[str, FeaturesClient] | None = None,
        keep_team_members_in: Collection[str] = (PRODUCTION,),
    ) -> None:
        if PRODUCTION in (environments or {}):
            raise ValueError(f"{PRODUCTION} is the first client; environments are the other instances")
        self.name = name
        self.keep_team_members_in = frozenset(keep_team_members_in)
        self._clients = {PRODUCTION: client, **(environments or {})}

    def apply(self, step: LadderStep) -> None:
        client = self._client(step.environment)
        want = wanted(step, self.keep_team_members_in)
        gates = _Gates.of(client.get_feature(self.name))
        if gates.matches(want):
            return
        if want.percentage >= 100:
            client.set_feature(self.name, True)  # Flipper clears every other gate
            return
        foreign = gates.boolean or gates.percentage_of_time or gates.actors or gates.groups - {TEAM_MEMBERS_GROUP}
        if foreign or (gates.percentage_of_actors and not want.percentage) or (gates.groups and not want.team_members):
            # GitLab cannot lower a gate to nothing but by clearing them all ("0"/false), and
            # refuses a percentage on a fully enabled flag: start again from off.
            client.set_feature(self.name, False)
            gates = _Gates()
        if want.team_members and not gates.groups:
            client.set_feature(self.name, True, feature_group=TEAM_MEMBERS_GROUP)
        if want.percentage and gates.percentage_of_actors != want.percentage:
            client.set_feature(self.name, want.percentage, key="percentage_of_actors")

    def off(self, environment: str | None = None) -> None:
        """Always one write per instance (no read first): a rollback must not trust a stale read."""
        for env in [environment] if environment else sorted(self._clients):
            self._client(env).set_feature(self.name, False)

    def remove(self) -> None:
        for env in sorted(self._clients):
            self._clients[env].delete_feature(self.name)

    def state(self) -> dict[str, str]:
        return {env: _Gates.of(client.get_feature(self.name)).readable() for env, client in sorted(self._clients.items())}

    def _client(self, environment: str) -> FeaturesClient:
        if environment not in self._clients:
            raise RolloutError(
                f"no GitLab instance is configured for {environment!r} (only {', '.join(sorted(self._clients))}): "
                f"instance flag {self.name!r} cannot be set there"
            )
        return self._clients[environment]


# -- a project's feature flags (Unleash strategies with environment scopes) -------------------


class ProjectFlagsClient(Protocol):
    def get_project_flag(self, name: str) -> ProjectFlag | None: ...

    def ensure_project_flag(self, name: str, description: str, strategies: list[FlagStrategy]) -> ProjectFlag: ...

    def update_project_flag(
        self, name: str, *, active: bool | None = ..., strategies: list[FlagStrategy] | None = ...
    ) -> ProjectFlag: ...

    def delete_project_flag(self, name: str) -> None: ...

    def get_flag_user_list(self, name: str) -> FlagUserList | None: ...

    def ensure_flag_user_list(self, name: str, user_xids: Sequence[str]) -> FlagUserList: ...

    def delete_flag_user_list(self, name: str) -> None: ...


def _covers(strategy: FlagStrategy, environment: str) -> bool:
    return environment in strategy.scopes or "*" in strategy.scopes


def _key(strategy: FlagStrategy) -> tuple[str, tuple[tuple[str, str], ...], int | None]:
    return strategy.name, tuple(sorted(strategy.parameters.items())), strategy.user_list_id


class GitLabProjectFlag:
    """A project feature flag with one set of strategies per environment, each scoped to that
    environment alone: ``flexibleRollout`` for a percentage (stickiness ``default``: the user
    id when there is one), ``default`` for everyone, and a ``gitlabUserList`` of
    ``team_members`` (user ids as the application reports them) for GitLab team members."""

    def __init__(
        self,
        client: ProjectFlagsClient,
        name: str,
        *,
        team_members: Sequence[str] = (),
        environments: Sequence[str] = ("staging", PRODUCTION),
        keep_team_members_in: Collection[str] = (PRODUCTION,),
        description: str = "",
    ) -> None:
        self.client, self.name = client, name
        self.team_members = [str(member) for member in team_members]
        self.environments = tuple(environments)
        self.keep_team_members_in = frozenset(keep_team_members_in) if team_members else frozenset()
        self.description = description or f"Rollout of {name}"
        self.user_list_name = f"{name}-team-members"

    def apply(self, step: LadderStep) -> None:
        if step.audience == Audience.TEAM_MEMBERS and not self.team_members:
            raise RolloutError(f"{step.label}: project flag {self.name!r} was given no team members' user ids")
        env, want = step.environment, wanted(step, self.keep_team_members_in)
        flag = self.client.ensure_project_flag(self.name, self.description, [])
        shared = [s for s in flag.strategies if _covers(s, env) and s.scopes != [env]]
        if shared:
            raise RolloutError(
                f"project flag {self.name!r} has a {shared[0].name} strategy for {', '.join(shared[0].scopes)}: "
                f"a rollout sets each environment alone, so change or remove it in GitLab first"
            )
        mine = [s for s in flag.strategies if s.scopes == [env]]
        desired = self._strategies(want, env)
        if flag.active and sorted(map(_key, mine)) == sorted(map(_key, desired)):
            return
        kept = [s for s in flag.strategies if s not in mine]
        for strategy in desired:
            same = next((s for s in mine if s.name == strategy.name), None)
            if same is not None:  # changed in place: GitLab keeps its id
                mine.remove(same)
                strategy = strategy.model_copy(update={"id": same.id})
            kept.append(strategy)
        self.client.update_project_flag(self.name, active=True, strategies=kept)

    def off(self, environment: str | None = None) -> None:
        """Every environment: the flag inactive and without strategies, in one write. One
        environment: every strategy that covers it removed (one shared with another
        environment too: rolling back errs on the side of off)."""
        flag = self.client.get_project_flag(self.name)
        if flag is None:
            return
        if environment is None:
            if flag.active or flag.strategies:
                self.client.update_project_flag(self.name, active=False, strategies=[])
            return
        kept = [s for s in flag.strategies if not _covers(s, environment)]
        if len(kept) != len(flag.strategies):
            self.client.update_project_flag(self.name, strategies=kept)

    def remove(self) -> None:
        self.client.delete_project_flag(self.name)  # first: GitLab keeps a list a strategy uses
        if self.team_members:
            self.client.delete_flag_user_list(self.user_list_name)

    def state(self) -> dict[str, str]:
        flag = self.client.get_project_flag(self.name)
        strategies = flag.strategies if flag is not None and flag.active else []
        scopes = {scope for s in strategies for scope in s.scopes if scope != "*"}
        team_list = None
        if any(s.name == "gitlabUserList" for s in strategies):
            team_list = self.client.get_flag_user_list(self.user_list_name)
        return {env: self._readable([s for s in strategies if _covers(s, env)], team_list)
                for env in sorted({*self.environments, *scopes})}  # fmt: skip

    def _strategies(self, want: Wanted, env: str) -> list[FlagStrategy]:
        if want.percentage >= 100:
            return [FlagStrategy(name="default", scopes=[env])]
        out = [FlagStrategy.percent_rollout(want.percentage, scopes=[env])] if want.percentage else []
        if want.team_members:
            team = self.client.ensure_flag_user_list(self.user_list_name, self.team_members)
            out.append(FlagStrategy(name="gitlabUserList", scopes=[env], user_list_id=team.id))
        return out

    def _readable(self, strategies: list[FlagStrategy], team_list: FlagUserList | None) -> str:
        percentage, team, others = 0.0, False, []
        for s in strategies:
            if s.name == "default":
                percentage = 100.0
            elif s.name in ("flexibleRollout", "gradualRolloutUserId"):
                value = s.parameters.get("rollout", s.parameters.get("percentage", "0"))
                percentage = max(percentage, float(value))
            elif s.name == "gitlabUserList" and team_list is not None and s.user_list_id == team_list.id:
                team = True
            elif s.name == "gitlabUserList":
                others.append(f"user list {s.user_list_id}")
            else:
                others.append(f"users {s.parameters.get('userIds', '')}")
        return describe(percentage, team, others)


# -- a flag on an Unleash server (its admin API) ----------------------------------------------

TEAM_MEMBER_FIELD = "gitlabTeamMember"  # the context field the application sets for GitLab team members
TEAM_CONSTRAINT = Constraint(context_name=TEAM_MEMBER_FIELD, operator="IN", values=("true",))
TEAM_STRATEGY = Strategy(name="default", title=TEAM_MEMBERS, constraints=(TEAM_CONSTRAINT,))


def _plain(strategy: Strategy) -> bool:
    return not strategy.constraints and not strategy.segments


def _is_team(strategy: Strategy) -> bool:
    return strategy.name == "default" and strategy.constraints == (TEAM_CONSTRAINT,) and not strategy.segments


def _other(strategy: Strategy) -> str:
    """A strategy a rollout did not set, named for a note: ``flexibleRollout 30 % where userId IN 7, 9``."""
    rollout = strategy.parameters.get("rollout")
    where = [f"{c.context_name} {'NOT ' if c.inverted else ''}{c.operator} {', '.join(c.values)}" for c in strategy.constraints]
    return " ".join([strategy.title or strategy.name, *([f"{rollout} %"] if rollout else []),
                     *([f"where {' and '.join(where)}"] if where else []), *(f"in segment {s}" for s in strategy.segments)])  # fmt: skip


class UnleashFlag:
    """A flag on an Unleash server, one Unleash environment per ladder environment:
    ``environments`` maps each (``{"staging": "development", "production": "production"}``), and a
    step in an environment it does not map is refused before any request. In each environment a
    ``flexibleRollout`` of ``userId`` for a percentage, the team-members strategy (see the module
    docstring) alongside it where ``keep_team_members_in`` says, the environment switched on; any
    other strategy found there is removed. ``off`` switches environments off and leaves their
    strategies, so a step applied again after a rollback only switches it back on."""

    def __init__(
        self,
        admin: UnleashAdmin,
        name: str,
        *,
        environments: Mapping[str, str],
        keep_team_members_in: Collection[str] = (PRODUCTION,),
        description: str = "",
    ) -> None:
        if not environments:
            raise ValueError("an Unleash flag needs at least one environment: map a ladder environment to an Unleash one")
        self.admin, self.name = admin, name
        self.environments = dict(sorted(environments.items()))
        self.keep_team_members_in = frozenset(keep_team_members_in)
        self.description = description or f"Rollout of {name}"

    def apply(self, step: LadderStep) -> None:
        env, want = self._env(step.environment), wanted(step, self.keep_team_members_in)
        if not want.percentage and not want.team_members:
            self.off(step.environment)
            return
        found = self.admin.environments(self.name)
        if found is None:
            self.admin.ensure_flag(self.name, self.description)
            found = self.admin.environments(self.name) or {}
        if env not in found:
            raise RolloutError(f"Unleash has no environment {env!r} for flag {self.name!r} (it has {', '.join(sorted(found)) or 'none'})")
        current, kept = found[env], set[str]()
        if want.percentage:
            params = {"rollout": str(want.percentage), "stickiness": "userId", "groupId": self.name}
            rollouts = [s for s in current.strategies if s.name == ROLLOUT]
            exact = next((s for s in rollouts if _plain(s) and s.parameters == params and not s.disabled), None)
            if exact is not None:
                kept.add(exact.id)
            elif rollouts and _plain(rollouts[0]):  # the one set_rollout manages: changed in place, keeping its id
                self.admin.set_rollout(self.name, env, want.percentage, stickiness="userId", group_id=self.name)
                kept.add(rollouts[0].id)
            else:
                self.admin.add_strategy(self.name, env, Strategy(name=ROLLOUT, parameters=params))
        if want.team_members:
            team = next((s for s in current.strategies if _is_team(s) and not s.disabled), None)
            if team is not None:
                kept.add(team.id)
            else:
                self.admin.ensure_context_field(TEAM_MEMBER_FIELD, "A GitLab team member (gitlab_team_members)", ("true", "false"))
                self.admin.add_strategy(self.name, env, TEAM_STRATEGY)
        # Removed after the adds: an environment switched on with no strategy left is on for everyone.
        for strategy in current.strategies:
            if strategy.id not in kept:
                self.admin.remove_strategy(self.name, env, strategy.id)
        if not current.enabled:
            self.admin.enable(self.name, env)

    def off(self, environment: str | None = None) -> None:
        """One write per environment (no read first: a rollback must not trust a stale read); a flag not there is off."""
        for env in [self._env(environment)] if environment else list(self.environments.values()):
            try:
                self.admin.disable(self.name, env)
            except UnleashError as err:
                if err.status in (400, 404) and self.admin.environments(self.name) is None:
                    return  # never made (404) or archived (400): off everywhere
                raise

    def remove(self) -> None:
        """Archive the flag (Unleash's delete); one already archived, or never made, is fine."""
        self.admin.archive(self.name)

    def state(self) -> dict[str, str]:
        found = self.admin.environments(self.name) or {}
        return {ladder: self._readable(found.get(env)) for ladder, env in self.environments.items()}

    def _env(self, environment: str) -> str:
        if environment not in self.environments:
            raise RolloutError(
                f"no Unleash environment is mapped for {environment!r} (only {', '.join(self.environments)}): "
                f"Unleash flag {self.name!r} cannot be set there"
            )
        return self.environments[environment]

    @staticmethod
    def _readable(env: Environment | None) -> str:
        if env is None or not env.enabled:
            return OFF
        active = [s for s in env.strategies if not s.disabled]
        if not active:
            return EVERYONE  # Unleash lets everyone in when an environment is on with no strategy
        percentage, team, others = 0.0, False, []
        for s in active:
            if _plain(s) and s.name == "default":
                percentage = 100.0
            elif _plain(s) and s.name == ROLLOUT:
                percentage = max(percentage, float(s.parameters.get("rollout", "0")))
            elif _is_team(s):
                team = True
            else:
                others.append(_other(s))
        return describe(percentage, team, others)
