"""The data converter every client, worker and replayer uses: pydantic JSON, with one change.

A payload that does not validate (hand-written JSON sent with the Temporal CLI, a negative
timeout) becomes a non-retryable ``ApplicationError`` with one line naming the field, instead
of a decoding error that Temporal treats as a failed workflow task and retries forever. For a
workflow input that fails the workflow once; for an update it is a rejection the sender reads.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import temporalio.api.common.v1
from pydantic import ValidationError
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
)
from temporalio.exceptions import ApplicationError

from model_migration.domain.errors import DomainError, ErrorType


def one_line(err: ValidationError, what: str) -> str:
    """``invalid <what>: <field.path>: <reason>`` for the first error, plus how many more."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    reason = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"invalid {what}: {where}: {reason}{more}"


class CheckedJSONPayloadConverter(PydanticJSONPlainPayloadConverter):
    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        try:
            return super().from_payload(payload, type_hint)
        except ValidationError as err:
            what = getattr(type_hint, "__name__", "payload")
            raise ApplicationError(one_line(err, what), type=ErrorType.INVALID_INPUT.value, non_retryable=True) from None


class EncryptedPayloadConverter(EncodingPayloadConverter):
    """Reached only by an encrypted payload that no codec decrypted (``model_migration.codec``):
    one line saying so, instead of an unknown-encoding ``KeyError``. It never encodes."""

    @property
    def encoding(self) -> str:
        return "binary/encrypted"

    def to_payload(self, value: Any) -> temporalio.api.common.v1.Payload | None:
        return None

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        key_id = payload.metadata.get("encryption-key-id", b"").decode("utf-8", errors="replace")
        raise DomainError(f"payload encrypted with key id {key_id!r}: set MODEL_MIGRATION_CODEC_KEYS to read it")


class CheckedPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        checked = CheckedJSONPayloadConverter()
        super().__init__(*(
            checked if isinstance(c, JSONPlainPayloadConverter) else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters
        ), EncryptedPayloadConverter())


data_converter = DataConverter(payload_converter_class=CheckedPayloadConverter)


def with_codec(codec: PayloadCodec | None) -> DataConverter:
    """``data_converter``, encoding every payload with ``codec`` when there is one. A failure's
    message and stack trace then travel in an encoded payload too: they can quote issue text."""
    if codec is None:
        return data_converter
    return dataclasses.replace(data_converter, payload_codec=codec, failure_converter_class=DefaultFailureConverterWithEncodedAttributes)
