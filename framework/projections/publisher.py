"""Publishes committed events to an Amazon EventBridge bus, following them like a projector.

``EventBridgePublisher`` is a ``Projector``: the projection engine and its three runners
(catch-up over the feed, the Streams poller, the Lambda handler) deliver it events with the same
per-stream positions, so what holds for read models holds for the bus. A handler turns each event
into a ``PutEvents`` entry and queues it; before the engine moves a position
(``Projector.before_advance``) the queued entries are sent. The position therefore passes an event
only once its entry was accepted by EventBridge or written to the dead-letter queue: a crash in
between sends it again (at least once, never lost), and the entry's ``detail.eventId``, derived
from the stored event, is the same every time so that subscribers can deduplicate.

Sending keeps each stream's order: a request holds at most one entry per stream (up to 10
entries and 256 KB), and a stream's next entry waits until the one before it was accepted or
given up. An entry EventBridge refuses (``FailedEntryCount``, a per-entry ``ErrorCode``) is retried
on its own with full-jitter backoff; after ``max_attempts`` it goes to the dead-letter queue with a
message that says which event, which bus and why, and its stream goes on. Whole requests that fail
(EventBridge unreachable, throttling, access denied) are retried the same way, then fail the run
(``BusUnavailable``): nothing is moved past the unsent entries.

Personal fields are never published readable unless ``readable`` names them for their event type
(and the publisher has a ``key_ring``); otherwise they read ``ERASED`` (``None`` when optional).
A forgotten subject's fields decode as erased whatever ``readable`` says, so a replay or a re-send
never brings them back.

This module talks to no AWS service itself: ``framework.projections.eventbridge`` holds the
boto3 adapters, built from the environment on first use when none is given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import attrs
import structlog

from framework.application import Backoff
from framework.config import Settings
from framework.domain import Aggregate, Event, event_type_name, personal_fields
from framework.errors import BusUnavailable, DefinitionError, EntryTooLarge
from framework.mapping.converter import converter
from framework.mapping.mapper import EventMapper
from framework.mapping.upcasters import Upcaster
from framework.projections.projector import Envelope, Projector
from framework.store.base import EventStore
from framework.store.large_payloads import PayloadStore
from framework.store.records import StoredEvent, event_id
from framework.subjects import ERASED
from framework.tracing import AttributeValue, SpanKind, active_tracer, publish_context

__all__ = [
    "MAX_ENTRIES_PER_REQUEST",
    "MAX_REQUEST_BYTES",
    "BusEntry",
    "DeadLetter",
    "DeadLetterQueue",
    "EntryFailure",
    "EventBridgePublisher",
    "EventBus",
    "InMemoryDeadLetterQueue",
    "InMemoryEventBus",
    "SendReport",
    "event_id",
]

log = structlog.get_logger(__name__)

MAX_ENTRIES_PER_REQUEST = 10
"""``PutEvents`` takes at most 10 entries a request."""
MAX_REQUEST_BYTES = 256 * 1024
"""``PutEvents`` takes at most 256 KB a request, as EventBridge counts an entry's size."""
DEAD_LETTER_KIND = "framework.publish.dead-letter"


@attrs.frozen
class BusEntry:
    """One ``PutEvents`` entry, with the stored event it comes from."""

    source: str
    detail_type: str
    detail: str
    time: dt.datetime
    event_id: str
    stream: str
    version: int
    traceparent: str | None = None
    """The trace context stored with the event: the ``publish`` span continues its trace."""
    tracestate: str | None = None

    @property
    def size(self) -> int:
        """The entry's size as EventBridge counts it against the 256 KB of a request."""
        return 14 + sum(len(text.encode()) for text in (self.source, self.detail_type, self.detail))

    def request_entry(self, bus_name: str) -> dict[str, Any]:
        """The entry as ``PutEvents`` takes it."""
        return {
            "Source": self.source,
            "DetailType": self.detail_type,
            "Detail": self.detail,
            "Time": self.time,
            "EventBusName": bus_name,
        }


