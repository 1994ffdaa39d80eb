"""``model-migration rollout ...``: the human controls of a rollout the engine drives (feature revision 5).

Each command names a feature (its workflow id, or a migration id and ``--feature``) and reads the
feature's status. pause, resume, promote, promote-full, abort and retry go to the running
``RolloutWorkflow`` as updates, whose validators refuse what does not fit; retry with no rollout
running (the last one rolled back or was aborted) asks the feature for a new rollout from the step
that failed (``retry_rollout``). ``status`` shows the running rollout, or the last one. Every
refusal, the workflow's or this module's, is a ``DomainError``: one line, exit 2, nothing changed.
"""

from __future__ import annotations

import sys
import uuid
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from model_migration import operations as ops
from model_migration import rollout_render as render
from model_migration.cli_support import actor_or_user, with_client
from model_migration.domain import rollout_machine as machine
from model_migration.domain.errors import CommandRejected
from model_migration.domain.feature_rollout import ENDED_BACK
from workflows.common import marker_base
from workflows.messages import FeatureMigrationInput, FeatureStatus, RetryRollout, RolloutRun
from workflows.rollout_messages import RolloutInput, RolloutResult, RolloutStatus, rollout_workflow_id

app = typer.Typer(
    add_completion=False, no_args_is_help=True,
    help="The engine's rollout of a feature's flag (a catalog entry with rollout.target): pause, resume, promote, "
         "promote-full, abort, retry, status.",
)
out = Console(width=None if sys.stdout.isatty() else 200)  # pipes get whole lines
T = TypeVar("T")

WorkflowId = Annotated[str, typer.Argument(help="migration:<provider>/<model>/<version>[:feature:<name>]")]
Feature = Annotated[str | None, typer.Option("--feature", "-f", help="Feature name, when the id is a migration id.")]
Actor = Annotated[str, typer.Option("--actor", help="GitLab username recorded as the author.")]
RequestId = Annotated[str | None, typer.Option("--request-id", help="Idempotency key: a retried command with the same key runs once.")]

Human = machine.Pause | machine.Resume | machine.Promote | machine.PromoteFull | machine.Abort | machine.Retry
#: The rollout workflow's update for each command, and the machine command it takes.
COMMANDS: dict[str, tuple[str, type[Human]]] = {
    "pause": ("pause", machine.Pause), "resume": ("resume", machine.Resume), "promote": ("promote", machine.Promote),
    "promote-full": ("promote_full", machine.PromoteFull), "abort": ("abort", machine.Abort), "retry": ("retry", machine.Retry),
}


def _feature_id(workflow_id: str, feature: str | None) -> str:
    """The feature's workflow id, refused before connecting when the id names a whole migration."""
    if feature is None and not ops.is_feature_id(workflow_id):
        ops.check_id(workflow_id)
        raise ops.UserError("a rollout belongs to a feature: add --feature <name> (or use the feature's workflow id)")
    return ops.target_id(workflow_id, feature)


async def _feature(client: Client, feature_id: str) -> FeatureStatus:
    st = await ops.status(client, feature_id)
    if not isinstance(st, FeatureStatus):
        raise ops.UserError(f"{feature_id} is a migration: add --feature <name>")
    return st


def _no_rollout(st: FeatureStatus, verb: str) -> ops.UserError:
    """Why there is no engine rollout to ``verb``, and what to do instead."""
    fid = st.workflow_id
    if not st.flag_target:
        return ops.UserError(
            f"{fid} has no engine rollout: its team drives flag {st.flag or '(not named yet)'} by hand (the catalog entry names "
            f"no rollout target); report each step with: model-migration report-rollout {fid} --percentage <n>"
        )
    if not st.rollouts:
        return ops.UserError(
            f"{fid} has no engine rollout yet: the feature is in {st.stage}, and the engine starts one when it enters rollout; "
            f"see: model-migration status {fid}"
        )
    last = st.rollouts[-1]
    hint = " — model-migration rollout retry starts a new one from the step that failed" if last.phase in ENDED_BACK else ""
    return ops.UserError(f"{fid}: rollout {last.attempt} has ended ({last.outcome or last.phase}), nothing to {verb}{hint}")


async def _send_rollout(client: Client, feature_id: str, rollout_id: str, verb: str, cmd: BaseModel, request_id: str | None) -> str:
    update = COMMANDS[verb][0]
    handle = client.get_workflow_handle(rollout_id)
    try:
        result: str = await handle.execute_update(update, cmd, id=request_id or str(uuid.uuid4()), result_type=str)
        return result
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise CommandRejected(f"{rollout_id} refused {verb}: {message}") from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ops.UserError(f"{rollout_id} has just ended; see: model-migration rollout status {feature_id}") from None
        raise ops.UserError(f"Temporal refused the request for {rollout_id}: {err.message}") from None


async def _control(client: Client, feature_id: str, verb: str, actor: str, reason: str, request_id: str | None) -> str:
    st = await _feature(client, feature_id)
    if st.rollout_workflow_id:
        cmd = COMMANDS[verb][1](actor=actor, reason=reason)
        said = await _send_rollout(client, feature_id, st.rollout_workflow_id, verb, cmd, request_id)
        return f"{st.rollout_workflow_id}: {said}"
    if verb == "retry" and st.flag_target and st.rollouts and st.rollouts[-1].phase in ENDED_BACK:
        result = await ops.send(client, feature_id, "retry_rollout", RetryRollout(actor=actor, reason=reason), request_id)
        return f"{feature_id}: {result.message}"
    raise _no_rollout(st, verb)


