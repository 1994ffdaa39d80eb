"""The deprecation watch's one activity: what the catalog and the AI gateway say is retiring becomes deprecations.

A pass reads both sources and merges their notices (one per model), asks Temporal what each
notice's deprecation runs to now, starts the new ones and moves the cutoff of the moved ones.
Passes are idempotent: what one pass started is known to the next (and to a retry of the same
pass), and a start that loses a race to another starter finds the workflow id taken and counts
it as known. An unreachable gateway is reported, not raised: the catalog's notices still run,
and the next pass reads the gateway again.

The Temporal side (describe, query, start, update) comes in as a ``Deprecations`` port built by
``worker.py`` around its client: the deprecation's wire types live in ``workflows/``, which
activities do not import.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from typing import Protocol

import structlog
from pydantic import BaseModel, ConfigDict
from temporalio import activity

from activities.watch_payloads import WATCH_ACTIVITY, CutoffMove, Skipped, SourceError, WatchInput, WatchReport
from model_migration.domain.catalog import Catalog
from model_migration.domain.deprecation_notices import (
    DeprecationNotice,
    GatewayModel,
    NoticeSource,
    changes,
    deprecation_workflow_id,
    merge_notices,
    notices_from_catalog,
    notices_from_gateway,
)
from model_migration.domain.errors import DomainError, ErrorType

log = structlog.get_logger("activities.watch")
#: How a notice's source is named to people: "the AI gateway now says 2027-03-18".
SOURCE_NAMES = {NoticeSource.CATALOG: "catalog", NoticeSource.AI_GATEWAY: "AI gateway"}


class GatewayReader(Protocol):
    """``AiGatewayClient``, or a test's stand-in."""

    def model_definitions(self) -> list[GatewayModel]: ...

    def close(self) -> None: ...


class KnownDeprecation(BaseModel):
    """A deprecation workflow that exists: the cutoff a running one plans to, or how a closed one ended."""

    model_config = ConfigDict(frozen=True)
    workflow_id: str
    running: bool
    cutoff: date | None = None
    state: str = ""


class AlreadyStarted(DomainError):
    """The workflow id is taken by a running deprecation (another starter got there first)."""

    type = ErrorType.INVALID_INPUT


class Deprecations(Protocol):
    """What the watch does to deprecation workflows. Errors are ``DomainError`` lines."""

    async def find(self, workflow_id: str) -> KnownDeprecation | None: ...

    async def start(self, notice: DeprecationNotice, actor: str) -> str:
        """Start the notice's deprecation as ``model-migration deprecate`` would; its workflow id.
        ``AlreadyStarted`` when it runs already; another ``DomainError`` when the notice cannot start one."""
        ...

    async def update_cutoff(self, workflow_id: str, new_date: date, reason: str, actor: str, request_id: str) -> None: ...


class WatchActivities:
    def __init__(self, deprecations: Deprecations, catalog: Catalog, gateway: Callable[[], GatewayReader]) -> None:
        self.deprecations = deprecations
        self.catalog = catalog
        self._gateway = gateway

    @activity.defn(name=WATCH_ACTIVITY)
    async def watch_deprecations(self, request: WatchInput) -> WatchReport:
        """One pass over the sources; see the module's docstring."""
        info = activity.info()
        bound = log.bind(workflow_id=info.workflow_id, activity=WATCH_ACTIVITY, attempt=info.attempt)
        sources = [notices_from_catalog(self.catalog)]
        errors: list[SourceError] = []
        if request.gateway:
            try:
                sources.append(await asyncio.to_thread(self._gateway_notices))
            except Exception as err:  # noqa: BLE001 - any failure of this source is reported; the others still run
                errors.append(SourceError(source=SOURCE_NAMES[NoticeSource.AI_GATEWAY], error=_line(err)))
                bound.warning("watch_source_failed", source="ai_gateway", error=errors[-1].error)
        notices = merge_notices(*sources)
        watch = _Pass(self.deprecations, request.actor, f"{info.workflow_id}/{info.workflow_run_id}")
        await watch.run(notices)
        report = WatchReport(
            notices=len(notices), started=tuple(watch.started), updated=tuple(watch.updated), skipped=tuple(watch.skipped),
            source_errors=tuple(errors),
        )
        bound.info("watch_done", notices=report.notices, started=list(report.started),
                   updated=[m.workflow_id for m in report.updated], skipped=len(report.skipped), source_errors=len(errors))
        return report

    def _gateway_notices(self) -> list[DeprecationNotice]:
        client = self._gateway()
        try:
            return notices_from_gateway(client.model_definitions(), self.catalog)
        finally:
            client.close()


