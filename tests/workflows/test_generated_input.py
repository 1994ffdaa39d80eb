"""Generated bad input against live workflows: hundreds of update payloads and CLI argument lists.

Every one is either accepted or refused in one line; a refusal changes nothing; and no workflow
task ever fails, whatever arrives.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from tests.temporal_fixtures import Engine
from tests.workflows.support import start_feature, status, wait_issue

UPDATE_PAYLOADS = 300
CLI_ARGVS = 60
UPDATES = ("complete_stage", "report_evaluation", "report_rollout", "pause", "resume", "abort", "extend_deadline")

_text = st.one_of(st.sampled_from(["", " ", "achen", "x" * 300, "line\nbreak", "ünïcode", "0"]), st.text(max_size=12))
_any_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False), _text)
PAYLOAD = st.fixed_dictionaries(
    {},
    optional={
        "actor": st.one_of(st.just("achen"), _any_scalar),
        "stage": st.one_of(st.sampled_from(["implement", "evaluate", "rollout", "cleanup", "done", "init", "Implement"]), _any_scalar),
        "prompt_version": st.one_of(
            st.sampled_from(["1.0.0-dev", "1.0.0", "1.0.1-dev", "2.0.0", "v2", "1.0", "0.0.1", "1.0.0+b.1", "01.0.0"]), _any_scalar,
        ),
        "flag_name": st.one_of(st.sampled_from(["duo_chat_new", "Bad Flag", "a", "x" * 300]), _any_scalar),
        "verdict": st.one_of(st.sampled_from(["pass", "fail", "inconclusive", "maybe"]), _any_scalar),
        "metrics": st.one_of(
            st.lists(st.fixed_dictionaries(
                {"name": _text}, optional={"baseline": _any_scalar, "candidate": _any_scalar, "higher_is_better": _any_scalar},
            ), max_size=3),
            _any_scalar,
        ),
        "url": st.one_of(st.sampled_from(["https://ci.example/1", "ftp://x/y", "javascript:alert(1)", "//x"]), _any_scalar),
        "percentage": st.one_of(st.integers(-5, 120), _any_scalar),
        "rollback": _any_scalar,
        "reason": _text,
        "note": _text,
        "new_date": st.one_of(
            st.sampled_from(["2030-01-01T00:00:00Z", "2001-01-01T00:00:00Z", "2030-13-01", "tomorrow"]), _any_scalar,
        ),
        "unknown_field": _any_scalar,
    },
)
COMMAND = st.tuples(st.one_of(st.sampled_from(UPDATES), st.just("complete_stag")), PAYLOAD)

_option_values = st.one_of(
    st.sampled_from(["", "-5", "0", "50", "100", "101", "abc", "1.0.0-dev", "2.0.0", "nan", "ftp://x", "2030-01-01", "2001-01-01",
                     "implement", "evaluate", "cleanup", "init", "pass", "maybe", "correctness=3:3.5", "x=nan:1", "--", "-f"]),
    st.text(alphabet="abc-=:.0129 ", max_size=10),
)
_cli_command = st.sampled_from([
    ("complete", ["--stage", "--prompt-version", "--flag", "--note", "--actor", "--request-id"]),
    ("report-eval", ["--verdict", "--metric", "--url", "--dataset", "--actor"]),
    ("report-rollout", ["--percentage", "-p", "--note", "--actor"]),
    ("pause", ["--reason", "--actor"]),
    ("resume", ["--note", "--actor"]),
    ("abort", ["--reason", "--actor"]),
    ("extend-deadline", ["--stage", "--date", "--reason", "--actor"]),
    ("status", ["--json"]),
])
ARGV = _cli_command.flatmap(lambda command: st.tuples(
    st.just(command[0]),
    st.lists(st.tuples(st.sampled_from(command[1]), _option_values), max_size=4),
))


def _generate(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` reproducible examples of ``strategy`` (the sends below need the session's loop)."""
    found: list[Any] = []

    @settings(max_examples=count, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(strategy)
    def collect(example: Any) -> None:
        found.append(example)

    collect()
    return found


async def _feature(engine: Engine, unique: str, n: int) -> WorkflowHandle:
    handle = await start_feature(engine, f"{unique}{n}")
    await wait_issue(handle)
    return handle


async def _no_task_failed(handles: list[WorkflowHandle]) -> None:
    for handle in handles:
        history = await handle.fetch_history()
        failed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
        assert failed == [], f"{handle.id}: {failed[0].workflow_task_failed_event_attributes.failure.message}"


async def test_generated_update_payloads(engine: Engine, unique: str) -> None:
    """300 generated updates: each accepted or refused in one line, a refusal changing nothing."""
    commands = _generate(COMMAND, UPDATE_PAYLOADS)
    assert len(commands) >= UPDATE_PAYLOADS
    handles = [await _feature(engine, unique, 0)]
    refused = 0
    for name, payload in commands:
        handle = handles[-1]
        before = await status(handle)
        if before.stage.terminal:
            handle = await _feature(engine, unique, len(handles))
            handles.append(handle)
            before = await status(handle)
        try:
            await handle.execute_update(name, payload)
        except WorkflowUpdateFailedError as err:
            refused += 1
            cause = err.cause
            assert isinstance(cause, ApplicationError), (name, payload, cause)
            assert cause.non_retryable or "not found" in cause.message, (name, payload, cause)
            assert cause.message and "\n" not in cause.message, (name, payload, cause.message)
            assert await status(handle) == before, (name, payload)
    assert refused > UPDATE_PAYLOADS // 2  # the generator mostly produces bad commands
    await _no_task_failed(handles)
    for handle in handles:
        if not (await status(handle)).stage.terminal:
            await handle.terminate("test over")


async def test_generated_cli_argument_lists(engine: Engine, unique: str) -> None:
    """Generated CLI argument lists: exit 0, or exit 2 with one line on stderr and nothing changed."""
    argvs = _generate(ARGV, CLI_ARGVS)
    handles = [await _feature(engine, unique, 0)]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MODEL_MIGRATION_")},
        "MODEL_MIGRATION_TEMPORAL_ADDRESS": engine.client.service_client.config.target_host,
        "MODEL_MIGRATION_TASK_QUEUE": engine.task_queue,
    }
    for command, options in argvs:
        handle = handles[-1]
        argv = [command, handle.id, *(part for option in options for part in option)]
        before = await status(handle)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "model_migration.cli", *argv, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        lines = err.decode().strip().splitlines()
        assert proc.returncode in (0, 2), (argv, proc.returncode, err.decode())
        if proc.returncode == 2:
            assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err.decode())
            assert await status(handle) == before, argv
        if (await status(handle)).stage.terminal:
            handles.append(await _feature(engine, unique, len(handles)))
    await _no_task_failed(handles)
    await handles[-1].terminate("test over")
