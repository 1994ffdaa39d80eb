"""Encrypted payloads on the dev server: no plaintext in history, status and the CLI still read it, rotation, replay."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

import worker as worker_module
from model_migration.codec import ENCODING, KEY_ID, EncryptionCodec, PayloadDecryptError
from model_migration.converter import data_converter, with_codec
from model_migration.domain.stages import FeatureStage
from model_migration.trouble import GitLabTrouble, gitlab_trouble
from tests.cli.run import cli, env
from tests.temporal_fixtures import Engine, _activities, _evaluation, assert_eventually
from tests.workflows.support import CATALOG, start_feature, status, wait_issue
from worker import WORKFLOWS
from workflows.messages import Abort, CompleteStage

A = bytes(range(32))
B = bytes(range(100, 132))
ONLY_A = EncryptionCodec({"a": A}, "a")
ROTATED = EncryptionCodec({"a": A, "b": B}, "b")


def client_with(env: WorkflowEnvironment, codec: EncryptionCodec | None) -> Client:
    """A client on the dev server's connection whose converter has ``codec`` (or none)."""
    return Client(env.client.service_client, namespace=env.client.namespace, data_converter=with_codec(codec))


@asynccontextmanager
async def engine_with(env: WorkflowEnvironment, codec: EncryptionCodec, sandbox, results: Path, queue: str) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    """A worker whose client encrypts with ``codec``, as ``connect()`` builds it when keys are set."""
    from model_migration.clients.gitlab import WaitGate

    gate = WaitGate()
    gitlab = _activities(sandbox, gate)
    client = client_with(env, codec)
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with worker_module.build_worker(client, queue, gitlab, executor, evaluation=_evaluation(sandbox, results, gate)):
            yield Engine(client, queue, gitlab)


def payloads(message: Message) -> Iterator[Payload]:
    """Every payload in a history event, except search attributes (plain by design: the server indexes them)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.name == "search_attributes" or field.type != field.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            items = [value]
        elif field.message_type.GetOptions().map_entry:
            items = list(value.values())
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Message):
                yield from payloads(item)


async def history_payloads(env: WorkflowEnvironment, handle: WorkflowHandle) -> list[Payload]:
    """The history's payloads as the server stores them, read by a client without the codec."""
    history = await client_with(env, None).get_workflow_handle(handle.id).fetch_history()
    return [p for event in history.events for p in payloads(event)]


def spec_titled(unique: str):  # type: ignore[no-untyped-def]
    return CATALOG.feature("duo_chat").model_copy(update={"title": f"Confidential launch {unique}"})


async def test_history_holds_no_plaintext_and_status_reads_it(
    dev_env: WorkflowEnvironment, gitlab_sandbox, tmp_path: Path, unique: str,  # type: ignore[no-untyped-def]
) -> None:
    """Every payload on the server is encrypted; a client with the codec reads status, the result and the CLI too."""
    spec = spec_titled(unique)
    async with engine_with(dev_env, ONLY_A, gitlab_sandbox, tmp_path, f"codec-{uuid.uuid4().hex[:8]}") as engine:
        handle = await start_feature(engine, unique, spec=spec, as_parent=False)
        st = await wait_issue(handle)
        assert st.issue is not None
        stored = await history_payloads(dev_env, handle)
        assert stored and all(p.metadata["encoding"] == ENCODING and p.metadata[KEY_ID] == b"a" for p in stored)
        assert not [p for p in stored if spec.title.encode() in p.SerializeToString()]
        issue = engine.gitlab_client().get_issue(st.issue.iid)
        assert spec.title in issue.title  # the plaintext did reach GitLab, so its absence above means something

        keys = json.dumps({"a": base64.b64encode(A).decode()})
        address = dev_env.client.service_client.config.target_host
        environ = env(MODEL_MIGRATION_TEMPORAL_ADDRESS=address, MODEL_MIGRATION_CODEC_KEYS=keys)
        shown = await asyncio.to_thread(cli, "status", handle.id, "--json", environ=environ)  # the worker answers meanwhile
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["issue"]["iid"] == st.issue.iid
        rotated_out = {**environ, "MODEL_MIGRATION_CODEC_KEYS": json.dumps({"b": base64.b64encode(B).decode()})}
        refused = await asyncio.to_thread(cli, "status", handle.id, environ=rotated_out)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert "key id 'a'" in refused.stderr and base64.b64encode(B).decode() not in refused.stderr
        keyless = await asyncio.to_thread(cli, "status", handle.id, environ=env(MODEL_MIGRATION_TEMPORAL_ADDRESS=address))
        assert keyless.returncode == 2 and keyless.stderr == (
            "error: payload encrypted with key id 'a': set MODEL_MIGRATION_CODEC_KEYS to read it\n"), keyless.stderr

        await handle.execute_update("abort", Abort(actor="lead", reason=f"{spec.title} is off"))
        outcome = await handle.result()
        assert outcome.stage == FeatureStage.ABORTED and spec.title in outcome.outcome
        assert not [p for p in await history_payloads(dev_env, handle) if spec.title.encode() in p.SerializeToString()]


