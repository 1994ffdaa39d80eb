"""Payload encryption: AES-GCM with named keys, so that workflow histories hold no plaintext.

Every payload is encrypted with the current key under a fresh 12-byte nonce; its metadata names
the key (``encryption-key-id``), which is also bound in as associated data. Decoding uses
whichever configured key a payload names, so a rotated-out key kept in the keyring still reads
older histories. Payloads written before encryption was turned on decode as they are.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from model_migration.domain.errors import DomainError

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_SIZES = (16, 24, 32)
KEYS_SETTING = "MODEL_MIGRATION_CODEC_KEYS"
KEY_ID_SETTING = "MODEL_MIGRATION_CODEC_KEY_ID"
_KEY_ID_SHAPE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class CodecConfigError(DomainError):
    """The codec settings are unusable; the message names the setting, never a key."""


class PayloadDecryptError(DomainError):
    """A payload this process cannot decrypt; the message names the key id, never a key."""


class EncryptionCodec(PayloadCodec):
    """AES-GCM over whole serialized payloads, with a keyring of named keys."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise CodecConfigError(f"current key id {current!r} is not among the keys: {', '.join(sorted(keys))}")
        for key_id, key in keys.items():
            _check_key(key_id, key)
        # Only the ciphers are kept: no attribute holds key bytes, so no repr or log can show one.
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._ciphers))

    def __repr__(self) -> str:
        return f"EncryptionCodec(current={self.current!r}, key_ids={self.key_ids!r})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.current.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was configured
        raw_id = payload.metadata.get(KEY_ID, b"")
        key_id = raw_id.decode("utf-8", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptError(
                f"payload encrypted with key id {key_id!r}, which is not in {KEYS_SETTING} (known: {', '.join(self.key_ids)})"
            )
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], raw_id)
        except (InvalidTag, ValueError):
            raise PayloadDecryptError(
                f"payload encrypted with key id {key_id!r} does not decrypt: it was altered, or {KEYS_SETTING} "
                f"holds a different key under that id"
            ) from None
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def _check_key(key_id: str, key: bytes) -> None:
    if not _KEY_ID_SHAPE.fullmatch(key_id):
        raise CodecConfigError(f"{KEYS_SETTING}: key id {key_id[:64]!r} must be 1-64 of A-Z a-z 0-9 . _ : -")
    if len(key) not in KEY_SIZES:
        raise CodecConfigError(f"{KEYS_SETTING}: key {key_id!r} is {len(key)} bytes; an AES key is 16, 24 or 32 bytes")


def parse_keys(raw: SecretStr) -> dict[str, bytes]:
    """``{"<key id>": "<base64 key>", ...}`` as key bytes by id; one line naming the setting if not."""
    try:
        doc = json.loads(raw.get_secret_value())
    except ValueError:
        raise CodecConfigError(f'{KEYS_SETTING} is not JSON; expected {{"<key id>": "<base64 key>", ...}}') from None
    if not isinstance(doc, dict) or not doc:
        raise CodecConfigError(f'{KEYS_SETTING} must be a non-empty JSON object {{"<key id>": "<base64 key>", ...}}')
    keys: dict[str, bytes] = {}
    for key_id, value in doc.items():
        if not isinstance(value, str):
            raise CodecConfigError(f"{KEYS_SETTING}: key {key_id[:64]!r} is not a base64 string")
        try:
            keys[key_id] = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CodecConfigError(f"{KEYS_SETTING}: key {key_id[:64]!r} is not base64") from None
        _check_key(key_id, keys[key_id])
    return keys


def codec_from(keys: SecretStr | None, current: str | None) -> EncryptionCodec | None:
    """The codec the two settings describe; None when no keys are configured (payloads stay plain)."""
    if keys is None or not keys.get_secret_value().strip():
        if current:
            raise CodecConfigError(f"{KEY_ID_SETTING} is set but {KEYS_SETTING} is not")
        return None
    parsed = parse_keys(keys)
    if not current:
        if len(parsed) > 1:
            raise CodecConfigError(f"{KEY_ID_SETTING} must name the current key among: {', '.join(sorted(parsed))}")
        [current] = parsed
    if current not in parsed:
        raise CodecConfigError(f"{KEY_ID_SETTING} {current!r} is not among the keys of {KEYS_SETTING}: {', '.join(sorted(parsed))}")
    return EncryptionCodec(parsed, current)


def new_key() -> str:
    """A fresh random 256-bit key, base64, for ``MODEL_MIGRATION_CODEC_KEYS``."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()
