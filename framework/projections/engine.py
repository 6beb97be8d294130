"""Applies delivered events to one projector exactly once and in order, per stream.

Every runner (catch-up, Streams poller, Lambda) hands the engine whatever it received: duplicates,
events out of order, events of many streams interleaved, gaps. Per stream the engine

1. reads the projector's position and drops what is at or below it (redelivery is harmless);
2. when what remains does not start right after the position, or has holes, reads the missing
   versions from the event store (consistent reads): a gap is filled, never skipped;
3. applies the events strictly in version order, retrying a failing handler a bounded number of
   times; an event that still fails is *parked*: the stream waits at it (other streams go on)
   until a person retries or skips it;
4. commits the read-model writes the handlers queued together with the position advance, several
   events to a transaction while they touch distinct items and stay under
   ``MAX_TRANSACTION_ITEMS`` (DynamoDB lets a transaction touch an item only once).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Hashable, Iterable
from typing import Any

import attrs
import structlog

from framework.encryption import KeyRing
from framework.errors import CorruptEvent
from framework.projections.projector import Envelope, Projector
from framework.serialization import EventRegistry
from framework.store.base import EventStore
from framework.store.items import MAX_TRANSACTION_ITEMS
from framework.store.keys import stream_key
from framework.store.positions import (
    ParkedEvent,
    PositionConflict,
    PositionStore,
    TransactItem,
)
from framework.store.records import StoredEvent

log = structlog.get_logger(__name__)


@attrs.define
class ApplyReport:
    """What one ``ProjectionEngine.apply`` call did."""

    applied: int = 0
    skipped: int = 0
    gaps_filled: int = 0
    parked: list[str] = attrs.field(factory=list)
    held: int = 0
    conflicts: int = 0

    def merge(self, other: ApplyReport) -> None:
        """Add another report's counts to this one."""
        self.applied += other.applied
        self.skipped += other.skipped
        self.gaps_filled += other.gaps_filled
        self.parked.extend(other.parked)
        self.held += other.held
        self.conflicts += other.conflicts


