"""No input can wedge a workflow: a bad start input fails it once, a bad update is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from model_migration.domain.requests import command_digest
from tests.temporal_fixtures import Engine
from tests.workflows.support import CATALOG, REPLACED, SLOW, model_for, start_feature, status, wait_issue
from workflows.messages import CompleteStage, MigrationInput, Pause


#: A start input as someone would hand-write it for ``temporal workflow start --input``.
def _raw_input(unique: str, **tunables: Any) -> dict[str, Any]:
    request = MigrationInput(
        model=model_for(unique), replaced=REPLACED, features=(CATALOG.feature("duo_chat"),), tunables=SLOW,
    )
    raw: dict[str, Any] = json.loads(request.model_dump_json())
    raw["tunables"].update(tunables)
    return raw


async def _fails_once(engine: Engine, workflow_id: str, raw: dict[str, Any]) -> str:
    handle = await engine.client.start_workflow(
        "ModelMigrationWorkflow", raw, id=workflow_id, task_queue=engine.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    events = [e.event_type for e in (await handle.fetch_history()).events]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events  # nothing was created
    return cause.message


@pytest.mark.parametrize(
    ("tunables", "field"),
    [
        ({"activity_timeout": 0}, "tunables.activity_timeout: must be longer than zero"),
        ({"activity_timeout": -5}, "tunables.activity_timeout: must be longer than zero"),
        ({"merge_poll": 0}, "tunables.merge_poll: must be longer than zero"),
        ({"rollout_ladder": [10, 5, 100]}, "tunables.rollout_ladder: steps must be strictly ascending"),
        ({"rollout_ladder": [10, 50, 150]}, "tunables.rollout_ladder: every step must be a percentage from 1 to 100"),
        ({"plan": {"implement": -1}}, "tunables.plan.implement: a stage must last longer than zero"),
    ],
)
async def test_bad_tunables_fail_the_workflow_once_naming_the_field(
    engine: Engine, unique: str, tunables: dict[str, Any], field: str,
) -> None:
    """A hand-written input with a bad tunable fails once, non-retryable, naming the field."""
    message = await _fails_once(engine, f"migration:bad/{unique}/1", _raw_input(unique, **tunables))
    assert message == f"invalid MigrationInput: {field}"


async def test_input_that_is_not_a_migration_fails_once(engine: Engine, unique: str) -> None:
    """JSON missing required fields fails the run once and says which field is missing."""
    message = await _fails_once(engine, f"migration:bad/{unique}/2", {"model": "claude"})
    assert message.startswith("invalid MigrationInput: model: ")
    assert "\n" not in message


async def test_update_without_actor_is_refused_in_one_line(engine: Engine, unique: str) -> None:
    """An update sent with the Temporal CLI and no actor is refused, non-retryable, in one line."""
    handle = await start_feature(engine, unique)
    await wait_issue(handle)
    before = await status(handle)
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update("pause", {"reason": "no actor"})
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    assert cause.message == "invalid Pause: actor: Field required"
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update("pause", Pause(actor="  ", reason="blank actor"))
    assert "actor is empty" in str(info.value.cause)
    assert await status(handle) == before
    await handle.terminate("test over")


async def test_a_reused_request_id_returns_the_first_command_and_its_digest(engine: Engine, unique: str) -> None:
    """The result names the first command, so a sender reusing its id for another can tell."""
    handle = await start_feature(engine, unique)
    await wait_issue(handle)
    first = Pause(actor="lead", reason="quota")
    result = await handle.execute_update("pause", first, id="req-1", result_type=None)
    again = await handle.execute_update(
        "resume", CompleteStage(stage="implement", actor="lead", prompt_version="1.0.0"), id="req-1",
    )
    assert again == result
    assert result["command"] == "pause" and result["digest"] == command_digest("pause", first)
    assert (await status(handle)).paused
    await handle.terminate("test over")