@attrs.frozen
class EntryFailure:
    """Why EventBridge refused one entry of a request (its ``ErrorCode`` and ``ErrorMessage``)."""

    code: str
    message: str = ""


class EventBus(Protocol):
    """Where entries go: EventBridge (``framework.projections.eventbridge.EventBridgeBus``)."""

    name: str

    def put_events(self, entries: Sequence[BusEntry]) -> list[EntryFailure | None]:
        """Send up to 10 entries; per entry ``None`` (accepted) or why it was refused.

        Raises ``BusUnavailable`` when the request as a whole failed.
        """
        ...


@attrs.frozen
class DeadLetter:
    """A message of the dead-letter queue: its handle (to delete it) and its body."""

    message_id: str
    receipt: str
    body: Mapping[str, Any]


class DeadLetterQueue(Protocol):
    """Where entries go after their last attempt (an SQS queue: ``SqsDeadLetterQueue``)."""

    name: str

    def send(self, body: Mapping[str, Any]) -> None:
        """Add a message; raises ``BusUnavailable`` when it cannot."""
        ...

    def receive(self, limit: int, hide_for: int) -> list[DeadLetter]:
        """Up to ``limit`` (at most 10) messages, hidden from other readers ``hide_for`` s."""
        ...

    def release(self, receipt: str) -> None:
        """Make a received message visible again at once."""
        ...

    def delete(self, receipt: str) -> None:
        """Remove a message received before."""
        ...


@attrs.define
class SendReport:
    """What one ``send`` did."""

    published: int = 0
    dead_lettered: int = 0
    requests: int = 0
    retries: int = 0


@attrs.define
class _Pending:
    entry: BusEntry
    event_type: str
    attempts: int = 0
    not_before: float = 0.0
    first_attempt: dt.datetime | None = None
    failure: EntryFailure | None = None