class ProjectionEngine:
    """Exactly-once, in-order application of events to one projector."""

    def __init__(
        self,
        projector: Projector,
        store: EventStore,
        positions: PositionStore,
        *,
        max_attempts: int = 3,
        retry_delay: float = 0.05,
        keys: KeyRing | None = None,
    ) -> None:
        self.projector = projector
        self.name = projector.projector_name()
        self.store = store
        self.positions = positions
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.registry = EventRegistry(projector.event_classes(), keys=keys or projector.key_ring)

    def apply(self, records: Iterable[StoredEvent]) -> ApplyReport:
        """Apply delivered records (any order, duplicates allowed) stream by stream."""
        report = ApplyReport()
        for delivered in group_by_stream(records).values():
            report.merge(self.apply_stream(delivered))
        return report

    def apply_stream(self, delivered: list[StoredEvent]) -> ApplyReport:
        """Apply delivered records of one stream; see the module docstring for the rules."""
        report = ApplyReport()
        if not delivered or not self.projector.follows(delivered[0].aggregate_type):
            return report
        stream = delivered[0].stream
        position = self.positions.get(self.name, stream)
        if position.parked is not None:
            report.held = len(delivered)
            return report
        fresh = {r.version: r for r in delivered if r.version > position.version}
        report.skipped = len(delivered) - len(fresh)
        if not fresh:
            return report
        last = max(fresh)
        if sorted(fresh) != list(range(position.version + 1, last + 1)):
            fresh = self._fill_gap(delivered[0], position.version, last)
            report.gaps_filled = 1
        self._apply_in_order(stream, position.version, [fresh[v] for v in sorted(fresh)], report)
        return report

    def _fill_gap(self, sample: StoredEvent, after: int, last: int) -> dict[int, StoredEvent]:
        loaded = self.store.load_events(sample.aggregate_type, sample.aggregate_id, after)
        found = {r.version: r for r in loaded if r.version <= last}
        if sorted(found) != list(range(after + 1, last + 1)):
            raise CorruptEvent(sample.stream, after + 1, "the store is missing delivered versions")
        log.info("projection.gap_filled", projector=self.name, stream=sample.stream, after=after)
        return found

    def catch_up_stream(self, aggregate_type: str, aggregate_id: str) -> ApplyReport:
        """Apply whatever the store holds beyond the projector's position in one stream.

        Used after a parked event is released: the runners already moved past the events the
        stream held back, so they are read from the store.
        """
        stream = stream_key(aggregate_type, aggregate_id)
        position = self.positions.get(self.name, stream)
        records = self.store.load_events(aggregate_type, aggregate_id, position.version)
        return self.apply_stream(records)

    def _apply_in_order(
        self, stream: str, version: int, records: list[StoredEvent], report: ApplyReport
    ) -> None:
        committed = version
        batch: list[TransactItem] = []
        touched: set[Hashable] = set()
        batch_last = version
        for record in records:
            try:
                writes = self._handle_with_retries(record)
            except _HandlerFailed as failure:
                if self._flush(stream, committed, batch_last, batch, report):
                    self._park(stream, batch_last, record, failure, report)
                return
            identities = {self.positions.item_identity(write) for write in writes}
            too_many = len(batch) + len(writes) >= MAX_TRANSACTION_ITEMS
            if batch and (too_many or not identities.isdisjoint(touched)):
                # A transaction holds at most 100 items and touches each item once.
                if not self._flush(stream, committed, batch_last, batch, report):
                    return
                committed, batch, touched = batch_last, [], set()
            batch.extend(writes)
            touched |= identities
            batch_last = record.version
            report.applied += 1
        self._flush(stream, committed, batch_last, batch, report)

    def _flush(
        self,
        stream: str,
        committed: int,
        new_version: int,
        writes: list[TransactItem],
        report: ApplyReport,
    ) -> bool:
        if new_version == committed:
            return True
        try:
            self.positions.advance(self.name, stream, committed, new_version, writes)
        except PositionConflict:
            # Another runner got there first; it applied these events. Nothing to undo here
            # for DynamoDB read models: our writes were in the refused transaction.
            report.conflicts += 1
            report.applied -= new_version - committed
            log.info("projection.position_conflict", projector=self.name, stream=stream)
            return False
        return True

    def _handle_with_retries(self, record: StoredEvent) -> list[TransactItem]:
        function = self.projector.handler_for(record.event_type)
        if function is None:
            return []  # not interesting to this projector: the position still moves past it
        envelope = _envelope(record)
        record = self.store.resolve_payload(record)  # an offloaded payload, delivered by a stream
        error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                event = self.registry.decode(
                    record.event_type,
                    record.schema,
                    record.payload,
                    stream=record.stream,
                    version=record.version,
                )
                function(self.projector, event, envelope)
                return self.projector.take_queued()
            except Exception as failure:  # a handler's failure of any kind: retry, then park
                self.projector.take_queued()  # drop what the failed attempt queued
                error = failure
                log.warning(
                    "projection.handler_failed",
                    projector=self.name,
                    stream=record.stream,
                    version=record.version,
                    attempt=attempt,
                    error_type=type(failure).__name__,
                )
                if attempt < self.max_attempts:
                    time.sleep(self.retry_delay * attempt)
        raise _HandlerFailed(error, self.max_attempts)

    def _park(
        self,
        stream: str,
        version: int,
        record: StoredEvent,
        failure: _HandlerFailed,
        report: ApplyReport,
    ) -> None:
        parked = ParkedEvent(
            version=record.version,
            error=f"{type(failure.error).__name__}: {failure.error}",
            attempts=failure.attempts,
            parked_at=dt.datetime.now(dt.UTC),
        )
        try:
            self.positions.park(self.name, stream, version, parked)
        except PositionConflict:
            report.conflicts += 1
            return
        report.parked.append(f"{stream}@{record.version}")
        log.error(
            "projection.event_parked",
            projector=self.name,
            stream=stream,
            version=record.version,
            error=parked.error,
        )


class _HandlerFailed(Exception):
    def __init__(self, error: BaseException | None, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts


def group_by_stream(records: Iterable[StoredEvent]) -> dict[str, list[StoredEvent]]:
    """Records grouped by stream, streams in the order they were first seen."""
    by_stream: dict[str, list[StoredEvent]] = {}
    for record in records:
        by_stream.setdefault(record.stream, []).append(record)
    return by_stream


def _envelope(record: StoredEvent) -> Envelope:
    return Envelope(
        aggregate_type=record.aggregate_type,
        aggregate_id=record.aggregate_id,
        version=record.version,
        event_type=record.event_type,
        occurred_at=record.occurred_at,
        change_set_id=record.change_set_id,
        command_id=record.command_id,
        correlation_id=record.correlation_id,
        causation_id=record.causation_id,
    )


def engines_for(
    projectors: Iterable[Projector], store: EventStore, positions: PositionStore, **options: Any
) -> list[ProjectionEngine]:
    """One engine per projector, sharing the store and the position store."""
    return [ProjectionEngine(projector, store, positions, **options) for projector in projectors]
