"""Personal data in events: encrypted per subject, erased everywhere by forgetting one key.

Event fields declared personal (``class E(Event, personal=(...))``) are stored encrypted
(AES-256-GCM) with a data key of their *subject*: by default the aggregate whose stream holds the
event (its type and id, so that ``Customer 42`` and ``Employee 42`` never share a key), or the
aggregate a field declares it belongs to (an account's owner name belongs to the user). Subjects
are named by their stream key, ``{aggregate_type}#{aggregate_id}``. Data keys are kept wrapped
(encrypted) by a master key: AWS KMS in production (``KmsKeyWrapper``), a local key for development
(``LocalKeyWrapper``).

Forgetting a subject replaces its wrapped key by a *tombstone*: every copy of its personal data, in
every event, snapshot, backup and replay, becomes unreadable at once (crypto-shredding), while the
streams stay replayable: the fields read back as ``ERASED`` (or ``None`` where the field is
optional). The tombstone is permanent: a key is created only where no item exists, so a forgotten
subject never gets a fresh key, and new personal data for it is refused (``SubjectForgotten``)
instead of being written under a key that would make old ciphertexts unreadable in a new way.

Snapshots of aggregates that hold personal data are encrypted whole, once with the key of every
subject whose data the state holds, so forgetting any one of them makes the snapshot unreadable.

``cryptography`` is imported when the first key is made or used, not with this module: an
application without personal data never loads it.
"""

from __future__ import annotations

import base64
import enum
import json
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from framework.errors import EventStoreError, SubjectForgotten
from framework.subjects import ERASED, subject_name

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "ERASED",
    "FORGOTTEN",
    "Forgotten",
    "InMemoryKeyStorage",
    "KeyRing",
    "KeyWrapper",
    "KmsKeyWrapper",
    "LocalKeyWrapper",
    "WrappedKeyStorage",
    "subject_name",
]

ENCRYPTED_MARK = "$enc"
SUBJECT_MARK = "sub"
"""The key, in an encrypted field's stored document, of the subject whose key sealed it."""
_NONCE_BYTES = 12


class Forgotten(enum.Enum):
    """The stored state of a subject whose key was forgotten (a tombstone, not an absence)."""

    FORGOTTEN = "forgotten"


FORGOTTEN = Forgotten.FORGOTTEN


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
        self._master = _cipher(master_key)

    def new_data_key(self) -> tuple[bytes, bytes]:
        plaintext = os.urandom(32)  # a 256-bit AES key, as AESGCM.generate_key makes one
        nonce = os.urandom(_NONCE_BYTES)
        return plaintext, nonce + self._master.encrypt(nonce, plaintext, b"data-key")

    def unwrap(self, wrapped: bytes) -> bytes:
        return self._master.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], b"data-key")


class KmsKeyWrapper:
    """Wraps data keys with an AWS KMS key (``GenerateDataKey`` / ``Decrypt``)."""

    def __init__(
        self, key_id: str, client: Any | None = None, *, region_name: str | None = None
    ) -> None:
        self.key_id = key_id
        self.region_name = region_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("kms", region_name=self.region_name)
        return self._client

    def new_data_key(self) -> tuple[bytes, bytes]:
        response = self.client.generate_data_key(KeyId=self.key_id, KeySpec="AES_256")
        return bytes(response["Plaintext"]), bytes(response["CiphertextBlob"])

    def unwrap(self, wrapped: bytes) -> bytes:
        return bytes(self.client.decrypt(CiphertextBlob=wrapped, KeyId=self.key_id)["Plaintext"])


class WrappedKeyStorage(Protocol):
    """Where wrapped data keys are kept, by subject; a forgotten subject keeps a tombstone."""

    def load(self, subject: str) -> bytes | Forgotten | None:
        """The wrapped key of ``subject``, ``FORGOTTEN``, or ``None`` when it never had one."""
        ...

    def save_if_absent(self, subject: str, wrapped: bytes) -> bytes | Forgotten:
        """Store ``wrapped`` unless a key or a tombstone exists; return what is stored now."""
        ...

    def forget(self, subject: str) -> None:
        """Replace the key of ``subject`` by a tombstone, for good."""
        ...