class EventBridgePublisher(Projector, name="eventbridge-publisher"):
    """Base class of publishers: subclass it, name it, say what to publish and from whom.

    ``source`` is the ``Source`` of every entry (the application's name, not ``aws.*``);
    ``aggregates`` and ``events`` name the event classes published (every event of the
    aggregates' types by default: ``aggregate_types`` may narrow it); ``readable`` maps an event
    class to the personal fields published in clear (they need ``key_ring``). Built without
    arguments (as the command line and the Lambda handler do) it takes them from ``settings``
    (``Settings.load()`` by default: the environment and the TOML file it names): it sends to the
    bus ``EVENT_BUS_NAME`` and dead-letters to the queue ``PUBLISH_DLQ_URL``; a payload bucket
    ``PUBLISH_PAYLOAD_BUCKET`` turns on the claim check for entries over 256 KB.
    """

    source: ClassVar[str] = ""
    aggregates: ClassVar[tuple[type[Aggregate], ...]] = ()
    events: ClassVar[tuple[type[Event], ...]] = ()
    readable: ClassVar[Mapping[type[Event], frozenset[str]]] = {}
    max_attempts: ClassVar[int] = 5
    backoff: ClassVar[Backoff] = Backoff(base=0.2, cap=10.0)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.source.startswith("aws.") or any(c.isspace() for c in cls.source):
            raise DefinitionError(f"{cls.__name__}.source {cls.source!r} is not a valid Source")
        classes = {c: None for a in cls.aggregates for c in a.handled_event_types()}
        classes.update({c: None for c in cls.events})
        for event_class, fields in cls.readable.items():
            unknown = set(fields) - set(personal_fields(event_class))
            if unknown:
                raise DefinitionError(
                    f"{cls.__name__}.readable names {sorted(unknown)} of "
                    f"{event_class.__name__}, which are not its personal fields"
                )
        publish = EventBridgePublisher._publish
        cls._event_handlers = {event_class: publish for event_class in classes}
        cls._handlers_by_name = {event_type_name(c): publish for c in classes}

    def __init__(
        self,
        *,
        bus: EventBus | None = None,
        dead_letters: DeadLetterQueue | None = None,
        payloads: PayloadStore | None = None,
        settings: Settings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if not type(self).source:
            raise DefinitionError(f"{type(self).__name__} has no source: set source = 'my-app'")
        self._bus = bus
        self._dead_letters = dead_letters
        self._payloads = payloads
        self._settings = settings
        self._sleep = sleep
        self._clock = clock
        self._local = threading.local()  # per thread: the entries its handlers queued
        self._adapters = threading.Lock()

    # -- the adapters, from the settings when none was given --------------------------------

    @property
    def settings(self) -> Settings:
        """The settings the adapters not given are built from (read once, on first use)."""
        if self._settings is None:
            self._settings = Settings.load()
        return self._settings

    @property
    def bus(self) -> EventBus:
        """The bus entries go to (the settings' ``event_bus`` when none was given)."""
        with self._adapters:
            if self._bus is None:
                from framework.projections.eventbridge import EventBridgeBus

                self._bus = EventBridgeBus.from_settings(self.settings)
            return self._bus

    @property
    def dead_letters(self) -> DeadLetterQueue:
        """The dead-letter queue (the settings' ``publish_dlq_url`` when none was given)."""
        with self._adapters:
            if self._dead_letters is None:
                from framework.projections.eventbridge import SqsDeadLetterQueue

                self._dead_letters = SqsDeadLetterQueue.from_settings(self.settings)
            return self._dead_letters

    @property
    def payloads(self) -> PayloadStore | None:
        """Where entries over 256 KB leave their payload (``publish_payload_bucket``), if set."""
        with self._adapters:
            bucket = self.settings.publish_payload_bucket if self._payloads is None else None
            if bucket:
                from framework.store.large_payloads import S3PayloadStore

                self._payloads = S3PayloadStore(bucket, prefix="published/")
            return self._payloads

    # -- from an event to an entry ----------------------------------------------------------

    def _publish(self, event: Event, envelope: Envelope) -> None:
        """The handler of every published event type: queue its entry for ``before_advance``."""
        self._queue().append(_Pending(self.entry_for(event, envelope), envelope.event_type))

    def _queue(self) -> list[_Pending]:
        queued: list[_Pending] | None = getattr(self._local, "queued", None)
        if queued is None:
            queued = self._local.queued = []
        return queued

    def entry_for(self, event: Event, envelope: Envelope) -> BusEntry:
        """The ``PutEvents`` entry of ``event``: its envelope and payload, personal data erased.

        An entry over 256 KB leaves its payload in the payload store and carries a claim check
        (``payloadRef``: bucket, key, size, SHA-256) instead; without a payload store it is
        refused with ``EntryTooLarge``.
        """
        event_class = type(event)
        payload: dict[str, Any] = converter.unstructure(event, event_class)
        shown = self.readable.get(event_class, frozenset()) if self.key_ring else frozenset()
        for field in personal_fields(event_class):
            if field not in shown and payload.get(field) is not None:
                payload[field] = ERASED
        identity = event_id(envelope.change_set_id, envelope.stream, envelope.version)
        detail: dict[str, Any] = {
            "eventId": identity,
            "aggregateType": envelope.aggregate_type,
            "aggregateId": envelope.aggregate_id,
            "version": envelope.version,
            "eventType": envelope.event_type,
            "occurredAt": envelope.occurred_at.isoformat(),
            "changeSetId": envelope.change_set_id,
            "commandId": envelope.command_id,
            "correlationId": envelope.correlation_id,
            "causationId": envelope.causation_id,
            "payload": payload,
        }
        if envelope.traceparent:
            # Subscribers continue the request's trace (W3C Trace Context).
            trace_context = {"traceparent": envelope.traceparent}
            if envelope.tracestate:
                trace_context["tracestate"] = envelope.tracestate
            detail["traceContext"] = trace_context
        entry = self._entry(envelope, identity, detail)
        if entry.size <= MAX_REQUEST_BYTES:
            return entry
        payloads = self.payloads
        if payloads is None:
            raise EntryTooLarge(envelope.stream, envelope.version, entry.size, MAX_REQUEST_BYTES)
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        key = f"{identity}.json"
        payloads.put(key, data)
        detail["payload"] = None
        detail["payloadRef"] = {
            "bucket": payloads.bucket,
            "key": key,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        return self._entry(envelope, identity, detail)

    def _entry(self, envelope: Envelope, identity: str, detail: dict[str, Any]) -> BusEntry:
        return BusEntry(
            source=self.source,
            detail_type=envelope.event_type,
            detail=json.dumps(detail, separators=(",", ":"), ensure_ascii=False),
            time=envelope.occurred_at,
            event_id=identity,
            stream=envelope.stream,
            version=envelope.version,
            traceparent=envelope.traceparent,
            tracestate=envelope.tracestate,
        )

    def entries_for(
        self,
        records: Iterable[StoredEvent],
        store: EventStore,
        upcasters: Iterable[Upcaster] = (),
    ) -> list[tuple[BusEntry, str]]:
        """The entries of stored events, outside the engine (a replay, a re-send).

        Decoded with the publisher's key ring and the application's ``upcasters`` as the engine
        does, so an old event reads as the application reads it and a subject forgotten since
        the first publication reads erased. Events of streams or types not published are left
        out.
        """
        mapper = EventMapper(self.event_classes(), upcasters=upcasters, keys=self.key_ring)
        entries: list[tuple[BusEntry, str]] = []
        for record in records:
            if not self.follows(record.aggregate_type) or not self.handler_for(record.event_type):
                continue
            record = store.resolve_payload(record)
            event = mapper.decode(
                record.event_type,
                record.schema,
                record.payload,
                stream=record.stream,
                version=record.version,
            )
            entries.append((self.entry_for(event, Envelope.of(record)), record.event_type))
        return entries

    def republish(
        self,
        store: EventStore,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        stream: tuple[str, str] | None = None,
        chunk: int = 100,
        upcasters: Iterable[Upcaster] = (),
    ) -> SendReport:
        """Send a range of the feed to the bus again; positions are neither read nor moved.

        ``stream`` (aggregate type and id) limits it to one stream, in version order; otherwise
        the feed is read from ``since`` (default: its start) to ``until`` (default: now).
        Subscribers see the same ``eventId`` as the first time.
        """
        if stream is not None:
            records: Iterable[StoredEvent] = (
                r
                for r in store.load_events(*stream)
                if (since is None or r.occurred_at >= since)
                and (until is None or r.occurred_at < until)
            )
        else:
            records = store.read_feed(since, until)
        report = SendReport()
        batch: list[StoredEvent] = []
        for record in itertools.chain(records, [None]):
            if record is not None:
                batch.append(record)
            if batch and (record is None or len(batch) >= chunk):
                sent = self.send(self.entries_for(batch, store, upcasters))
                report.published += sent.published
                report.dead_lettered += sent.dead_lettered
                report.requests += sent.requests
                report.retries += sent.retries
                batch = []
        log.info("publish.republished", publisher=self.projector_name(), **attrs.asdict(report))
        return report

    def dead_letter_list(self, limit: int = 100) -> list[Mapping[str, Any]]:
        """The messages of the dead-letter queue (up to ``limit``), left in the queue."""
        letters = self._receive_all(limit, hide_for=30)
        for letter in letters:
            self.dead_letters.release(letter.receipt)
        return [letter.body for letter in letters]

    def resend_dead_letters(
        self, store: EventStore, limit: int = 100, upcasters: Iterable[Upcaster] = ()
    ) -> SendReport:
        """Publish the dead-lettered events of this publisher again, then delete their messages.

        Each entry is built again from the stored event (so a subject forgotten since reads
        erased); one refused again is dead-lettered again, with its new attempts. A message of
        another publisher is left in the queue.
        """
        report = SendReport()
        for letter in self._receive_all(limit, hide_for=300):
            body = letter.body
            if body.get("kind") != DEAD_LETTER_KIND or body.get("publisher") != (
                self.projector_name()
            ):
                self.dead_letters.release(letter.receipt)
                continue
            version = int(body["version"])
            loaded = store.load_events(
                str(body["aggregateType"]), str(body["aggregateId"]), version - 1
            )
            entries = self.entries_for(
                [r for r in loaded if r.version == version], store, upcasters
            )
            if not entries:  # not in the store (or no longer published): left for a person
                log.warning("publish.dead_letter_unmatched", stream=body.get("stream"))
                self.dead_letters.release(letter.receipt)
                continue
            sent = self.send(entries)
            report.published += sent.published
            report.dead_lettered += sent.dead_lettered
            report.requests += sent.requests
            report.retries += sent.retries
            self.dead_letters.delete(letter.receipt)
        return report

    def _receive_all(self, limit: int, hide_for: int) -> list[DeadLetter]:
        letters: dict[str, DeadLetter] = {}
        while len(letters) < limit:
            received = self.dead_letters.receive(min(10, limit - len(letters)), hide_for)
            fresh = [letter for letter in received if letter.message_id not in letters]
            if not fresh:
                break
            letters.update((letter.message_id, letter) for letter in fresh)
        return list(letters.values())

    # -- sending ----------------------------------------------------------------------------

    def before_advance(self) -> None:
        """Send what this thread's handlers queued, before the engine moves a position."""
        queued = self._queue()
        if not queued:
            return
        pending = list(queued)
        queued.clear()  # on failure too: the positions stay, the events are delivered again
        self._send(pending)

    def send(self, entries: Iterable[tuple[BusEntry, str]]) -> SendReport:
        """Send ``(entry, event type)`` pairs now, outside any position (replay, re-send)."""
        return self._send([_Pending(entry, event_type) for entry, event_type in entries])

    def _send(self, pending: list[_Pending]) -> SendReport:
        """Send entries, each stream in order, retrying refused ones, dead-lettering the rest."""
        report = SendReport()
        streams: dict[str, deque[_Pending]] = {}
        for item in pending:
            streams.setdefault(item.entry.stream, deque()).append(item)
        failed_requests = 0
        while streams:
            now = self._clock()
            batch = self._next_request(streams, now)
            if not batch:
                wake = min(queue[0].not_before for queue in streams.values())
                self._sleep(max(0.0, wake - now))
                continue
            report.requests += 1
            started = dt.datetime.now(dt.UTC)
            for item in batch:
                item.first_attempt = item.first_attempt or started
            try:
                failures = self._put_events([item.entry for item in batch])
            except BusUnavailable as error:
                failed_requests += 1
                if failed_requests >= self.max_attempts:
                    raise
                log.warning("publish.request_failed", attempt=failed_requests, error=str(error))
                self._sleep(self.backoff.delay(failed_requests))
                continue
            failed_requests = 0
            for item, failure in zip(batch, failures, strict=True):
                queue = streams[item.entry.stream]
                if failure is None:
                    report.published += 1
                    queue.popleft()
                else:
                    item.attempts += 1
                    item.failure = failure
                    if item.attempts >= self.max_attempts:
                        self._dead_letter(item)
                        report.dead_lettered += 1
                        queue.popleft()
                    else:
                        report.retries += 1
                        item.not_before = now + self.backoff.delay(item.attempts)
                if not queue:
                    del streams[item.entry.stream]
        return report

    def _put_events(self, entries: list[BusEntry]) -> list[EntryFailure | None]:
        """One ``PutEvents`` request, in a ``publish`` span when tracing is on."""
        tracer = active_tracer()
        if tracer is None:
            return self.bus.put_events(entries)
        parent, links = publish_context(entries)
        attributes: dict[str, AttributeValue] = {
            "rpc.system": "aws-api",
            "rpc.service": "EventBridge",
            "rpc.method": "PutEvents",
            "framework.publisher": self.projector_name(),
            "framework.publish.entries": len(entries),
        }
        with tracer.start_as_current_span(
            "publish", context=parent, kind=SpanKind.PRODUCER, attributes=attributes, links=links
        ) as span:
            failures = self.bus.put_events(entries)
            span.set_attribute("framework.publish.failed", sum(f is not None for f in failures))
            return failures

    @staticmethod
    def _next_request(streams: Mapping[str, deque[_Pending]], now: float) -> list[_Pending]:
        """The head entry of each stream that may be sent now, up to the request's limits."""
        batch: list[_Pending] = []
        size = 0
        for queue in streams.values():
            head = queue[0]
            if head.not_before > now:
                continue
            full = len(batch) == MAX_ENTRIES_PER_REQUEST
            if full or (batch and size + head.entry.size > MAX_REQUEST_BYTES):
                break  # an entry alone always goes: EventBridge judges one that is too large
            batch.append(head)
            size += head.entry.size
        return batch

    def _dead_letter(self, item: _Pending) -> None:
        """Write the given-up entry's facts to the dead-letter queue; the body holds no payload."""
        failure = item.failure or EntryFailure("Unknown")
        entry = item.entry
        detail = json.loads(entry.detail)
        body = {
            "kind": DEAD_LETTER_KIND,
            "publisher": self.projector_name(),
            "bus": self.bus.name,
            "source": entry.source,
            "eventId": entry.event_id,
            "eventType": item.event_type,
            "stream": entry.stream,
            "aggregateType": detail["aggregateType"],
            "aggregateId": detail["aggregateId"],
            "version": entry.version,
            "entryBytes": entry.size,
            "errorCode": failure.code,
            "errorMessage": failure.message[:1000],
            "attempts": item.attempts,
            "firstAttemptAt": (item.first_attempt or dt.datetime.now(dt.UTC)).isoformat(),
            "deadLetteredAt": dt.datetime.now(dt.UTC).isoformat(),
        }
        self.dead_letters.send(body)
        log.error(
            "publish.dead_lettered",
            publisher=self.projector_name(),
            stream=entry.stream,
            version=entry.version,
            event_id=entry.event_id,
            correlation_id=detail.get("correlationId"),
            causation_id=detail.get("causationId"),
            error_code=failure.code,
            attempts=item.attempts,
        )


class InMemoryEventBus:
    """A bus in memory, for tests: ``published`` lists what it accepted, in order.

    ``refuse`` decides per entry: an ``EntryFailure`` refuses it (a partial failure), ``None``
    accepts it.
    """

    def __init__(
        self,
        name: str = "memory",
        refuse: Callable[[BusEntry], EntryFailure | None] | None = None,
    ) -> None:
        self.name = name
        self.refuse = refuse
        self.published: list[BusEntry] = []
        self.requests: list[list[BusEntry]] = []
        self._lock = threading.Lock()

    def put_events(self, entries: Sequence[BusEntry]) -> list[EntryFailure | None]:
        if len(entries) > MAX_ENTRIES_PER_REQUEST:
            raise ValueError(f"{len(entries)} entries in one PutEvents request")
        if sum(entry.size for entry in entries) > MAX_REQUEST_BYTES:
            raise ValueError("a PutEvents request over 256 KB")
        results: list[EntryFailure | None] = []
        with self._lock:
            self.requests.append(list(entries))
            for entry in entries:
                failure = None if self.refuse is None else self.refuse(entry)
                if failure is None:
                    self.published.append(entry)
                results.append(failure)
        return results

    def details(self) -> list[dict[str, Any]]:
        """The ``detail`` of every accepted entry, decoded."""
        return [json.loads(entry.detail) for entry in self.published]


class InMemoryDeadLetterQueue:
    """A dead-letter queue in memory, for tests."""

    def __init__(self, name: str = "memory-dlq") -> None:
        self.name = name
        self.messages: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._next = 0
        self._hidden: set[str] = set()

    def send(self, body: Mapping[str, Any]) -> None:
        with self._lock:
            self._next += 1
            self.messages[str(self._next)] = json.loads(json.dumps(body))

    def receive(self, limit: int, hide_for: int) -> list[DeadLetter]:
        with self._lock:
            held = [(key, body) for key, body in self.messages.items() if key not in self._hidden]
            held = held[: min(limit, 10)]
            self._hidden.update(key for key, _ in held)
        return [DeadLetter(receipt, receipt, body) for receipt, body in held]

    def release(self, receipt: str) -> None:
        with self._lock:
            self._hidden.discard(receipt)

    def delete(self, receipt: str) -> None:
        with self._lock:
            self.messages.pop(receipt, None)
            self._hidden.discard(receipt)
