"""The records an event store reads and writes.

The store deals in these plain, immutable records only: it never sees aggregate or event classes.
Payloads arrive already encoded (bytes), so every store writes exactly the same bytes.
"""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from framework.store.keys import claim_key, stream_key

_EVENT_ID_NAMESPACE = uuid.UUID("6f1e0f4c-8e57-4c3b-9a52-2d1c4f7b3e10")


def event_id(change_set_id: str, stream: str, version: int) -> str:
    """The stable id of a stored event: the same for every (re)delivery of it.

    Published entries carry it (subscribers deduplicate on it) and log lines about the event
    carry it, so the two can be matched.
    """
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{change_set_id}\n{stream}\n{version}"))


@attrs.frozen
class StreamEvent:
    """One event of one stream as an aggregate is rebuilt from it: where it stands in its
    stream and what it says, without the metadata of the commit that wrote it.

    What ``EventStore.load_history`` returns: loading an aggregate needs nothing more, and a
    store may leave the rest unread (the DynamoDB store asks for four attributes of each item
    instead of eleven). Every ``StoredEvent`` is one too.
    """

    aggregate_type: str
    aggregate_id: str
    version: int
    event_type: str
    schema: int
    payload: bytes

    @property
    def stream(self) -> str:
        """The stream key this event belongs to."""
        return stream_key(self.aggregate_type, self.aggregate_id)


@attrs.frozen
class StoredEvent(StreamEvent):
    """One event of one stream, as stored: the ``StreamEvent`` and its commit's metadata.

    ``traceparent`` and ``tracestate`` (optional) hold the trace context of the request that
    committed it, so whatever follows the event later can continue that trace.
    """

    occurred_at: dt.datetime
    change_set_id: str
    command_id: str
    correlation_id: str
    causation_id: str
    traceparent: str | None = None
    """The W3C trace context current when the event was committed, if any (see ``tracing``)."""
    tracestate: str | None = None


@attrs.frozen
class Snapshot:
    """The serialized state of an aggregate at ``version``; ``schema`` fingerprints its shape."""

    aggregate_type: str
    aggregate_id: str
    version: int
    state: bytes
    schema: str
    created_at: dt.datetime


@attrs.frozen
class AggregateChange:
    """What one command did to one aggregate: the version it started from and its new events."""

    aggregate_type: str
    aggregate_id: str
    expected_version: int
    events: tuple[StoredEvent, ...]
    snapshot: Snapshot | None = None

    @property
    def new_version(self) -> int:
        """The version the aggregate has once the change is committed."""
        return self.expected_version + len(self.events)

    @property
    def stream(self) -> str:
        """The stream key of the changed aggregate."""
        return stream_key(self.aggregate_type, self.aggregate_id)


@attrs.frozen
class UniqueClaim:
    """Take (``claim=True``) or give up (``claim=False``) ``value`` in ``scope`` for ``owner``."""

    scope: str
    value: str
    owner: str
    claim: bool = True

    @property
    def key(self) -> str:
        """The aggregates-table key of the claim (see ``keys.claim_key``)."""
        return claim_key(self.scope, self.value)


@attrs.frozen
class VersionCheck:
    """An aggregate the command read but did not change: it must still be at ``expected_version``.

    A decision taken on an aggregate's state is only sound if that state is still current when
    the decision commits, even when the aggregate itself is not written (a cached copy that went
    stale, or two commands each reading what the other changes: write skew). ``expected_version``
    0 means the aggregate was read as absent and must still not exist.
    """

    aggregate_type: str
    aggregate_id: str
    expected_version: int

    @property
    def stream(self) -> str:
        """The stream key of the checked aggregate."""
        return stream_key(self.aggregate_type, self.aggregate_id)


@attrs.frozen
class ChangeSet:
    """Everything one command changes, committed atomically or not at all.

    ``result`` is the command's outcome (a small JSON document); it is stored with the command id
    so that a repeated command can be answered with the first outcome. ``forget_keys`` names
    subjects whose personal-data key is deleted in the same transaction ("forget me").
    ``checks`` are the aggregates the command read without changing them: the change set commits
    only if each is still at the version it was read at. ``command_fingerprint`` identifies the
    command's payload, so that its id reused for another payload can be told from a repeat.
    A change set may change no aggregate at all: it then records the command id (and checks).
    """

    change_set_id: str
    command_id: str
    committed_at: dt.datetime
    aggregates: tuple[AggregateChange, ...]
    claims: tuple[UniqueClaim, ...] = ()
    result: bytes = b"{}"
    forget_keys: tuple[str, ...] = ()
    checks: tuple[VersionCheck, ...] = ()
    command_fingerprint: str | None = None


@attrs.frozen
class ProcessedCommand:
    """The stored record of a command that was committed.

    ``fingerprint`` identifies the command's payload; it is ``None`` for records written before
    fingerprints were stored.
    """

    command_id: str
    change_set_id: str
    result: bytes
    fingerprint: str | None = None