class InMemoryKeyStorage:
    """Wrapped keys in memory (for the in-memory event store and tests)."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes | Forgotten] = {}
        self._lock = threading.Lock()

    def load(self, subject: str) -> bytes | Forgotten | None:
        with self._lock:
            return self._keys.get(subject)

    def save_if_absent(self, subject: str, wrapped: bytes) -> bytes | Forgotten:
        with self._lock:
            return self._keys.setdefault(subject, wrapped)

    def forget(self, subject: str) -> None:
        with self._lock:
            self._keys[subject] = FORGOTTEN


class KeyRing:
    """Data keys by subject: created on first use, cached briefly, tombstoned to forget.

    The cache keeps unwrapped keys for ``cache_seconds`` so that reading a stream does not call
    KMS per event; a key forgotten by another process stays usable here at most that long (what
    it seals then is unreadable once that time is over, since the key is stored nowhere). That a
    subject is forgotten is cached without a time limit: it is permanent.
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
        self._cache: OrderedDict[str, tuple[float, AESGCM | Forgotten]] = OrderedDict()
        self._lock = threading.Lock()

    def cipher(self, subject: str, *, create: bool) -> AESGCM | None:
        """The subject's cipher; ``None`` when it has no key (never had one, or forgotten).

        With ``create``, a subject without a key gets one, and a forgotten subject raises
        ``SubjectForgotten``: its tombstone is never replaced by a fresh key.
        """
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(subject)
        if cached is not None and (cached[1] is FORGOTTEN or now - cached[0] < self.cache_seconds):
            return self._usable(subject, cached[1], create)
        stored = self.storage.load(subject)
        if stored is None:
            if not create:
                return None
            plaintext, new_wrapped = self.wrapper.new_data_key()
            stored = self.storage.save_if_absent(subject, new_wrapped)
            if stored == new_wrapped:
                stored = plaintext  # ours was saved: no need to unwrap it again
            elif stored is not FORGOTTEN:  # another process created it first: use theirs
                stored = self.wrapper.unwrap(stored)
        elif stored is not FORGOTTEN:
            stored = self.wrapper.unwrap(stored)
        found = stored if stored is FORGOTTEN else _cipher(stored)
        self._remember(subject, now, found)
        return self._usable(subject, found, create)

    @staticmethod
    def _usable(subject: str, found: AESGCM | Forgotten, create: bool) -> AESGCM | None:
        if found is FORGOTTEN:
            if create:
                raise SubjectForgotten(subject)
            return None
        return found

    def _remember(self, subject: str, now: float, found: AESGCM | Forgotten) -> None:
        with self._lock:
            self._cache[subject] = (now, found)
            self._cache.move_to_end(subject)
            while len(self._cache) > self.cache_entries:
                self._cache.popitem(last=False)

    def forget(self, subject: str) -> None:
        """Tombstone the subject's key: its personal data can never be read again."""
        self.storage.forget(subject)
        self._remember(subject, time.monotonic(), FORGOTTEN)

    # -- fields and blobs ------------------------------------------------------------------

    def encrypt_text(self, subject: str, value: str, context: str) -> dict[str, str]:
        """An encrypted field value, bound to its subject and ``context`` (type and field)."""
        cipher = self.cipher(subject, create=True)
        assert cipher is not None
        nonce = os.urandom(_NONCE_BYTES)
        sealed = cipher.encrypt(nonce, value.encode(), _bound(subject, context))
        return {ENCRYPTED_MARK: base64.b64encode(nonce + sealed).decode(), SUBJECT_MARK: subject}

    def decrypt_text(self, value: dict[str, str], context: str) -> str | None:
        """The field's text, or ``None`` when its subject's key is gone."""
        subject = value.get(SUBJECT_MARK)
        if not isinstance(subject, str):
            raise EventStoreError(
                "an encrypted field names no subject: it was written by a version of the "
                "framework that keyed personal data by aggregate id alone"
            )
        cipher = self.cipher(subject, create=False)
        if cipher is None:
            return None
        raw = base64.b64decode(value[ENCRYPTED_MARK])
        from cryptography.exceptions import InvalidTag  # loaded already: the cipher needed it

        try:
            plain = cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _bound(subject, context))
        except InvalidTag as error:
            raise EventStoreError(
                f"an encrypted field of {subject!r} fails authentication"
            ) from error
        return plain.decode()

    def encrypt_blob(self, subjects: Iterable[str], data: bytes, context: str) -> bytes:
        """``data`` sealed once with the key of every subject (innermost first, sorted).

        The subjects travel in a clear header, so that reading knows which keys to ask for.
        Raises ``SubjectForgotten`` when any subject is forgotten.
        """
        names = sorted(set(subjects))
        for subject in names:
            cipher = self.cipher(subject, create=True)
            assert cipher is not None
            nonce = os.urandom(_NONCE_BYTES)
            data = nonce + cipher.encrypt(nonce, data, _bound(subject, context))
        header = json.dumps(names, separators=(",", ":")).encode()
        return struct.pack(">I", len(header)) + header + data

    def decrypt_blob(self, blob: bytes, context: str) -> tuple[bytes, list[str]] | None:
        """The plaintext of ``encrypt_blob`` and its subjects; ``None`` when a key is gone."""
        (length,) = struct.unpack(">I", blob[:4])
        names = json.loads(blob[4 : 4 + length])
        data = blob[4 + length :]
        for subject in reversed(names):
            cipher = self.cipher(subject, create=False)
            if cipher is None:
                return None
            data = cipher.decrypt(
                data[:_NONCE_BYTES], data[_NONCE_BYTES:], _bound(subject, context)
            )
        return data, list(names)


def _cipher(key: bytes) -> AESGCM:
    """An AES-256-GCM cipher with ``key``; the first call imports ``cryptography``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _bound(subject: str, context: str) -> bytes:
    """The associated data of a ciphertext: what it belongs to, so it cannot be moved."""
    return f"{subject}|{context}".encode()
