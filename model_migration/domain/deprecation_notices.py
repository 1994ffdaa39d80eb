"""Deprecation notices: what the sources say is retiring, one notice per model, and what changed since.

A daily watch reads two sources and starts one deprecation per notice:

- the catalog: ``ModelDefinition.deprecation``, with the provider's retirement date;
- the AI gateway's ``GET /v1/models/definitions``: per model, ``deprecation {deprecation_date,
  removal_version}``, and no retirement date.

Only a model that some catalog feature uses now gives a notice: retiring a model nobody uses
replaces nothing (``check_request`` refuses it too).

The cutoff (the retirement date) of a notice:

- from the catalog: its ``retirement_date``; without one, the release date of its
  ``removal_version``; without either, no notice;
- from the gateway: the catalog's ``retirement_date`` when the catalog names the same removal
  version (the same removal, whose provider's day the catalog knows), else the release date of
  the gateway's ``removal_version``: GitLab no longer serves the model from that release on.

Where both sources have a notice for a model, the later announcement (``deprecation_date``)
wins, and on the same date the gateway's: the gateway is what production runs and is read live
every day, while the catalog changes only with this engine's releases.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from model_migration.domain.catalog import Catalog
from model_migration.domain.deprecation import DeprecationError, DeprecationRequest
from model_migration.domain.models import ModelDefinition, ModelDeprecation

FROZEN = ConfigDict(frozen=True)
_VERSION = re.compile(r"^(?P<major>\d+)\.(?P<minor>\d+)$")
#: From 16.6 (November 2023) GitLab releases on the third Thursday of the month, before on the 22nd.
_THIRD_THURSDAY_FROM = (16, 6)


class NoticeSource(StrEnum):
    CATALOG = "catalog"
    AI_GATEWAY = "ai_gateway"


#: Which source wins when two notices for a model were announced on the same day.
_PRIORITY = {NoticeSource.CATALOG: 0, NoticeSource.AI_GATEWAY: 1}


class GatewayDeprecation(BaseModel):
    """A model's ``deprecation`` as the AI gateway serves it (its ``DeprecationInfo``)."""

    model_config = FROZEN
    deprecation_date: date
    removal_version: str


class GatewayModel(BaseModel):
    """One entry of ``models`` in the AI gateway's ``GET /v1/models/definitions``.

    ``provider`` is the gateway's display name ("Anthropic", "Vertex"), not the catalog's key."""

    model_config = FROZEN
    identifier: str  # the gitlab_identifier
    name: str
    provider: str | None = None
    deprecation: GatewayDeprecation | None = None
    description: str | None = None
    cost_indicator: str | None = None


class DeprecationNotice(BaseModel):
    """One source's word that ``model`` retires on ``cutoff``; ``cutoff_basis`` says where the date came from."""

    model_config = FROZEN
    model: str  # gitlab_identifier
    provider: str  # the catalog's provider key, e.g. "vertex_ai"
    slug: str  # the catalog's model slug, e.g. "code-gecko"
    deprecation_date: date
    cutoff: date
    source: NoticeSource
    cutoff_basis: str = ""
    removal_version: str | None = None
    announcement_url: str = ""

    def request(self) -> DeprecationRequest:
        """What a deprecation started from this notice asks for."""
        return DeprecationRequest(
            model=self.model, deprecation_date=self.deprecation_date, cutoff=self.cutoff, announcement_url=self.announcement_url,
        )


def deprecation_workflow_id(notice: DeprecationNotice) -> str:
    """``deprecation:<provider>/<model>``, the business key of the model's deprecation."""
    return f"deprecation:{notice.provider}/{notice.slug}"


def release_date(version: str) -> date:
    """The day GitLab ``major.minor`` was (or will be) released, from 15.0 on.

    One release a month, ``M.0`` in May of ``2007 + M``, so minors run 0–11; on the 22nd until
    16.5, on the third Thursday from 16.6. ``ValueError`` for anything else."""
    found = _VERSION.match(version.strip())
    if found is None:
        raise ValueError(f"{version!r} is not a GitLab version (major.minor)")
    major, minor = int(found["major"]), int(found["minor"])
    if major < 15 or minor > 11:
        raise ValueError(f"{version!r} is not on GitLab's monthly release calendar (15.0 or later, minors 0–11)")
    months = (major - 15) * 12 + minor + 4  # 15.0: May 2022, month index 4
    year, month = 2022 + months // 12, months % 12 + 1
    if (major, minor) < _THIRD_THURSDAY_FROM:
        return date(year, month, 22)
    first = date(year, month, 1)
    return first + timedelta(days=(3 - first.weekday()) % 7 + 14)


