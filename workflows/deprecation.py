"""ModelDeprecationWorkflow: from a provider's cutoff to a replaced model, planned backwards.

One run per retiring model (``deprecation:<provider>/<model>``):

1. the epic ``Replace discontinued <model> with <replacement, or TBD>``, due ``cutoff − lead``,
   filed under the initiative epic when one is configured;
2. a ``TournamentWorkflow`` per affected feature; a clear winner is chosen by itself, a close
   call waits for ``select_replacement`` under the escalation ladder; the runner-up is the fallback;
3. a child ``ModelMigrationWorkflow`` to the replacement, its stage due dates planned backwards
   from the epic's due date; its tracking issue and feature issues go into the epic;
4. meanwhile the escalation calendar (T−14, T−7, T−2, the due date, daily from cutoff − 7) speaks
   to the features behind their backward plan; ``update_cutoff`` moves the plan and every timer;
5. done when every feature is done or aborted: the epic closes with a summary.

The rules are pure, in ``domain/deprecation*.py`` and ``domain/replacement.py``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    import workflows.metrics as metrics
    from activities import interface
    from activities.payloads import (
        EnsureEpicInput,
        EnsureLabelsInput,
        EpicInfo,
        FileEpicInput,
        PostEpicNoteInput,
        PostNoteInput,
        UpdateEpicInput,
    )
    from model_migration.domain.deadlines import StagePlan
    from model_migration.domain.deprecation import BackwardPlan, CalendarEntry, backward_plan, escalation_calendar
    from model_migration.domain.deprecation_epic import LABELS, epic_body, epic_title
    from model_migration.domain.deprecation_run import (
        AI_FRAMEWORK,
        FeatureResult,
        FiredEntry,
        PlanClock,
        closing_summary,
        epic_note,
        feature_note,
        late_features,
        targets,
    )
    from model_migration.domain.errors import ErrorType
    from model_migration.domain.models import EpicDraft, EpicRef, ModelDefinition, marker_comment
    from model_migration.domain.notes import mention
    from model_migration.domain.replacement import Choice, choose, tournament_table
    from model_migration.domain.stages import FeatureStage
    from model_migration.domain.tournament import TournamentResult
    from workflows.common import call, notify, until_done
    from workflows.deprecation_messages import (
        CutoffChange,
        DeprecationCommandResult,
        DeprecationInput,
        DeprecationResult,
        DeprecationStage,
        DeprecationStatus,
        SelectReplacement,
        UpdateCutoff,
    )
    from workflows.messages import (
        DEPRECATION_PROGRESS,
        MIGRATION_REVISION,
        FeatureProgress,
        MigrationInput,
        MigrationResult,
        ParentCommand,
        ParentCommandKind,
        TournamentInput,
        TournamentOutcome,
        Tunables,
    )

#: Plan days AI Framework has to settle a close call before the ladder starts.
SELECTION_DAYS = 2
#: The most reminders a close call gets before the workflow only waits.
MAX_REMINDERS = 100


@workflow.defn
class ModelDeprecationWorkflow:
    @workflow.init
    def __init__(self, input: DeprecationInput) -> None:
        self.input = input
        self.id = workflow.info().workflow_id
        self.clock = PlanClock.starting(input.planned_from or workflow.now(), input.day)
        self.cutoff = input.request.cutoff
        self.plan = self._plan(self.clock.today)
        self.calendar = escalation_calendar(self.plan, input.calendar)
        self.stage = DeprecationStage.TOURNAMENT
        metrics.stage_entered("deprecation", self.stage.value)
        self.progress = {f.name: FeatureProgress(feature=f.name, stage=FeatureStage.IMPLEMENT) for f in input.features}
        self.finished_on: dict[str, date] = {}
        self.fired: list[FiredEntry] = []
        self.results: dict[str, TournamentResult | None] = {}
        self.errors: dict[str, dict[str, str]] = {}
        self.choice: Choice | None = None
        self.replacement: ModelDefinition | None = None
        self.fallback = ""
        self.epic: EpicInfo | None = None
        self.epic_notes: list[PostEpicNoteInput] = []
        self.notes_posted = 0
        self.flushing = asyncio.Lock()
        self.plan_version = 0
        self.changes: list[CutoffChange] = []
        self.shifts: list[timedelta] = []
        self.shifts_sent = 0
        self.blocked = ""
        self.labels_ensured = False
        self.migration_id = f"{self.id}:migration"
        self.migration: MigrationResult | None = None
        self.done = False

    # -- the run ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: DeprecationInput) -> DeprecationResult:
        await self._gitlab(self._ensure_epic)
        await self._gitlab(self._file_under_initiative)
        escalations = asyncio.create_task(self._escalate())
        await self._choose_replacement()
        await self._migrate()
        self.stage = DeprecationStage.DONE
        metrics.stage_entered("deprecation", self.stage.value)
        self.done = True
        await escalations
        self._note(closing_summary(self.plan, self.replacement.gitlab_identifier if self.replacement else "", self._results()))
        await self._gitlab(self._flush_notes)
        await self._gitlab(self._close_epic)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result()

    def _plan(self, today: date) -> BackwardPlan:
        return backward_plan(
            self.input.request.model, self.cutoff, self.input.features, today, self.input.request.lead_time, self.input.rules,
        )

    @property
    def _today(self) -> date:
        return self.clock.date_of(workflow.now())

    @property
    def _timeout(self) -> timedelta:
        return self.input.tunables.activity_timeout

    # -- the replacement ------------------------------------------------------------------------

    async def _choose_replacement(self) -> None:
        contenders = self.input.contenders
        if contenders:
            outcomes = await asyncio.gather(*(self._tournament(f.name, contenders) for f in self.input.features))
            for feature, outcome in zip(self.input.features, outcomes, strict=True):
                self.results[feature.name] = outcome.result
                self.errors[feature.name] = outcome.errors
            self.choice = choose(self.results)
            self._note(f"**Replacement tournament**: {self.choice.reason}.\n\n" + tournament_table(self.results, self.errors))
        else:
            self.choice = Choice(reason="no replacement candidates were given")
        by_key = {m.key: m for m in contenders}
        if self.choice.clear and self.choice.leader in by_key:
            self._select(by_key[self.choice.leader], f"clear winner: {self.choice.reason}", "model-migration")
        else:
            self.stage = DeprecationStage.SELECTING
            metrics.stage_entered("deprecation", self.stage.value)
            self._note(
                f"{mention(AI_FRAMEWORK)} the replacement needs a decision ({self.choice.reason}). "
                f"Run: `model-migration select-replacement {self.id} --model <candidate> --reason <why>`"
            )
            await self._gitlab(self._flush_notes)
            await self._await_selection()
        await self._gitlab(self._sync_epic)
        await self._gitlab(self._flush_notes)

    async def _tournament(self, feature: str, contenders: tuple[ModelDefinition, ...]) -> TournamentOutcome:
        spec = next(f for f in self.input.features if f.name == feature)
        request = TournamentInput(
            feature=spec, baseline=self.input.retiring, candidates=contenders,
            prompt_version=self.input.prompt_version, tunables=self.input.tunables,
        )
        try:
            outcome: TournamentOutcome = await workflow.execute_child_workflow(
                "TournamentWorkflow", request, result_type=TournamentOutcome, id=f"{self.id}:tournament:{feature}",
            )
            return outcome
        except ChildWorkflowError as err:
            return TournamentOutcome(errors={c.gitlab_identifier: f"the tournament failed: {err.cause or err}" for c in contenders})

    async def _await_selection(self) -> None:
        """Wait for ``select_replacement``; past its due date, remind AI Framework along the ladder."""
        due = workflow.now() + SELECTION_DAYS * self.input.day
        for at, label in self._selection_ladder(due):
            delay = at - workflow.now()
            try:
                await workflow.wait_condition(lambda: self.replacement is not None, timeout=max(delay, timedelta(seconds=1)))
                return
            except TimeoutError:
                pass
            text = f"The replacement for {self.input.retiring.name} is still undecided ({self.choice.reason if self.choice else ''})."
            self._note(f"{mention(AI_FRAMEWORK)} {text}")
            await self._gitlab(self._flush_notes)
            if label:
                await self._gitlab(functools.partial(self._label_epic, label))
            await notify(self.id, (AI_FRAMEWORK,), f"Choose the replacement for {self.input.retiring.name}", text, self._timeout)
        await workflow.wait_condition(lambda: self.replacement is not None)

    def _selection_ladder(self, due: datetime) -> list[tuple[datetime, str | None]]:
        """The escalation ladder's times from ``due`` (its offsets are in workflow time, as the
        features' are), each repeating step up to the cutoff and at most ``MAX_REMINDERS`` times."""
        end = self.clock.at(self.cutoff)
        times: list[tuple[datetime, str | None]] = []
        for step in self.input.tunables.ladder:
            at = due + step.offset
            times.append((at, step.label))
            while step.repeat is not None and at + step.repeat <= end and len(times) < MAX_REMINDERS:
                at += step.repeat
                times.append((at, step.label))
        return sorted(times, key=lambda t: t[0])

    def _select(self, model: ModelDefinition, reason: str, actor: str) -> None:
        self.replacement = model
        leader = self.choice.leader if self.choice else None
        runner_up = self.choice.runner_up if self.choice else None
        fallback = leader if leader != model.key else runner_up
        ids = {m.key: m.gitlab_identifier for m in self.input.contenders}
        self.fallback = ids.get(fallback, fallback or "") if fallback else ""
        self._note(
            f"**Replacement chosen: {model.name}** (`{model.gitlab_identifier}`) by {actor}: {reason}. "
            f"Fallback: {'`' + self.fallback + '`' if self.fallback else 'none'}."
        )

    # -- the migration -----------------------------------------------------------------------

    async def _migrate(self) -> None:
        assert self.replacement is not None and self.epic is not None
        self.stage = DeprecationStage.MIGRATING
        metrics.stage_entered("deprecation", self.stage.value)
        child = MigrationInput(
            model=self.replacement, replaced=self.input.retiring, features=self.input.features,
            tunables=self._tunables(), started_by=self.input.started_by, planned_from=workflow.now(),
            revision=MIGRATION_REVISION, initiative_epic=self.input.initiative_epic,
            deprecation_epic=EpicRef.from_web_url(self.epic.web_url), parent_id=self.id,
        )
        self.shifts_sent = len(self.shifts)  # cutoffs moved before now are in the plan already
        handle = await workflow.start_child_workflow(
            "ModelMigrationWorkflow", child, id=self.migration_id, result_type=MigrationResult,
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        )
        while not handle.done():
            await workflow.wait_condition(lambda: handle.done() or len(self.shifts) > self.shifts_sent)
            while self.shifts_sent < len(self.shifts) and not handle.done():
                await self._shift_features(self.shifts[self.shifts_sent])
                self.shifts_sent += 1
        self.migration = await handle
        for outcome in self.migration.features:
            self.progress[outcome.feature] = self.progress[outcome.feature].model_copy(
                update={"stage": outcome.stage, "outcome": outcome.outcome, "issue_url": outcome.issue_url},
            )
            self.finished_on.setdefault(outcome.feature, self._today)

    def _tunables(self) -> Tunables:
        """The migration's stage plan: backwards from the epic's due date, in plan days."""
        rules, day = self.input.rules, self.input.day
        slowest = max((self.input.rules.evaluation(f) for f in self.input.features), default=timedelta(days=1))
        per_day = day / timedelta(days=1)
        return self.input.tunables.model_copy(update={"plan": StagePlan(
            implement=rules.implement_min * per_day, evaluate=slowest * per_day,
            rollout=rules.rollout_steps * rules.bake * per_day, cleanup=rules.cleanup * per_day,
            target=self.clock.at(self.plan.due),
        )})

    async def _shift_features(self, shift: timedelta) -> None:
        """The migration moves its features' plans (or starts them moved, if they have not started)."""
        command = ParentCommand(kind=ParentCommandKind.SHIFT, actor="model-migration", reason=self.changes[-1].reason, shift=shift)
        migration = workflow.get_external_workflow_handle(self.migration_id)
        try:
            await migration.signal("parent_command", command)
        except Exception as err:  # a migration that finished meanwhile needs nothing
            workflow.logger.info("shift not passed to %s: %s", self.migration_id, err)

    # -- the escalation calendar ----------------------------------------------------------------

    async def _escalate(self) -> None:
        while not self.done:
            fired = {e.key for e in self.fired}
            pending = [e for e in self.calendar if (e.on, e.name) not in fired]
            changed = self._changed_since(self.plan_version)

            if not pending:
                await workflow.wait_condition(changed)
                continue
            delay = self.clock.at(pending[0].on) - workflow.now()
            if delay > timedelta(0):
                try:
                    await workflow.wait_condition(changed, timeout=delay)
                    continue
                except TimeoutError:
                    pass
            if not self.done:
                await self._fire(pending[0])

    def _changed_since(self, version: int) -> Callable[[], bool]:
        return lambda: self.done or self.plan_version != version

    async def _fire(self, entry: CalendarEntry) -> None:
        stages = {name: p.stage for name, p in self.progress.items()}
        late = targets(entry, self.plan, stages, entry.on)
        self.fired.append(FiredEntry(on=entry.on, name=entry.name, features=tuple(f.feature for f in late), label=entry.label))
        if not late:
            return
        metrics.escalation("deprecation", "calendar")
        labels = (entry.label,) if entry.label else ()
        if labels and not self.labels_ensured:
            await self._gitlab(self._ensure_labels)
        managers = {f.name: f.manager for f in self.input.features}
        for f in late:
            iid = self.progress[f.feature].issue_iid
            if not iid:
                continue  # no issue yet (the tournament runs): the epic note names it
            body = feature_note(entry, self.plan, f, stages[f.feature], managers[f.feature], entry.on)
            marker = f"{self.id}:escalation:{entry.on}:{entry.name}:{f.feature}"
            await self._post(PostNoteInput(iid=iid, body=f"{body}\n\n{marker_comment(marker)}", marker=marker, add_labels=labels))
        text = epic_note(entry, self.plan, late, stages, entry.on)
        self._note(text)
        await self._gitlab(self._flush_notes)
        if entry.notify:
            people = tuple(dict.fromkeys((AI_FRAMEWORK, *(f.dri for f in late), *(managers[f.feature] for f in late))))
            await notify(self.id, people, f"{self.input.retiring.name} deprecation: {entry.name}", text, self._timeout)

    async def _post(self, note: PostNoteInput) -> None:
        async def step() -> None:
            await call(interface.post_note, note, self._timeout)

        await self._gitlab(step)

    def _labels(self) -> tuple[str, ...]:
        return tuple(sorted({s.label for s in self.input.calendar if s.label} | {"priority::1"}))

    # -- GitLab ----------------------------------------------------------------------------

    async def _ensure_labels(self) -> None:
        await call(interface.ensure_labels, EnsureLabelsInput(labels=self._labels()), self._timeout)
        self.labels_ensured = True

    async def _gitlab(self, step: Callable[[], Awaitable[None]]) -> None:
        await until_done(step, on_block=self._block, is_blocked=lambda: bool(self.blocked))

    async def _block(self, reason: str) -> None:
        self.blocked = f"GitLab: {reason}"
        metrics.gitlab_block("deprecation", "blocked")
        await notify(
            self.id, (self.input.started_by, AI_FRAMEWORK), f"Deprecation of {self.input.retiring.name} is blocked on GitLab access",
            f"{reason}. Fix the token or permissions, then run: model-migration resume {self.id}", self._timeout,
        )

    def _draft(self) -> EpicDraft:
        return EpicDraft(
            title=epic_title(self.input.retiring, self.replacement), description=self._epic_body(),
            marker=f"{self.id}:epic", labels=list(LABELS), due_date=self.plan.due,
        )

    def _epic_body(self) -> str:
        body = epic_body(self.input.request, self.plan, self.input.retiring, self.input.recommended, self.input.contenders)
        if self.changes:
            body += "\n\n## Cutoff changes\n\n" + "\n".join(
                f"- {c.at:%Y-%m-%d}: {c.old} → {c.new} by {c.actor}: {c.reason}" for c in self.changes
            )
        return body + "\n\n" + marker_comment(f"{self.id}:epic")

    async def _ensure_epic(self) -> None:
        if self.epic is None:
            self.epic = await call(interface.ensure_epic, EnsureEpicInput(draft=self._draft()), self._timeout)

    async def _file_under_initiative(self) -> None:
        if self.input.initiative_epic is None:
            return
        assert self.epic is not None
        await call(interface.file_epic_under, FileEpicInput(epic_iid=self.epic.iid, parent=self.input.initiative_epic), self._timeout)

    async def _sync_epic(self) -> None:
        assert self.epic is not None
        draft = self._draft()
        request = UpdateEpicInput(iid=self.epic.iid, title=draft.title, description=self._epic_body(), due_date=self.plan.due)
        await call(interface.update_epic, request, self._timeout)

    async def _label_epic(self, label: str) -> None:
        assert self.epic is not None
        await call(interface.update_epic, UpdateEpicInput(iid=self.epic.iid, add_labels=(label,)), self._timeout)

    async def _close_epic(self) -> None:
        assert self.epic is not None
        request = UpdateEpicInput(iid=self.epic.iid, description=self._epic_body(), state_event="close")
        await call(interface.update_epic, request, self._timeout)

    def _note(self, body: str) -> None:
        marker = f"{self.id}:note:{len(self.epic_notes) + 1}"
        self.epic_notes.append(PostEpicNoteInput(epic_iid=0, body=body, marker=marker))

    async def _flush_notes(self) -> None:
        """Post the notes still to post, in order; one flush at a time, since the calendar, the
        replacement and a moved cutoff each flush, and two at once would post a note twice."""
        assert self.epic is not None
        async with self.flushing:
            while self.notes_posted < len(self.epic_notes):
                note = self.epic_notes[self.notes_posted].model_copy(update={"epic_iid": self.epic.iid})
                await call(interface.post_epic_note, note, self._timeout)
                self.notes_posted += 1

    # -- views ------------------------------------------------------------------------------

    def _results(self) -> tuple[FeatureResult, ...]:
        return tuple(
            FeatureResult(
                feature=f.name, title=f.title, stage=self.progress[f.name].stage, outcome=self.progress[f.name].outcome,
                finished_on=self.finished_on.get(f.name),
            )
            for f in self.input.features
        )

    def _result(self) -> DeprecationResult:
        return DeprecationResult(
            workflow_id=self.id, model=self.input.retiring.gitlab_identifier,
            replacement=self.replacement.gitlab_identifier if self.replacement else "", fallback=self.fallback,
            epic_url=self.epic.web_url if self.epic else "", features=self._results(), escalations=tuple(self.fired),
            cutoff=self.cutoff, due=self.plan.due,
        )

    # -- messages ---------------------------------------------------------------------------

    @workflow.signal(name=DEPRECATION_PROGRESS)
    def deprecation_progress(self, progress: list[FeatureProgress]) -> None:
        for p in progress:
            if p.feature in self.progress:
                self.progress[p.feature] = p
                if p.stage.terminal:
                    self.finished_on.setdefault(p.feature, self._today)

    @workflow.update
    def select_replacement(self, cmd: SelectReplacement) -> DeprecationCommandResult:
        model = self._selectable(cmd)
        self._select(model, cmd.reason.strip(), cmd.actor)
        return DeprecationCommandResult(stage=self.stage, message=f"replacement: {model.gitlab_identifier}")

    @select_replacement.validator
    def _check_select(self, cmd: SelectReplacement) -> None:
        self._selectable(cmd)

    def _selectable(self, cmd: SelectReplacement) -> ModelDefinition:
        if self.stage != DeprecationStage.SELECTING or self.replacement is not None:
            raise _rejected(f"no replacement is awaited: the deprecation is {self.stage}"
                            + (f" with {self.replacement.gitlab_identifier}" if self.replacement else ""))
        if not cmd.reason.strip() or not cmd.actor.strip():
            raise _rejected("select_replacement needs an actor and a reason")
        known = {m.gitlab_identifier: m for m in self.input.contenders} | {m.key: m for m in self.input.contenders}
        model = known.get(cmd.model) or cmd.definition
        if model is None or cmd.model not in (model.gitlab_identifier, model.key):
            raise _rejected(f"{cmd.model!r} is not a candidate ({', '.join(known) or 'none'}); name a catalog model")
        if model.gitlab_identifier == self.input.retiring.gitlab_identifier:
            raise _rejected(f"{cmd.model} is the model being retired")
        return model

    @workflow.update
    def update_cutoff(self, cmd: UpdateCutoff) -> DeprecationCommandResult:
        self._check_cutoff(cmd)
        today = self._today
        old_due = self.plan.due
        self.changes.append(CutoffChange(at=workflow.now(), old=self.cutoff, new=cmd.new_date, reason=cmd.reason.strip(), actor=cmd.actor))
        self.cutoff = cmd.new_date
        self.plan = self._plan(today)
        self.calendar = escalation_calendar(self.plan, self.input.calendar)
        self.plan_version += 1
        self.shifts.append((self.plan.due - old_due).days * self.input.day)
        self._note(f"**Cutoff moved** from {self.changes[-1].old} to {cmd.new_date} by {cmd.actor}: {cmd.reason.strip()}. "
                   f"{self.plan.summary()}")
        asyncio.create_task(self._after_cutoff())
        return DeprecationCommandResult(stage=self.stage, message=self.plan.summary())

    async def _after_cutoff(self) -> None:
        await self._gitlab(self._sync_epic)
        await self._gitlab(self._flush_notes)

    @update_cutoff.validator
    def _check_cutoff(self, cmd: UpdateCutoff) -> None:
        if self.stage == DeprecationStage.DONE:
            raise _rejected("the deprecation is done")
        if not cmd.reason.strip() or not cmd.actor.strip():
            raise _rejected("update_cutoff needs an actor and a reason")
        if cmd.new_date == self.cutoff:
            raise _rejected(f"the cutoff is {self.cutoff} already")
        if cmd.new_date - self.input.request.lead_time <= self._today:
            raise _rejected(f"a cutoff of {cmd.new_date} puts the due date on or before today ({self._today})")

    @workflow.update
    def resume(self, actor: str) -> DeprecationCommandResult:
        if not self.blocked:
            raise _rejected("the deprecation is not blocked")
        self.blocked = ""
        metrics.gitlab_block("deprecation", "resumed")
        return DeprecationCommandResult(stage=self.stage, message=f"resumed by {actor}")

    @workflow.query
    def status(self) -> DeprecationStatus:
        today = self._today
        stages = {name: p.stage for name, p in self.progress.items()}
        late = {f.feature for f in late_features(self.plan, stages, today)}
        fired = {e.key for e in self.fired}
        upcoming = [e.on for e in self.calendar if (e.on, e.name) not in fired]
        return DeprecationStatus(
            workflow_id=self.id, stage=self.stage, model=self.input.retiring.gitlab_identifier, provider=self.input.retiring.provider,
            cutoff=self.cutoff, due=self.plan.due, today=today, days_left=(self.plan.due - today).days, feasible=self.plan.feasible,
            plan_summary=self.plan.summary(), epic_url=self.epic.web_url if self.epic else "",
            replacement=self.replacement.gitlab_identifier if self.replacement else "", fallback=self.fallback,
            choice=self.choice, tournament=self.results, features=tuple(self.progress.values()),
            on_track=tuple(n for n in self.progress if n not in late and not stages[n].terminal), late=tuple(sorted(late)),
            fired=tuple(self.fired), next_escalation=min(upcoming, default=None), cutoff_changes=tuple(self.changes),
            migration_id=self.migration_id if self.stage in (DeprecationStage.MIGRATING, DeprecationStage.DONE) else "",
            blocked=self.blocked,
        )


def _rejected(message: str) -> ApplicationError:
    return ApplicationError(message, type=ErrorType.COMMAND_REJECTED.value, non_retryable=True)