async def test_rotation_and_replay_with_the_codec(
    dev_env: WorkflowEnvironment, gitlab_sandbox, tmp_path: Path, unique: str,  # type: ignore[no-untyped-def]
) -> None:
    """Written with a, then b current and a kept: both read, new payloads use b; without a, a's fail naming it; replay needs the codec."""
    queue = f"codec-{uuid.uuid4().hex[:8]}"
    async with engine_with(dev_env, ONLY_A, gitlab_sandbox, tmp_path, queue) as engine:
        handle = await start_feature(engine, unique, spec=spec_titled(unique), as_parent=False)
        await wait_issue(handle)
    before = len(await history_payloads(dev_env, handle))

    async with engine_with(dev_env, ROTATED, gitlab_sandbox, tmp_path, queue) as engine:
        handle = engine.client.get_workflow_handle(handle.id)
        await handle.execute_update("complete_stage", CompleteStage(stage=FeatureStage.IMPLEMENT, actor="achen", prompt_version="1.0.0"))
        assert (await status(handle)).stage != FeatureStage.IMPLEMENT
        stored = await history_payloads(dev_env, handle)
        assert {p.metadata[KEY_ID] for p in stored[:before]} == {b"a"}
        assert {p.metadata[KEY_ID] for p in stored[before:]} == {b"b"}

        history = await handle.fetch_history()
        replayed = await Replayer(workflows=WORKFLOWS, data_converter=with_codec(ROTATED)).replay_workflow(
            history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, replayed.replay_failure
        plain = await Replayer(workflows=WORKFLOWS, data_converter=data_converter).replay_workflow(history, raise_on_replay_failure=False)
        assert plain.replay_failure is not None  # the codec is what makes the history readable

        with pytest.raises(PayloadDecryptError, match="key id 'a'") as caught:
            await with_codec(EncryptionCodec({"b": B}, "b")).decode(stored[:1])
        assert "\n" not in str(caught.value)
        await handle.execute_update("abort", Abort(actor="lead", reason="test over"))
        await handle.result()


async def test_a_failing_activity_s_error_is_encrypted_and_status_reads_it(
    dev_env: WorkflowEnvironment, gitlab_sandbox, tmp_path: Path, unique: str,  # type: ignore[no-untyped-def]
) -> None:
    """A retried activity's last failure is stored encrypted; status's GitLab-trouble line decrypts it."""
    server = gitlab_sandbox.server
    server.inject_fault(r"/issues$", "500", method="POST", count=3)
    try:
        async with engine_with(dev_env, ONLY_A, gitlab_sandbox, tmp_path, f"codec-{uuid.uuid4().hex[:8]}") as engine:
            handle = await start_feature(engine, unique, spec=spec_titled(unique), as_parent=False)

            async def troubled() -> GitLabTrouble:
                trouble = await gitlab_trouble(engine.client, handle.id)
                assert trouble is not None and trouble.attempt >= 2
                return trouble

            trouble = await assert_eventually(troubled, timeout=60)
            assert "500" in trouble.last_error and "Encoded failure" not in trouble.last_error
            raw = await client_with(dev_env, None).get_workflow_handle(handle.id).describe()
            [pending] = [p for p in raw.raw_description.pending_activities if p.HasField("last_failure")]
            assert pending.last_failure.message == "Encoded failure"
            assert trouble.last_error.encode() not in pending.last_failure.SerializeToString()
            server.clear_faults()
            await wait_issue(handle)
            await handle.execute_update("abort", Abort(actor="lead", reason="test over"))
            await handle.result()
    finally:
        server.clear_faults()