def notices_from_catalog(catalog: Catalog) -> list[DeprecationNotice]:
    """A notice per deprecated catalog model some feature uses, soonest cutoff first."""
    notices = []
    for model in catalog.models:
        if model.deprecation is None or not catalog.features_on(model.gitlab_identifier):
            continue
        cutoff = _catalog_cutoff(model.deprecation)
        if cutoff is None:
            continue  # neither a retirement date nor a removal version on the calendar: nothing to plan against
        notices.append(_notice(model, model.deprecation.deprecation_date, *cutoff, NoticeSource.CATALOG, model.deprecation.removal_version))
    return _ordered(notices)


def notices_from_gateway(models: Iterable[GatewayModel], catalog: Catalog) -> list[DeprecationNotice]:
    """A notice per model the gateway marks deprecated that some catalog feature uses, soonest first.

    A model the catalog does not know is left out: no feature uses it. A used model whose removal
    version is not on GitLab's release calendar is one ``DeprecationError`` line."""
    known = {m.gitlab_identifier: m for m in catalog.models}
    notices = []
    for served in models:
        model = known.get(served.identifier)
        if served.deprecation is None or model is None or not catalog.features_on(model.gitlab_identifier):
            continue
        version = served.deprecation.removal_version
        ours = model.deprecation
        if ours is not None and ours.retirement_date is not None and ours.removal_version == version:
            cutoff = (ours.retirement_date, f"retirement date (catalog), removed in GitLab {version}")
        else:
            try:
                cutoff = (release_date(version), f"release of GitLab {version}")
            except ValueError as err:
                raise DeprecationError(f"the AI gateway's deprecation of {model.gitlab_identifier}: {err}") from None
        notices.append(_notice(model, served.deprecation.deprecation_date, *cutoff, NoticeSource.AI_GATEWAY, version))
    return _ordered(notices)


def merge_notices(*sources: Iterable[DeprecationNotice]) -> list[DeprecationNotice]:
    """One notice per model: the later announcement wins; on the same day the gateway's, then the
    sooner cutoff. Soonest cutoff first."""
    best: dict[str, DeprecationNotice] = {}
    for notice in (n for source in sources for n in source):
        held = best.get(notice.model)
        if held is None or _rank(notice) > _rank(held):
            best[notice.model] = notice
    return _ordered(best.values())


class Changes(NamedTuple):
    """What a watch does with the notices: start each ``new`` one, ``update_cutoff`` on each ``moved`` one."""

    new: tuple[DeprecationNotice, ...]
    moved: tuple[DeprecationNotice, ...]

    def known_after(self, known: Mapping[str, date]) -> dict[str, date]:
        """``known`` once the new ones are started and the moved ones updated."""
        return {**known, **{deprecation_workflow_id(n): n.cutoff for n in (*self.new, *self.moved)}}


def changes(known: Mapping[str, date], notices: Iterable[DeprecationNotice]) -> Changes:
    """Against ``known`` (workflow id → the cutoff its deprecation runs to): the notices with no
    deprecation yet, and those whose cutoff moved, either way.

    A known deprecation with no notice any more is not reported: a withdrawn notice is for a person
    to judge, not for a watch to cancel. Two notices with one workflow id (two versions of one
    provider/model slug) count once, by the sooner cutoff."""
    new: list[DeprecationNotice] = []
    moved: list[DeprecationNotice] = []
    seen: set[str] = set()
    for notice in sorted(notices, key=lambda n: (deprecation_workflow_id(n), n.cutoff, n.model)):
        key = deprecation_workflow_id(notice)
        if key in seen:
            continue
        seen.add(key)
        if key not in known:
            new.append(notice)
        elif known[key] != notice.cutoff:
            moved.append(notice)
    return Changes(new=tuple(_ordered(new)), moved=tuple(_ordered(moved)))


def _catalog_cutoff(deprecation: ModelDeprecation) -> tuple[date, str] | None:
    if deprecation.retirement_date is not None:
        return deprecation.retirement_date, "retirement date (catalog)"
    if deprecation.removal_version:
        try:
            return release_date(deprecation.removal_version), f"release of GitLab {deprecation.removal_version}"
        except ValueError:
            return None
    return None


def _notice(
    model: ModelDefinition, announced: date, cutoff: date, basis: str, source: NoticeSource, removal_version: str | None,
) -> DeprecationNotice:
    return DeprecationNotice(
        model=model.gitlab_identifier, provider=model.provider, slug=model.model, deprecation_date=announced,
        cutoff=cutoff, cutoff_basis=basis, source=source, removal_version=removal_version,
    )


def _rank(notice: DeprecationNotice) -> tuple[date, int, int]:
    return notice.deprecation_date, _PRIORITY[notice.source], -notice.cutoff.toordinal()


def _ordered(notices: Iterable[DeprecationNotice]) -> list[DeprecationNotice]:
    return sorted(notices, key=lambda n: (n.cutoff, deprecation_workflow_id(n), n.model))

