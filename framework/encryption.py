"""Personal data in events: encrypted per subject, erased everywhere by deleting one key.

Event fields marked ``personal()`` are stored encrypted (AES-256-GCM) with a data key of their
*subject*: the aggregate whose stream holds the event. Data keys are kept wrapped (encrypted) by a
master key: AWS KMS in production (``KmsKeyWrapper``), a local key for development
(``LocalKeyWrapper``). Forgetting a subject deletes its data key: every copy of its personal data,
in every event, snapshot, backup and replay, becomes unreadable at once (crypto-shredding), while
the streams stay replayable: the fields read back as ``ERASED`` (or ``None`` where the field is
optional).

Snapshots of aggregates that hold personal data are encrypted whole with the same key, so a
snapshot taken before "forget me" cannot bring the data back.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from framework.errors import EventStoreError

ERASED = "[erased]"
"""What a personal text field reads as once its subject was forgotten."""

ENCRYPTED_MARK = "$enc"
_NONCE_BYTES = 12


class KeyWrapper(Protocol):
    """Encrypts and decrypts data keys with a master key."""

    def new_data_key(self) -> tuple[bytes, bytes]:
        """A fresh 256-bit data key: (plaintext, wrapped)."""
        ...

    def unwrap(self, wrapped: bytes) -> bytes:
        """The plaintext of a wrapped data key."""
        ...


class LocalKeyWrapper:
    """Wraps data keys with a local AES key: for development and tests, not for production."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._master = AESGCM(master_key)

    def new_data_key(self) -> tuple[bytes, bytes]:
        plaintext = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE_BYTES)
        return plaintext, nonce + self._master.encrypt(nonce, plaintext, b"data-key")

    def unwrap(self, wrapped: bytes) -> bytes:
        return self._master.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], b"data-key")


class KmsKeyWrapper:
    """Wraps data keys with an AWS KMS key (``GenerateDataKey`` / ``Decrypt``)."""

    def __init__(self, key_id: str, client: Any | None = None) -> None:
        self.key_id = key_id
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("kms")
        return self._client

    def new_data_key(self) -> tuple[bytes, bytes]:
        response = self.client.generate_data_key(KeyId=self.key_id, KeySpec="AES_256")
        return bytes(response["Plaintext"]), bytes(response["CiphertextBlob"])

    def unwrap(self, wrapped: bytes) -> bytes:
        return bytes(self.client.decrypt(CiphertextBlob=wrapped, KeyId=self.key_id)["Plaintext"])


class WrappedKeyStorage(Protocol):
    """Where wrapped data keys are kept, by subject."""

    def load(self, subject: str) -> bytes | None:
        """The wrapped key of ``subject``, or ``None``."""
        ...

    def save_if_absent(self, subject: str, wrapped: bytes) -> bytes:
        """Store ``wrapped`` unless a key exists; return the key that is stored now."""
        ...

    def delete(self, subject: str) -> None:
        """Delete the key of ``subject`` for good."""
        ...


class InMemoryKeyStorage:
    """Wrapped keys in memory (for the in-memory event store)."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load(self, subject: str) -> bytes | None:
        with self._lock:
            return self._keys.get(subject)

    def save_if_absent(self, subject: str, wrapped: bytes) -> bytes:
        with self._lock:
            return self._keys.setdefault(subject, wrapped)

    def delete(self, subject: str) -> None:
        with self._lock:
            self._keys.pop(subject, None)


class KeyRing:
    """Data keys by subject: created on first use, cached briefly, deleted to forget.

    The cache keeps unwrapped keys for ``cache_seconds`` so that reading a stream does not call
    KMS per event; a key forgotten by another process stays usable here at most that long.
    """

    def __init__(
        self,
        wrapper: KeyWrapper,
        storage: WrappedKeyStorage | None = None,
        *,
        cache_seconds: float = 60.0,
        cache_entries: int = 10_000,
    ) -> None:
        self.wrapper = wrapper
        self.storage = storage or InMemoryKeyStorage()
        self.cache_seconds = cache_seconds
        self.cache_entries = cache_entries
        self._cache: OrderedDict[str, tuple[float, AESGCM]] = OrderedDict()
        self._lock = threading.Lock()

    def cipher(self, subject: str, *, create: bool) -> AESGCM | None:
        """The subject's cipher; ``None`` when it has no key (never had one, or forgotten)."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(subject)
            if cached is not None and now - cached[0] < self.cache_seconds:
                return cached[1]
        wrapped = self.storage.load(subject)
        if wrapped is None:
            if not create:
                return None
            plaintext, new_wrapped = self.wrapper.new_data_key()
            stored = self.storage.save_if_absent(subject, new_wrapped)
            if stored != new_wrapped:  # another process created it first
                plaintext = self.wrapper.unwrap(stored)
        else:
            plaintext = self.wrapper.unwrap(wrapped)
        cipher = AESGCM(plaintext)
        with self._lock:
            self._cache[subject] = (now, cipher)
            while len(self._cache) > self.cache_entries:
                self._cache.popitem(last=False)
        return cipher

    def forget(self, subject: str) -> None:
        """Delete the subject's key: its personal data can never be read again."""
        self.storage.delete(subject)
        with self._lock:
            self._cache.pop(subject, None)

    # -- fields and blobs ------------------------------------------------------------------

    def encrypt_text(self, subject: str, value: str, context: str) -> dict[str, str]:
        """An encrypted field value, bound to ``context`` (event type and field name)."""
        cipher = self.cipher(subject, create=True)
        assert cipher is not None
        nonce = os.urandom(_NONCE_BYTES)
        sealed = cipher.encrypt(nonce, value.encode(), context.encode())
        return {ENCRYPTED_MARK: base64.b64encode(nonce + sealed).decode()}

    def decrypt_text(self, subject: str, value: dict[str, str], context: str) -> str | None:
        """The field's text, or ``None`` when the subject's key is gone."""
        cipher = self.cipher(subject, create=False)
        if cipher is None:
            return None
        raw = base64.b64decode(value[ENCRYPTED_MARK])
        try:
            return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()).decode()
        except InvalidTag as error:
            raise EventStoreError(
                f"an encrypted field of {subject!r} fails authentication"
            ) from error

    def encrypt_blob(self, subject: str, data: bytes, context: str) -> bytes:
        cipher = self.cipher(subject, create=True)
        assert cipher is not None
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + cipher.encrypt(nonce, data, context.encode())

    def decrypt_blob(self, subject: str, data: bytes, context: str) -> bytes | None:
        cipher = self.cipher(subject, create=False)
        if cipher is None:
            return None
        return cipher.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], context.encode())
