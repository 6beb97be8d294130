"""Events too large for a DynamoDB item: their payload goes to S3, the item keeps a claim check.

Payloads are compressed first (by the mapper, ``framework.mapping.formats``); one still larger than
``OFFLOAD_THRESHOLD`` is uploaded before the transaction, and the event item stores a small
reference instead: bucket, key, size and SHA-256. Reading resolves the reference transparently and
verifies the checksum; a missing object or a checksum mismatch is a ``CorruptEvent`` naming the
stream and version.

The first byte of a stored payload says what it is: ``{`` JSON, ``z`` compressed JSON, ``s`` a
reference to S3. An upload whose transaction then fails leaves an orphan object: harmless (no
event points at it) and removed on a best-effort basis right away.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Protocol, TypeVar

import attrs

from framework.errors import ChangeSetTooLarge, CorruptEvent
from framework.store.keys import payload_object_key
from framework.store.records import ChangeSet, StreamEvent

REFERENCE_TAG = ord("s")
OFFLOAD_THRESHOLD = 300 * 1024
"""Payloads above this many bytes are offloaded: the rest of the item needs room too."""


class PayloadStore(Protocol):
    """Where offloaded payloads live (S3 in production)."""

    bucket: str

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``."""
        ...

    def get(self, key: str) -> bytes | None:
        """The data under ``key``, or ``None`` when there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...


class S3PayloadStore:
    """Offloaded payloads in an S3 bucket (under ``prefix``)."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "events/",
        client: Any | None = None,
        region_name: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.region_name = region_name
        self._client = client

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use)."""
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", region_name=self.region_name)
        return self._client

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def get(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except self.client.exceptions.NoSuchKey:
            return None
        body: bytes = response["Body"].read()
        return body

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)


class InMemoryPayloadStore:
    """Offloaded payloads in memory, for the in-memory event store."""

    def __init__(self, bucket: str = "memory") -> None:
        self.bucket = bucket
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._objects[key] = data

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._objects.get(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def keys(self) -> list[str]:
        """Every key held, sorted."""
        with self._lock:
            return sorted(self._objects)


def offload(
    change_set: ChangeSet, payloads: PayloadStore | None, threshold: int = OFFLOAD_THRESHOLD
) -> tuple[ChangeSet, list[str]]:
    """Upload oversized payloads and return the change set with references, and the keys."""
    if all(len(e.payload) <= threshold for c in change_set.aggregates for e in c.events):
        return change_set, []  # nearly every change set: nothing to copy
    uploaded: list[str] = []
    changes = []
    for change in change_set.aggregates:
        events = []
        for event in change.events:
            if len(event.payload) <= threshold:
                events.append(event)
                continue
            if payloads is None:
                raise ChangeSetTooLarge(
                    f"event {event.event_type} of {event.stream} is {len(event.payload)} bytes "
                    "even compressed; configure large_payloads=S3PayloadStore(bucket) to "
                    "offload such events to S3"
                )
            key = payload_object_key(event.stream, event.version, change_set.change_set_id)
            payloads.put(key, event.payload)
            uploaded.append(key)
            reference = {
                "bucket": payloads.bucket,
                "key": key,
                "size": len(event.payload),
                "sha256": hashlib.sha256(event.payload).hexdigest(),
            }
            encoded = bytes([REFERENCE_TAG]) + json.dumps(reference).encode()
            events.append(attrs.evolve(event, payload=encoded))
        changes.append(attrs.evolve(change, events=tuple(events)))
    if not uploaded:
        return change_set, []
    return attrs.evolve(change_set, aggregates=tuple(changes)), uploaded


def forget_uploads(payloads: PayloadStore | None, keys: list[str]) -> None:
    """Best-effort removal of objects a failed transaction left without an event."""
    if payloads is None:
        return
    for key in keys:
        try:
            payloads.delete(key)
        except Exception:  # an orphan object is harmless; never hide the commit's own error
            continue


Record = TypeVar("Record", bound=StreamEvent)


def resolve(record: Record, payloads: PayloadStore | None) -> Record:
    """The record (stored or as a history holds it) with its real payload, fetched and verified
    when it was offloaded."""
    if not record.payload or record.payload[0] != REFERENCE_TAG:
        return record
    try:
        reference = json.loads(record.payload[1:])
        key, digest = str(reference["key"]), str(reference["sha256"])
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptEvent(record.stream, record.version, f"bad S3 reference: {error}") from None
    if payloads is None:
        raise CorruptEvent(
            record.stream,
            record.version,
            f"the payload is in S3 ({reference.get('bucket')}/{key}) but no large_payloads "
            "store is configured",
        )
    data = payloads.get(key)
    if data is None:
        raise CorruptEvent(record.stream, record.version, f"offloaded payload {key!r} is missing")
    if hashlib.sha256(data).hexdigest() != digest:
        raise CorruptEvent(
            record.stream, record.version, f"offloaded payload {key!r} fails its checksum"
        )
    return attrs.evolve(record, payload=data)