class _Pass:
    """One pass's bookkeeping: what it started, moved and skipped."""

    def __init__(self, deprecations: Deprecations, actor: str, run_key: str) -> None:
        self.deprecations = deprecations
        self.actor = actor
        self.run_key = run_key  # the watch run's, so a retried pass sends each update once
        self.started: list[str] = []
        self.updated: list[CutoffMove] = []
        self.skipped: list[Skipped] = []

    def skip(self, notice: DeprecationNotice, reason: str) -> None:
        self.skipped.append(Skipped(workflow_id=deprecation_workflow_id(notice), model=notice.model, reason=reason))

    async def run(self, notices: list[DeprecationNotice]) -> None:
        # One notice per workflow id, picked as ``changes`` picks it (the sooner cutoff).
        first: dict[str, DeprecationNotice] = {}
        for notice in sorted(notices, key=lambda n: (deprecation_workflow_id(n), n.cutoff, n.model)):
            first.setdefault(deprecation_workflow_id(notice), notice)
        known: dict[str, date] = {}
        open_notices = []
        for workflow_id, notice in first.items():
            try:
                found = await self.deprecations.find(workflow_id)
            except DomainError as err:
                self.skip(notice, f"cannot be read: {_line(err)}")
                continue
            if found is not None and not found.running:
                self.skip(notice, f"its deprecation has finished ({found.state or 'closed'}); the watch does not start it again")
                continue
            if found is not None and found.cutoff is not None:
                known[workflow_id] = found.cutoff
            open_notices.append(notice)
        new, moved = changes(known, open_notices)
        moves = [(n, known[deprecation_workflow_id(n)]) for n in moved]
        for notice in new:
            moves += await self._start(notice)
        for notice, old in moves:
            await self._move(notice, old)

    async def _start(self, notice: DeprecationNotice) -> list[tuple[DeprecationNotice, date]]:
        """Start it; a lost race makes it known, and moved when it runs to another cutoff."""
        workflow_id = deprecation_workflow_id(notice)
        try:
            self.started.append(await self.deprecations.start(notice, self.actor))
            return []
        except AlreadyStarted:
            pass
        except DomainError as err:
            self.skip(notice, _line(err))
            return []
        try:
            found = await self.deprecations.find(workflow_id)
        except DomainError as err:
            self.skip(notice, f"started meanwhile by another starter, and cannot be read: {_line(err)}")
            return []
        if found is not None and found.running and found.cutoff is not None and found.cutoff != notice.cutoff:
            return [(notice, found.cutoff)]
        self.skip(notice, "started meanwhile by another starter")
        return []

    async def _move(self, notice: DeprecationNotice, old: date) -> None:
        workflow_id = deprecation_workflow_id(notice)
        source = SOURCE_NAMES[notice.source]
        reason = f"the {source} now says {notice.cutoff}"
        request_id = f"{self.run_key}:{workflow_id}:cutoff:{notice.cutoff}"
        try:
            await self.deprecations.update_cutoff(workflow_id, notice.cutoff, reason, self.actor, request_id)
        except DomainError as err:
            self.skip(notice, f"cutoff {old} → {notice.cutoff} not moved: {_line(err)}")
            return
        self.updated.append(CutoffMove(workflow_id=workflow_id, old=old, new=notice.cutoff, source=source))


def _line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]
