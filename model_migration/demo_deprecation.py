"""``demo --deprecation``: Claude 3.7 Sonnet retires; its features move to the chosen replacement.

A rehearsal: every plan day lasts ``--day-seconds``. The cutoff is six weeks out, so the epic is
due in two (four weeks' lead), and the backward plan has just room for the work. Claude Sonnet
4.5 (the provider's recommendation) and Claude Haiku 4.5 run a tournament on each feature's
dataset; a clear winner is taken, a close call is settled as AI Framework would. Each team then
plays its part; one is late and gets the deprecation's escalations.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel
from temporalio.client import Client

from model_migration import operations as ops
from model_migration.demo import hold, stage, wait_for
from model_migration.domain.catalog import Catalog
from model_migration.domain.deprecation import DeprecationRequest, check_request
from model_migration.domain.escalation import scaled_ladder
from model_migration.domain.models import EpicRef
from model_migration.domain.replacement import tournament_table
from model_migration.domain.stages import FeatureStage, MigrationStage
from workflows.deprecation import ModelDeprecationWorkflow
from workflows.deprecation_messages import (
    DeprecationInput,
    DeprecationResult,
    DeprecationStage,
    DeprecationStatus,
    SelectReplacement,
    deprecation_id,
)
from workflows.messages import CompleteStage, ReportRollout, Tunables, feature_workflow_id

RETIRING, RECOMMENDED, CANDIDATE = "claude_3_7_sonnet_20250219", "claude_sonnet_4_5_20250929", "claude_haiku_4_5_20251001"
LATE = "root_cause_analysis"  # this team starts late: the deprecation's escalations reach it
ANNOUNCEMENT = "https://docs.anthropic.com/en/docs/about-claude/model-deprecations"


class DeprecationSummary(BaseModel):
    deprecation_id: str
    epic_url: str
    replacement: str
    fallback: str
    tournament: str
    features: dict[str, str]
    escalations: list[str]
    due: str
    cutoff: str


def demo_input(catalog: Catalog, day: timedelta, now: datetime) -> DeprecationInput:
    today = now.date()
    request = DeprecationRequest(
        model=RETIRING, deprecation_date=today, cutoff=today + timedelta(weeks=8), announcement_url=ANNOUNCEMENT,
        recommended=RECOMMENDED, candidates=(CANDIDATE,),
    )
    features = check_request(request, catalog, today)
    tunables = Tunables(
        ladder=scaled_ladder(day), activity_timeout=timedelta(seconds=10), merge_poll=timedelta(seconds=1),
        evaluation_poll=timedelta(seconds=0.2), evaluation_heartbeat=timedelta(seconds=10),
    )
    return DeprecationInput(
        request=request, retiring=catalog.model(RETIRING), recommended=catalog.model(RECOMMENDED),
        candidates=(catalog.model(CANDIDATE),), features=features, tunables=tunables, day=day, planned_from=now,
    )


async def run_deprecation_demo(*, as_json: bool, keep: bool, state_dir: Path | None, day_seconds: float) -> int:
    day = timedelta(seconds=day_seconds)
    async with stage(as_json=as_json, state_dir=state_dir, simulator={"run_seconds": 0, "profiles": {}}) as on:
        client, say = on.client, on.say
        request = demo_input(on.catalog, day, datetime.now(UTC))
        wid = deprecation_id(request.retiring)
        handle = await client.start_workflow(ModelDeprecationWorkflow.run, request, id=wid, task_queue=on.settings.task_queue)
        say.print(f"Started {wid}: {len(request.features)} features on {RETIRING}; a plan day lasts {day_seconds:g} s")
        st = await _until(client, wid, lambda s: s.stage != DeprecationStage.TOURNAMENT)
        say.print(f"  epic {st.epic_url}\n  tournament: {st.choice.reason if st.choice else ''}")
        say.print(tournament_table(st.tournament, {}))
        if st.stage == DeprecationStage.SELECTING:
            leader = st.choice.leader if st.choice and st.choice.leader else RECOMMENDED
            await handle.execute_update("select_replacement", SelectReplacement(
                model=leader, reason="the tournament's leader; the margin is small but it is the provider's recommendation",
            ))
            say.print(f"  ai-framework: chose {leader}")
        st = await _until(client, wid, lambda s: s.stage == DeprecationStage.MIGRATING)
        say.print(f"  replacement {st.replacement} (fallback {st.fallback or 'none'}); migration {st.migration_id}")
        await _merge_model_configuration(client, st.migration_id, say)
        await asyncio.gather(*(_play_team(client, st.migration_id, f.name, wid, say) for f in request.features))
        result: DeprecationResult = await handle.result()
        summary = _summary(result, st)
        _print(on.say, summary, as_json)
        await hold(keep, say)
    return 0 if result.all_finished and all(f.stage == FeatureStage.DONE for f in result.features) else 1


async def _until(client: Client, wid: str, ready, timeout: float = 180.0) -> DeprecationStatus:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        st = await client.get_workflow_handle(wid).query("status", result_type=DeprecationStatus)
        if ready(st):
            return st
        if loop.time() > end:
            raise ops.UserError(f"the demo waited {timeout:.0f}s for {wid} and gave up")
        await asyncio.sleep(0.25)


async def _merge_model_configuration(client: Client, migration: str, say) -> None:  # type: ignore[no-untyped-def]
    """AI Framework completes init once the configuration merge request is open."""
    await wait_for(client, migration, lambda s: bool(s.config_mr_url))
    await ops.send(client, migration, "complete_stage", CompleteStage(stage=MigrationStage.INIT, actor="ai-framework", note="merged"))
    say.print("  ai-framework: model configuration merged; the feature migrations start")


async def _play_team(client: Client, migration: str, feature: str, deprecation: str, say) -> None:  # type: ignore[no-untyped-def]
    wid = feature_workflow_id(migration, feature)
    st = await wait_for(client, wid, lambda s: s.issue is not None)
    dri = st.pending_action.owner if st.pending_action else "team"
    if feature == LATE:
        say.print(f"  {feature}: the team is late; the deprecation escalates")
        await _until(client, deprecation, lambda s: any(feature in e.features for e in s.fired), timeout=300)
    await ops.send(client, wid, "complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor=dri, prompt_version="1.0.0-dev"))
    await wait_for(client, wid, lambda s: s.stage == FeatureStage.ROLLOUT)  # the simulator passes every gate
    for pct in (1, 10, 25, 50, 75, 100):
        await ops.send(client, wid, "report_rollout", ReportRollout(actor=dri, percentage=pct))
    await ops.send(client, wid, "complete_stage", CompleteStage(stage=FeatureStage.CLEANUP, actor=dri, note="flag removed"))
    say.print(f"  {feature}: done")


def _summary(result: DeprecationResult, st: DeprecationStatus) -> DeprecationSummary:
    return DeprecationSummary(
        deprecation_id=result.workflow_id, epic_url=result.epic_url, replacement=result.replacement, fallback=result.fallback,
        tournament=tournament_table(st.tournament, {}), features={f.feature: f.outcome or str(f.stage) for f in result.features},
        escalations=[f"{e.on} {e.name}: {', '.join(e.features)}" for e in result.escalations if e.features],
        due=str(result.due), cutoff=str(result.cutoff),
    )


def _print(say, summary: DeprecationSummary, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        print(json.dumps(summary.model_dump(mode="json"), indent=2))
        return
    say.print("\n[bold]Summary[/bold]")
    say.print(f"Deprecation: {summary.deprecation_id} (due {summary.due}, cutoff {summary.cutoff})")
    say.print(f"Epic:        {summary.epic_url}  ({EpicRef.from_web_url(summary.epic_url)})")
    say.print(f"Replacement: {summary.replacement} (fallback {summary.fallback or 'none'})")
    for name, outcome in summary.features.items():
        say.print(f"  {name:<26} {outcome}")
    say.print("Escalations:")
    for line in summary.escalations:
        say.print(f"  {line}")