def _command(verb: str, workflow_id: str, feature: str | None, actor: str, reason: str, request_id: str | None) -> None:
    feature_id = _feature_id(workflow_id, feature)
    said = with_client(lambda c: _control(c, feature_id, verb, actor_or_user(actor), reason, request_id))
    out.print(said, markup=False, highlight=False)


Reason = Annotated[str, typer.Option("--reason", help="Why; recorded in the rollout's log and on the feature issue.")]


@app.command()
def pause(workflow_id: WorkflowId, feature: Feature = None, reason: Reason = "", actor: Actor = "", request_id: RequestId = None) -> None:
    """Hold the flag where it is: no step ends and nothing is measured until resume."""
    _command("pause", workflow_id, feature, actor, reason, request_id)


@app.command()
def resume(workflow_id: WorkflowId, feature: Feature = None, reason: Reason = "", actor: Actor = "", request_id: RequestId = None) -> None:
    """Resume a rollout a person paused: the step bakes again from now."""
    _command("resume", workflow_id, feature, actor, reason, request_id)


@app.command()
def promote(workflow_id: WorkflowId, feature: Feature = None, reason: Reason = "", actor: Actor = "", request_id: RequestId = None) -> None:
    """Move to the next step now, without waiting for the bake (needs --reason)."""
    _command("promote", workflow_id, feature, actor, reason, request_id)


@app.command("promote-full")
def promote_full(
    workflow_id: WorkflowId, feature: Feature = None, reason: Reason = "", actor: Actor = "", request_id: RequestId = None,
) -> None:
    """Go straight to 100 % (needs --reason); the hold at 100 % and the drain still follow."""
    _command("promote-full", workflow_id, feature, actor, reason, request_id)


@app.command()
def abort(workflow_id: WorkflowId, feature: Feature = None, reason: Reason = "", actor: Actor = "", request_id: RequestId = None) -> None:
    """Roll back: the flag goes off everywhere and the feature returns to implement (needs --reason)."""
    _command("abort", workflow_id, feature, actor, reason, request_id)


@app.command()
def retry(workflow_id: WorkflowId, feature: Feature = None, reason: Reason = "", actor: Actor = "", request_id: RequestId = None) -> None:
    """Bake an inconclusive step again; after a rollback or an abort, roll out again from the step that failed (same prompt version)."""
    _command("retry", workflow_id, feature, actor, reason, request_id)


# -- status ----------------------------------------------------------------------------------------


async def _decode_input(client: Client, workflow_id: str, kind: type[T]) -> T | None:
    """The input a workflow was started with, from its first history event."""
    handle = client.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events(page_size=1):
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        [decoded] = await client.data_converter.decode(payloads, [kind])
        return decoded  # type: ignore[no-any-return]
    return None


async def _report(client: Client, feature_id: str) -> render.RolloutReport:
    st = await _feature(client, feature_id)
    if not st.rollouts:
        raise _no_rollout(st, "show")
    run = st.rollouts[-1]
    rollout_id = st.rollout_workflow_id
    if not rollout_id:
        feature_input = await _decode_input(client, feature_id, FeatureMigrationInput)
        rollout_id = rollout_workflow_id(marker_base(feature_id, feature_input.rerun if feature_input else 0), run.attempt)
    try:
        request = await _decode_input(client, rollout_id, RolloutInput)
    except RPCError as err:
        raise ops.UserError(f"rollout {run.attempt} ({rollout_id}) cannot be read: {err.message}") from None
    common: dict[str, Any] = {
        "feature_workflow_id": feature_id, "rollout_workflow_id": rollout_id, "attempt": run.attempt, "flag_target": st.flag_target,
        "ladder": request.ladder if request else (), "analysis": request.analysis if request else (),
        "from_step": request.from_step if request else run.from_step,
    }
    if st.rollout_workflow_id:
        now = await client.get_workflow_handle(rollout_id).query("status", result_type=RolloutStatus)
        return render.build(
            **common, running=True, phase=now.phase, step=now.step, records=now.records, log=now.log, test_run=now.test_run,
            paused_by=now.paused_by, flag=now.flag,
        )
    return render.build(**common, running=False, **await _ended(client, rollout_id, run, request))


async def _ended(client: Client, rollout_id: str, run: RolloutRun, request: RolloutInput | None) -> dict[str, Any]:
    """What an ended rollout returned; a rollout that failed returned nothing, so its status is asked."""
    try:
        result = await client.get_workflow_handle(rollout_id, result_type=RolloutResult).result(follow_runs=False)
    except WorkflowFailureError:
        st = await client.get_workflow_handle(rollout_id).query("status", result_type=RolloutStatus)
        return {"phase": st.phase, "step": st.step, "records": st.records, "log": st.log, "test_run": st.test_run,
                "flag": st.flag, "outcome": run.outcome}
    last = result.records[-1].step if result.records else (request.from_step if request else 0)
    step = result.failed_step if result.failed_step is not None else last
    return {"phase": result.phase, "step": step, "records": result.records, "log": result.log,
            "test_run": request.test_run if request else False, "flag": request.target.name if request else "",
            "outcome": result.outcome}


@app.command()
def status(
    workflow_id: WorkflowId, feature: Feature = None, as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The running rollout (or the last one): its ladder, every measurement with its thresholds, and its log."""
    feature_id = _feature_id(workflow_id, feature)
    report = with_client(lambda c: _report(c, feature_id))
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        render.show(out, report)
