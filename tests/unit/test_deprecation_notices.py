"""Deprecation notices from the catalog and the AI gateway: cutoffs, merging, and what a watch would start or move."""

from __future__ import annotations

from datetime import date

import pytest

from model_migration.catalog import load_catalog
from model_migration.domain.catalog import Catalog
from model_migration.domain.deprecation import DeprecationError, check_request
from model_migration.domain.deprecation_notices import (
    DeprecationNotice,
    GatewayDeprecation,
    GatewayModel,
    NoticeSource,
    changes,
    deprecation_workflow_id,
    merge_notices,
    notices_from_catalog,
    notices_from_gateway,
    release_date,
)
from model_migration.domain.models import ModelDeprecation

CATALOG = load_catalog()
SONNET_37, HAIKU_35, SONNET_4 = "claude_3_7_sonnet_20250219", "claude_3_5_haiku_20241022", "claude_sonnet_4_20250514"
GECKO = "code_gecko_002"
GECKO_ID = "deprecation:vertex_ai/code-gecko"
#: No shipped feature runs on code-gecko any more; in 2024 Code Completion did.
ON_GECKO = CATALOG.model_copy(update={"features": tuple(
    f.model_copy(update={"current_model": GECKO}) if f.name == "code_completion" else f for f in CATALOG.features
)})


def with_deprecation(catalog: Catalog, identifier: str, deprecation: ModelDeprecation | None) -> Catalog:
    models = tuple(m.model_copy(update={"deprecation": deprecation}) if m.gitlab_identifier == identifier else m for m in catalog.models)
    return catalog.model_copy(update={"models": models})


def served(identifier: str, announced: str | None = None, removal: str = "") -> GatewayModel:
    """A model as the gateway's definitions list it; deprecated when ``announced`` is given."""
    deprecation = GatewayDeprecation(deprecation_date=date.fromisoformat(announced), removal_version=removal) if announced else None
    return GatewayModel(identifier=identifier, name=identifier, provider="Anthropic", deprecation=deprecation)


def by_model(notices: list[DeprecationNotice]) -> dict[str, DeprecationNotice]:
    return {n.model: n for n in notices}


# -- GitLab's release calendar ---------------------------------------------------------------


@pytest.mark.parametrize(("version", "released"), [
    ("15.0", date(2022, 5, 22)), ("16.5", date(2023, 10, 22)), ("16.6", date(2023, 11, 16)), ("17.0", date(2024, 5, 16)),
    ("17.11", date(2025, 4, 17)), ("18.0", date(2025, 5, 15)), ("18.8", date(2026, 1, 15)), ("18.9", date(2026, 2, 19)),
])
def test_release_dates_are_gitlabs(version: str, released: date) -> None:
    """Monthly releases, x.0 in May: the 22nd until 16.5, the third Thursday from 16.6, as GitLab released them."""
    assert release_date(version) == released


@pytest.mark.parametrize("version", ["14.10", "18.12", "18", "next", "18.9.1"])
def test_versions_off_the_calendar_are_refused(version: str) -> None:
    """A version with no monthly release date is a ValueError, not a guessed day."""
    with pytest.raises(ValueError, match="GitLab"):
        release_date(version)


# -- the catalog -----------------------------------------------------------------------------


def test_shipped_catalog_gives_a_notice_per_deprecated_model_in_use() -> None:
    """Claude 3.7 Sonnet, 3.5 Haiku and Sonnet 4 retire on the providers' days; code-gecko, used by nothing, gives none."""
    notices = notices_from_catalog(CATALOG)
    assert [(n.model, n.cutoff) for n in notices] == [
        (HAIKU_35, date(2026, 2, 19)), (SONNET_37, date(2026, 2, 19)), (SONNET_4, date(2026, 6, 15)),
    ]  # soonest first, then by workflow id
    sonnet = by_model(notices)[SONNET_37]
    assert sonnet.deprecation_date == date(2025, 10, 28) and sonnet.source == NoticeSource.CATALOG and sonnet.removal_version == "18.9"
    assert deprecation_workflow_id(sonnet) == "deprecation:anthropic/claude-3-7-sonnet"


def test_a_catalog_notice_is_a_deprecation_request_that_passes_its_checks() -> None:
    """What a watch would start from a notice passes check_request, and names the features on the model."""
    sonnet = by_model(notices_from_catalog(CATALOG))[SONNET_37]
    features = check_request(sonnet.request(), CATALOG, today=date(2025, 11, 1))
    assert {f.name for f in features} == {f.name for f in CATALOG.features_on(SONNET_37)}


def test_catalog_cutoff_falls_back_to_the_removal_release_then_to_nothing() -> None:
    """No retirement date: the removal version's release; neither: no notice, since there is nothing to plan against."""
    removal_only = with_deprecation(CATALOG, SONNET_37, ModelDeprecation(deprecation_date=date(2025, 10, 28), removal_version="18.8"))
    notice = by_model(notices_from_catalog(removal_only))[SONNET_37]
    assert notice.cutoff == date(2026, 1, 15) and "18.8" in notice.cutoff_basis
    bare = with_deprecation(CATALOG, SONNET_37, ModelDeprecation(deprecation_date=date(2025, 10, 28)))
    assert SONNET_37 not in by_model(notices_from_catalog(bare))


# -- the AI gateway --------------------------------------------------------------------------


