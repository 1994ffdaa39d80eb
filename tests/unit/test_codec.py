"""The payload codec: AES-GCM with named keys, rotation, and its settings."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from model_migration.codec import ENCODING, KEY_ID, CodecConfigError, EncryptionCodec, PayloadDecryptError, codec_from, new_key
from model_migration.converter import data_converter, with_codec
from model_migration.domain.errors import DomainError
from model_migration.settings import Settings
from model_migration.trouble import failure_message
from workflows.messages import CompleteStage

A = bytes(range(32))
B = bytes(range(32, 64))
SECRET = "Confidential: the feature's issue text"


def keys(**named: bytes) -> SecretStr:
    return SecretStr(json.dumps({k: base64.b64encode(v).decode() for k, v in named.items()}))


def plain(text: str = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


async def test_round_trip_hides_the_plaintext() -> None:
    """A payload is encrypted under the current key id and decodes back to itself."""
    codec = EncryptionCodec({"a": A}, "a")
    [sealed] = await codec.encode([plain()])
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID] == b"a"
    assert SECRET.encode() not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [plain()]


async def test_each_payload_gets_its_own_nonce() -> None:
    """The same payload encrypted twice gives two different ciphertexts."""
    codec = EncryptionCodec({"a": A}, "a")
    first, second = await codec.encode([plain(), plain()])
    assert first.data[:12] != second.data[:12] and first.data != second.data


async def test_unencrypted_payloads_decode_as_they_are() -> None:
    """Payloads of histories written before the codec was configured are read unchanged."""
    codec = EncryptionCodec({"a": A}, "a")
    assert await codec.decode([plain()]) == [plain()]


async def test_rotation_keeps_old_keys_for_decryption() -> None:
    """With B current and A kept, A's payloads decode and new ones use B; without A they fail naming A."""
    [old] = await EncryptionCodec({"a": A}, "a").encode([plain("old")])
    rotated = EncryptionCodec({"a": A, "b": B}, "b")
    [new] = await rotated.encode([plain("new")])
    assert new.metadata[KEY_ID] == b"b"
    assert await rotated.decode([old, new]) == [plain("old"), plain("new")]
    with pytest.raises(PayloadDecryptError) as caught:
        await EncryptionCodec({"b": B}, "b").decode([old])
    message = str(caught.value)
    assert "'a'" in message and "\n" not in message and base64.b64encode(A).decode() not in message


async def test_a_tampered_payload_is_one_error_naming_its_key_id() -> None:
    """A flipped ciphertext byte, a swapped key id or a wrong key under the id all fail authentication."""
    codec = EncryptionCodec({"a": A, "b": B}, "a")
    [sealed] = await codec.encode([plain()])
    flipped = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    swapped = Payload(metadata={**sealed.metadata, KEY_ID: b"b"}, data=sealed.data)
    for bad, key_id in ((flipped, "a"), (swapped, "b")):
        with pytest.raises(PayloadDecryptError, match=f"key id '{key_id}' does not decrypt"):
            await codec.decode([bad])
    with pytest.raises(PayloadDecryptError, match="key id 'a' does not decrypt"):
        await EncryptionCodec({"a": B}, "a").decode([sealed])


async def test_the_converter_with_the_codec_round_trips_models() -> None:
    """The pydantic converter with the codec encrypts a model and reads it back; without a codec it is the plain one."""
    converter = with_codec(EncryptionCodec({"a": A}, "a"))
    cmd = CompleteStage(stage="implement", actor="achen")  # type: ignore[arg-type]
    [payload] = await converter.encode([cmd])
    assert b"achen" not in payload.data
    assert await converter.decode([payload], [CompleteStage]) == [cmd]
    assert with_codec(None) is data_converter


def test_the_codec_never_shows_its_keys() -> None:
    """Neither repr nor attributes hold key bytes."""
    codec = EncryptionCodec({"a": A}, "a")
    assert repr(codec) == "EncryptionCodec(current='a', key_ids=('a',))"
    assert all(not isinstance(v, bytes) for v in vars(codec).values())


def test_settings_unset_means_no_codec() -> None:
    """No keys configured: no codec, payloads stay plain JSON as before."""
    assert codec_from(None, None) is None
    assert codec_from(SecretStr("  "), None) is None


def test_settings_build_the_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys and the current id come from the environment; one key needs no id."""
    monkeypatch.setenv("MODEL_MIGRATION_CODEC_KEYS", keys(a=A, b=B).get_secret_value())
    monkeypatch.setenv("MODEL_MIGRATION_CODEC_KEY_ID", "b")
    settings = Settings()
    codec = codec_from(settings.codec_keys, settings.codec_key_id)
    assert codec is not None and codec.current == "b" and codec.key_ids == ("a", "b")
    assert base64.b64encode(A).decode() not in repr(settings)
    only = codec_from(SecretStr(json.dumps({"k1": new_key()})), None)
    assert only is not None and only.current == "k1"


@pytest.mark.parametrize(("raw", "current", "expected"), [
    ("not json", None, "MODEL_MIGRATION_CODEC_KEYS is not JSON"),
    ("{}", None, "MODEL_MIGRATION_CODEC_KEYS must be a non-empty JSON object"),
    ('["x"]', None, "MODEL_MIGRATION_CODEC_KEYS must be a non-empty JSON object"),
    ('{"a": "%%%not-base64"}', None, "MODEL_MIGRATION_CODEC_KEYS: key 'a' is not base64"),
    ('{"a": 7}', None, "MODEL_MIGRATION_CODEC_KEYS: key 'a' is not a base64 string"),
    (json.dumps({"a": base64.b64encode(b"short").decode()}), None, "MODEL_MIGRATION_CODEC_KEYS: key 'a' is 5 bytes"),
    (json.dumps({"a b": base64.b64encode(A).decode()}), None, "MODEL_MIGRATION_CODEC_KEYS: key id 'a b' must be"),
    (keys(a=A, b=B).get_secret_value(), None, "MODEL_MIGRATION_CODEC_KEY_ID must name the current key among: a, b"),
    (keys(a=A).get_secret_value(), "z", "MODEL_MIGRATION_CODEC_KEY_ID 'z' is not among the keys of MODEL_MIGRATION_CODEC_KEYS: a"),
    (None, "a", "MODEL_MIGRATION_CODEC_KEY_ID is set but MODEL_MIGRATION_CODEC_KEYS is not"),
])
def test_bad_settings_are_one_line_naming_the_setting(raw: str | None, current: str | None, expected: str) -> None:
    """Every unusable setting is one line naming it, and never shows a key."""
    with pytest.raises(CodecConfigError) as caught:
        codec_from(SecretStr(raw) if raw is not None else None, current)
    message = str(caught.value)
    assert message.startswith(expected) and "\n" not in message
    assert base64.b64encode(A).decode() not in message and "c2hvcnQ" not in message


async def test_failure_messages_are_encrypted_and_read_back() -> None:
    """With the codec a failure's message and stack trace are encrypted; status's trouble line decrypts them."""
    converter = with_codec(EncryptionCodec({"a": A}, "a"))
    failure = Failure()
    try:
        raise ApplicationError(SECRET, type="GitLabUnavailable")
    except ApplicationError as err:
        await converter.encode_failure(err, failure)
    assert SECRET.encode() not in failure.SerializeToString() and failure.application_failure_info.type == "GitLabUnavailable"
    assert await failure_message(SimpleNamespace(data_converter=converter), failure) == SECRET  # type: ignore[arg-type]
    assert failure.HasField("encoded_attributes")  # read from a copy: the description stays as it came
    without_a = with_codec(EncryptionCodec({"b": B}, "b"))
    assert "key id 'a'" in await failure_message(SimpleNamespace(data_converter=without_a), failure)  # type: ignore[arg-type]
    assert await failure_message(SimpleNamespace(data_converter=data_converter), Failure(message="plain")) == "plain"  # type: ignore[arg-type]


async def test_an_encrypted_payload_without_the_codec_is_one_line() -> None:
    """The plain converter meets an encrypted payload: one line naming the key id and the setting, not a KeyError."""
    [sealed] = await with_codec(EncryptionCodec({"a": A}, "a")).encode([SECRET])
    with pytest.raises(DomainError, match=r"^payload encrypted with key id 'a': set MODEL_MIGRATION_CODEC_KEYS to read it$"):
        await data_converter.decode([sealed], [str])