def test_gateway_cutoff_is_the_catalogs_day_for_the_same_removal_else_the_release() -> None:
    """Same removal version as the catalog: the provider's day it knows; another one: that release's date."""
    notices = by_model(notices_from_gateway([served(SONNET_37, "2025-10-28", "18.9"), served(HAIKU_35, "2025-12-19", "18.8")], CATALOG))
    assert notices[SONNET_37].cutoff == date(2026, 2, 19) and notices[SONNET_37].source == NoticeSource.AI_GATEWAY
    assert notices[HAIKU_35].cutoff == date(2026, 1, 15) and notices[HAIKU_35].cutoff_basis == "release of GitLab 18.8"


def test_gateway_models_no_feature_uses_give_no_notice() -> None:
    """Not deprecated, unknown to the catalog, or used by no feature (code-gecko today): left out."""
    models = [served("claude_sonnet_4_5_20250929"), served("some_new_model", "2025-01-01", "18.0"), served(GECKO, "2024-04-09", "17.11")]
    assert notices_from_gateway(models, CATALOG) == []
    assert [n.model for n in notices_from_gateway(models, ON_GECKO)] == [GECKO]


def test_an_unplaceable_removal_version_on_a_used_model_is_one_line() -> None:
    """A used model removed in a version with no release date is refused in one line naming it; an unused one is ignored."""
    with pytest.raises(DeprecationError) as refused:
        notices_from_gateway([served(SONNET_37, "2025-10-28", "next")], CATALOG)
    assert SONNET_37 in refused.value.message and "\n" not in refused.value.message
    assert notices_from_gateway([served(GECKO, "2024-04-09", "next")], CATALOG) == []


# -- merging ---------------------------------------------------------------------------------


def test_merge_keeps_one_notice_per_model_and_the_gateway_wins_a_same_day_disagreement() -> None:
    """Announced the same day, the gateway's removal in 18.8 beats the catalog's 2026-02-19; models in one source only stay."""
    gateway = notices_from_gateway([served(SONNET_37, "2025-10-28", "18.8")], CATALOG)
    merged = by_model(merge_notices(notices_from_catalog(CATALOG), gateway))
    assert set(merged) == {SONNET_37, HAIKU_35, SONNET_4}
    assert merged[SONNET_37].cutoff == date(2026, 1, 15) and merged[SONNET_37].source == NoticeSource.AI_GATEWAY
    assert merge_notices(gateway, notices_from_catalog(CATALOG)) == merge_notices(notices_from_catalog(CATALOG), gateway)  # order-free


def test_merge_lets_the_later_announcement_win_whichever_source_has_it() -> None:
    """The catalog's newer announcement (a later deprecation date) beats the gateway's older one."""
    renewed = ModelDeprecation(deprecation_date=date(2025, 12, 1), removal_version="19.0", retirement_date=date(2026, 5, 1))
    catalog = with_deprecation(CATALOG, SONNET_37, renewed)
    gateway = notices_from_gateway([served(SONNET_37, "2025-10-28", "18.9")], catalog)
    merged = by_model(merge_notices(gateway, notices_from_catalog(catalog)))[SONNET_37]
    assert (merged.cutoff, merged.source) == (date(2026, 5, 1), NoticeSource.CATALOG)


# -- what a watch starts or moves ------------------------------------------------------------


def test_code_gecko_shutdown_moved_by_google_is_moved_not_new() -> None:
    """Google moved code-gecko@002's shutdown from 2024-10-09 to 2025-04-09: the running deprecation moves, none starts."""
    first = with_deprecation(ON_GECKO, GECKO, ModelDeprecation(deprecation_date=date(2024, 4, 9), retirement_date=date(2024, 10, 9)))
    started = changes({}, notices_from_catalog(first))
    assert [deprecation_workflow_id(n) for n in started.new if n.model == GECKO] == [GECKO_ID]
    known = started.known_after({})
    assert known[GECKO_ID] == date(2024, 10, 9)

    # The shipped catalog has the new day; the gateway still removes it in 17.11, the same removal.
    now = merge_notices(notices_from_catalog(ON_GECKO), notices_from_gateway([served(GECKO, "2024-04-09", "17.11")], ON_GECKO))
    new, moved = changes(known, now)
    assert new == ()
    assert [(deprecation_workflow_id(n), n.cutoff) for n in moved] == [(GECKO_ID, date(2025, 4, 9))]


def test_changes_twice_over_the_same_sources_report_nothing_the_second_time() -> None:
    """Once the new ones are started and the moved ones updated, the same notices change nothing."""
    notices = merge_notices(notices_from_catalog(ON_GECKO), notices_from_gateway([served(SONNET_37, "2025-10-28", "18.8")], ON_GECKO))
    found = changes({GECKO_ID: date(2024, 10, 9)}, notices)
    assert len(found.new) == 3 and [n.model for n in found.moved] == [GECKO]
    again = changes(found.known_after({GECKO_ID: date(2024, 10, 9)}), notices)
    assert again == ((), ())


def test_a_known_deprecation_without_a_notice_is_not_reported() -> None:
    """A notice that disappears (un-deprecated) is not turned into anything: a person judges a withdrawal."""
    known = {GECKO_ID: date(2025, 4, 9), "deprecation:anthropic/claude-3-7-sonnet": date(2026, 2, 19)}
    assert changes(known, []) == ((), ())


def test_two_notices_with_one_workflow_id_count_once_by_the_sooner_cutoff() -> None:
    """Two versions of one provider/model slug share a deprecation id; the sooner cutoff is the one reported."""
    sonnet = by_model(notices_from_catalog(CATALOG))[SONNET_37]
    twin = sonnet.model_copy(update={"model": "claude_3_7_sonnet_twin", "cutoff": date(2026, 1, 1)})
    new, moved = changes({}, [sonnet, twin])
    assert [(n.model, n.cutoff) for n in new] == [("claude_3_7_sonnet_twin", date(2026, 1, 1))] and moved == ()
