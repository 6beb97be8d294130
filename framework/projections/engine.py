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
   events to a transaction, their writes of one row *folded* into one write (``folding.py``):
   DynamoDB lets a transaction touch an item only once, so a write that cannot be folded into
   the batch's write of its row, or a batch at ``MAX_TRANSACTION_ITEMS``, ends the transaction;
   the transactions of the streams of one delivery are packed together while they fit (100
   items, each row once), so a replay chunk costs a few requests, not one per stream;
5. when DynamoDB refuses the read-model writes of a transaction (a validation error, an item too
   large, a condition the projector did not mean to fail), commits its events one by one to find
   the one whose writes are refused, and parks that event with the reason: a poison event stops
   its own stream, never the others;
6. when another runner moved the position first (a lost race), reads where it got to and goes on
   with what is left of the delivery, so nothing delivered is dropped.

A handler that raises ``DeliverAgain`` (a process manager whose command could not be sent for a
reason that may pass) is neither retried nor parked: the delivery stops, no position moves past
the event, and the runner delivers it again.

Before any position moves (an advance, a pack of them, a park) the engine calls the projector's
``before_advance``: a projector whose effects leave DynamoDB (the EventBridge publisher) completes
them there, so a position never passes an event whose effect is not done.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import attrs
import structlog

from framework.encryption import KeyRing
from framework.errors import CorruptEvent, DefinitionError, DeliverAgain
from framework.logs import log_context_from
from framework.mapping.mapper import EventMapper
from framework.mapping.upcasters import Upcaster
from framework.pauses import holding, pause
from framework.projections.folding import FoldedBatch, QueuedWrite, RowWrite
from framework.projections.projector import Envelope, Projector
from framework.store.base import EventStore
from framework.store.items import MAX_TRANSACTION_ITEMS
from framework.store.keys import stream_key
from framework.store.positions import (
    ParkedEvent,
    Position,
    PositionConflict,
    PositionStore,
    ProjectionWriteError,
    StreamAdvance,
    TransactItem,
)
from framework.store.records import StoredEvent, event_id
from framework.tracing import AttributeValue, active_tracer, continued_from

log = structlog.get_logger(__name__)

_engines = itertools.count()
"""Numbers the engines' context variables, for their names only (each engine has its own)."""

REMEMBERED_POSITIONS = 10_000
"""Streams whose positions a replay lane remembers between chunks (see ``remembering``): a
bound, so that memory stays flat however many streams a table holds."""


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
    """Exactly-once, in-order application of events to one projector.

    It reads events the way the application writes them: give it the application's mapper
    (``mapper=app.mapper``), or, where there is no application (a runner of its own, the CLI, the
    Lambda handler), the same ``upcasters``. A projector's event class at a schema version whose
    upcaster chain has a missing link fails here, when the engine is built.
    """

    def __init__(
        self,
        projector: Projector,
        store: EventStore,
        positions: PositionStore,
        *,
        max_attempts: int = 3,
        retry_delay: float = 0.05,
        keys: KeyRing | None = None,
        mapper: EventMapper | None = None,
        upcasters: Iterable[Upcaster] = (),
    ) -> None:
        self.projector = projector
        self.name = projector.projector_name()
        self.store = store
        self.positions = positions
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.mapper = _reading_mapper(projector, mapper, tuple(upcasters), keys)
        # Parallel replay applies several lanes with one engine: the projector's handlers and
        # its queue of writes are used by one lane at a time (the requests are not). A lane is
        # a thread, or a greenlet of the async runner: all of them on one thread, where a lock
        # found taken is waited for on the loop (``holding``), since a handler may do I/O.
        self._handler_lock = threading.Lock()
        # Per lane: the remembered positions and the advances deferred by the running ``apply``.
        # Context variables, not ``threading.local``: a thread starts with a context of its
        # own, and so does each greenlet of the async runner, whose lanes share one thread.
        serial = next(_engines)
        self._known_var: ContextVar[_KnownPositions | None] = ContextVar(
            f"framework_engine_{serial}_known", default=None
        )
        self._deferred_var: ContextVar[dict[str, _Deferred] | None] = ContextVar(
            f"framework_engine_{serial}_deferred", default=None
        )
        projector.use_table_prefix(store.tables.prefix)

    @contextmanager
    def remembering(self, limit: int = REMEMBERED_POSITIONS) -> Iterator[None]:
        """Within the block, ``apply`` in this lane remembers the positions it read and wrote.

        A lane is the thread, or the greenlet, running the block (a context variable holds the
        memory): lanes replayed side by side never see one another's.

        A replay lane applies chunk after chunk of the same streams, and reading every chunk's
        positions again cost a request per chunk. Within the block a stream's position is read
        once; after that the engine knows it, because it moved it itself with a conditional
        write. Should another runner move it meanwhile, the next advance fails its condition and
        the engine re-reads the position and goes on from there, as for any lost race: the
        memory saves reads, the conditions keep the guarantees. Parked positions and positions
        another runner moved are forgotten, so they are read again. At most ``limit`` streams
        are remembered (the oldest are forgotten first).
        """
        token = self._known_var.set(_KnownPositions(limit))
        try:
            yield
        finally:
            self._known_var.reset(token)

    def _known(self) -> _KnownPositions | None:
        return self._known_var.get()

    def _remember(self, stream: str, version: int) -> None:
        known = self._known()
        if known is not None:
            known.put(Position(self.name, stream, version))

    def _forget(self, stream: str) -> None:
        known = self._known()
        if known is not None:
            known.forget(stream)

    def apply(self, records: Iterable[StoredEvent]) -> ApplyReport:
        """Apply delivered records (any order, duplicates allowed) stream by stream.

        The positions of every stream delivered are read in one batch first: a replay chunk
        holds many streams, and a request per stream would cost more than the chunk's query.
        """
        report = ApplyReport()
        followed = [
            delivered
            for delivered in group_by_stream(records).values()
            if self.projector.follows(delivered[0].aggregate_type)
        ]
        positions = self._positions([d[0].stream for d in followed])
        deferred: dict[str, _Deferred] = {}
        token = self._deferred_var.set(deferred)
        try:
            for delivered in followed:
                report.merge(self.apply_stream(delivered, positions[delivered[0].stream]))
        finally:
            self._deferred_var.reset(token)
        lost = self._settle(deferred, report)
        for delivered in followed:
            if delivered[0].stream in lost:  # go on from where the other runner got to
                report.merge(self.apply_stream(delivered))
        return report

    def _positions(self, streams: list[str]) -> dict[str, Position]:
        """The positions of ``streams``: those remembered, and the others read in one batch."""
        known = self._known()
        if known is None:
            return self.positions.get_many(self.name, streams)
        found = {stream: position for stream in streams if (position := known.get(stream))}
        missing = [stream for stream in streams if stream not in found]
        if missing:
            read = self.positions.get_many(self.name, missing)
            for position in read.values():
                if position.parked is None:
                    known.put(position)
            found.update(read)
        return found

    def _deferring(self) -> dict[str, _Deferred] | None:
        return self._deferred_var.get()

    def _settle(self, deferred: dict[str, _Deferred], report: ApplyReport) -> set[str]:
        """Commit the deferred advances of a delivery, many streams to a request.

        A replay chunk holds many streams: one request per stream cost a rebuild more than
        everything else. Advances without writes go up to 100 to a ``TransactWriteItems``;
        those with writes are packed with other streams' as long as the transaction holds them
        (100 items, each row once). A pack DynamoDB does not take whole is committed stream by
        stream, which finds the lost race or the refused write. Returns the streams whose
        advance another runner beat.
        """
        if deferred:
            self.projector.before_advance()
        plain = [(stream, move) for stream, move in deferred.items() if not move.writes]
        lost: set[str] = set()
        if plain:
            moves = [(stream, move.expected, move.version) for stream, move in plain]
            lost.update(self.positions.advance_many(self.name, moves))
            for stream, move in plain:
                if stream in lost:
                    report.conflicts += 1
                    self._forget(stream)
                    log.info("projection.position_conflict", projector=self.name, stream=stream)
                else:
                    report.applied += move.events
                    self._remember(stream, move.version)
        for group in _pack([(stream, move) for stream, move in deferred.items() if move.writes]):
            advances = [StreamAdvance(s, m.expected, m.version, m.writes) for s, m in group]
            if len(group) > 1 and self.positions.advance_together(self.name, advances):
                report.applied += sum(move.events for _, move in group)
                for stream, move in group:
                    self._remember(stream, move.version)
                continue
            for stream, move in group:
                if self._commit(stream, move, report)[1]:
                    lost.add(stream)
        return lost

    def _settle_stream(self, stream: str, report: ApplyReport) -> bool:
        """Commit the stream's deferred advance now; ``False`` when it did not all commit."""
        deferred = self._deferring()
        pending = None if deferred is None else deferred.pop(stream, None)
        if pending is None:
            return True
        committed, lost = self._commit(stream, pending, report)
        return not lost and committed == pending.version

    def apply_stream(
        self, delivered: list[StoredEvent], position: Position | None = None
    ) -> ApplyReport:
        """Apply delivered records of one stream; see the module docstring for the rules.

        ``position`` is the projector's position in the stream when the caller read it already.
        """
        report = ApplyReport()
        if not delivered or not self.projector.follows(delivered[0].aggregate_type):
            return report
        stream = delivered[0].stream
        if position is None:
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
        records = [fresh[v] for v in sorted(fresh)]
        version = position.version
        while records:
            stopped_at = self._apply_in_order(stream, version, records, report)
            if stopped_at is None:
                break
            # A lost race: another runner applied up to somewhere in (or past) this delivery.
            # Carry on from where it got to, so that nothing delivered here waits for the
            # stream's next event.
            position = self.positions.get(self.name, stream)
            if position.parked is not None:
                report.held += sum(1 for r in records if r.version > position.version)
                break
            version = position.version
            records = [r for r in records if r.version > version]
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
    ) -> int | None:
        """Apply ``records`` (consecutive, after ``version``) in transactions of several events.

        Returns ``None`` when done (or parked), and the version it had committed up to when
        another runner moved the position first.
        """
        committed = version
        batch: list[tuple[StoredEvent, list[QueuedWrite]]] = []
        folded = FoldedBatch()
        for record in records:
            try:
                writes = self._handle_with_retries(record)
            except _HandlerFailed as failure:
                committed, lost = self._flush(stream, committed, batch, report, folded)
                if lost:
                    return committed
                if committed == record.version - 1:  # a refused write may have parked already
                    self._park(
                        stream,
                        committed,
                        record,
                        _describe(failure.error),
                        failure.attempts,
                        report,
                    )
                return None
            rows = [(self._identity(write), write) for write in writes]
            # A transaction holds at most 100 items (the position is one) and touches each
            # item once: the event's writes fold into the batch's, or the batch is sent first.
            if not folded.add(rows, limit=MAX_TRANSACTION_ITEMS - 1):
                if batch:
                    committed, lost = self._flush(stream, committed, batch, report, folded)
                    if lost:
                        return committed
                    if committed != batch[-1][0].version:
                        return None  # a refused write parked its event: the stream waits there
                    batch, folded = [], FoldedBatch()
                folded.add(rows)  # alone in its transaction; DynamoDB judges an oversized one
            batch.append((record, writes))
        committed, lost = self._flush(stream, committed, batch, report, folded)
        return committed if lost else None

    def _identity(self, write: QueuedWrite) -> Hashable:
        if isinstance(write, RowWrite):
            return write.identity
        return self.positions.item_identity(write)

    def _flush(
        self,
        stream: str,
        committed: int,
        batch: list[tuple[StoredEvent, list[QueuedWrite]]],
        report: ApplyReport,
        folded: FoldedBatch,
    ) -> tuple[int, bool]:
        """Commit ``batch`` (its writes ``folded``) with the position, or defer it to ``_settle``.

        Returns (version committed to, race lost); a deferred batch counts as committed (what
        goes wrong when it is sent is dealt with there, stream by stream).
        """
        if not batch:
            return committed, False
        writes = folded.transact_items()
        move = _Deferred(
            committed, batch[-1][0].version, 0, committed, batch, writes, folded.rows()
        )
        deferred = self._deferring()
        if deferred is None:
            return self._commit(stream, move, report)
        pending = deferred.pop(stream, None)
        if pending is not None and pending.writes:
            # The stream's second transaction in one delivery: the first one goes now.
            committed, lost = self._commit(stream, pending, report)
            if lost or committed != pending.version:
                return committed, lost
        elif pending is not None:
            # Events before this batch wrote nothing: their advance goes with this one.
            move.expected, move.carried = pending.expected, pending.events
        if not writes:
            move = _Deferred(move.expected, move.version, move.events, move.version)
        deferred[stream] = move
        return move.version, False

    def _commit(self, stream: str, move: _Deferred, report: ApplyReport) -> tuple[int, bool]:
        """Send one stream's advance with its writes; returns (version committed to, race lost).

        When DynamoDB refuses the writes, the events are committed one by one, unfolded, and
        the first whose own writes are refused is parked; the version returned is then the last
        one committed before it.
        """
        self.projector.before_advance()
        try:
            self.positions.advance(self.name, stream, move.expected, move.version, move.writes)
        except PositionConflict:
            report.conflicts += 1
            self._forget(stream)
            log.info("projection.position_conflict", projector=self.name, stream=stream)
            return move.expected, True
        except ProjectionWriteError as refused:
            return self._find_refused(stream, move, refused, report)
        report.applied += move.events
        self._remember(stream, move.version)
        return move.version, False

    def _find_refused(
        self, stream: str, move: _Deferred, refused: ProjectionWriteError, report: ApplyReport
    ) -> tuple[int, bool]:
        """Commit a refused advance's events one by one and park the first refused on its own."""
        committed = move.expected
        if move.carried:  # the events that wrote nothing move the position first
            try:
                self.positions.advance(self.name, stream, move.expected, move.before)
            except PositionConflict:
                report.conflicts += 1
                self._forget(stream)
                return committed, True
            report.applied += move.carried
            self._remember(stream, move.before)
            committed = move.before
        if len(move.batch) == 1:
            record = move.batch[0][0]
            self._park(stream, committed, record, f"read-model write refused: {refused}", 1, report)
            return committed, False
        for record, writes in move.batch:
            alone = FoldedBatch()
            alone.add([(self._identity(write), write) for write in writes])
            single = _Deferred(
                committed, record.version, 0, committed, [(record, writes)], alone.transact_items()
            )
            committed, lost = self._commit(stream, single, report)
            if lost or committed != record.version:
                return committed, lost
        return committed, False

    def _handle_with_retries(self, record: StoredEvent) -> list[QueuedWrite]:
        function = self.projector.handler_for(record.event_type)
        if function is None:
            return []  # not interesting to this projector: the position still moves past it
        envelope = Envelope.of(record)
        # The projector's log lines (and the engine's) carry the event's ids, worked out only
        # when a line is logged; its span continues the trace of the request that committed it.
        with log_context_from(_log_ids, record):
            if active_tracer() is None:
                return self._handle_traced(function, record, envelope)
            attributes: dict[str, AttributeValue] = {
                "framework.projector": self.name,
                "framework.stream": record.stream,
                "framework.version": record.version,
                "framework.event.type": record.event_type,
            }
            with continued_from(envelope, "project", attributes):
                return self._handle_traced(function, record, envelope)

    def _handle_traced(
        self, function: Callable[..., Any], record: StoredEvent, envelope: Envelope
    ) -> list[QueuedWrite]:
        record = self.store.resolve_payload(record)  # an offloaded payload, delivered by a stream
        error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                # Decoded outside the lock: the mapper serves many threads, and decoding
                # personal data may wait for a key (a read of the keys table, KMS).
                event = self.mapper.decode(
                    record.event_type,
                    record.schema,
                    record.payload,
                    stream=record.stream,
                    version=record.version,
                )
                with holding(self._handler_lock):
                    try:
                        function(self.projector, event, envelope)
                    finally:
                        queued = self.projector.take_queued()
                return queued
            except DeliverAgain:
                raise  # not the event's fault: it is delivered again, never parked
            except Exception as failure:  # a handler's failure of any kind: retry, then park
                error = failure  # what the failed attempt queued was dropped
                log.warning(
                    "projection.handler_failed",
                    projector=self.name,
                    stream=record.stream,
                    version=record.version,
                    attempt=attempt,
                    error_type=type(failure).__name__,
                )
                if attempt < self.max_attempts:
                    pause(self.retry_delay * attempt)  # on the loop, in the async runner
        raise _HandlerFailed(error, self.max_attempts)

    def _park(
        self,
        stream: str,
        version: int,
        record: StoredEvent,
        reason: str,
        attempts: int,
        report: ApplyReport,
    ) -> None:
        if not self._settle_stream(stream, report):
            return
        self._forget(stream)  # parked, or moved by another runner: read it again next time
        parked = ParkedEvent(
            version=record.version,
            error=reason,
            attempts=attempts,
            parked_at=dt.datetime.now(dt.UTC),
        )
        self.projector.before_advance()
        try:
            self.positions.park(self.name, stream, version, parked)
        except PositionConflict:
            report.conflicts += 1
            return
        report.parked.append(f"{self.name}:{stream}@{record.version}")
        log.error(
            "projection.event_parked",
            projector=self.name,
            stream=stream,
            version=record.version,
            event_type=record.event_type,
            error=parked.error,
        )


def _describe(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {error}"


@attrs.define
class _Deferred:
    """A stream's position advance, waiting to be committed with other streams' in one request.

    The position moves from ``expected`` to ``version`` over ``carried`` events that wrote
    nothing, up to ``before``, then the events of ``batch``, whose writes ``writes`` holds folded
    (on the rows ``rows``). ``before`` and ``batch`` serve to commit them one by one when
    DynamoDB refuses the writes.
    """

    expected: int
    version: int
    carried: int
    before: int
    batch: list[tuple[StoredEvent, list[QueuedWrite]]] = attrs.field(factory=list)
    writes: list[TransactItem] = attrs.field(factory=list)
    rows: frozenset[Hashable] = frozenset()

    @property
    def events(self) -> int:
        """How many events the advance applies."""
        return self.carried + len(self.batch)


class _KnownPositions:
    """Positions a replay lane read or wrote itself, at most ``limit`` of them (oldest out)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._positions: dict[str, Position] = {}

    def get(self, stream: str) -> Position | None:
        return self._positions.get(stream)

    def put(self, position: Position) -> None:
        self._positions.pop(position.stream, None)
        self._positions[position.stream] = position
        if len(self._positions) > self.limit:
            del self._positions[next(iter(self._positions))]

    def forget(self, stream: str) -> None:
        self._positions.pop(stream, None)


def _pack(moves: list[tuple[str, _Deferred]]) -> list[list[tuple[str, _Deferred]]]:
    """Group advances with writes into transactions: at most 100 items, each row once."""
    groups: list[list[tuple[str, _Deferred]]] = []
    current: list[tuple[str, _Deferred]] = []
    items, rows = 0, set[Hashable]()
    for stream, move in moves:
        size = len(move.writes) + 1
        if current and (items + size > MAX_TRANSACTION_ITEMS or not rows.isdisjoint(move.rows)):
            groups.append(current)
            current, items, rows = [], 0, set()
        current.append((stream, move))
        items += size
        rows.update(move.rows)
    if current:
        groups.append(current)
    return groups


class _HandlerFailed(Exception):
    def __init__(self, error: BaseException | None, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts


def _reading_mapper(
    projector: Projector,
    mapper: EventMapper | None,
    upcasters: tuple[Upcaster, ...],
    keys: KeyRing | None,
) -> EventMapper:
    """The mapper an engine reads ``projector``'s events with: the one given, or one of its own.

    Keys: those given, else the mapper's (the application's), else the projector's ``key_ring``.
    """
    if mapper is not None and upcasters:
        raise DefinitionError(
            "give a projection engine either the application's mapper or upcasters, not both: "
            "the mapper already owns the application's upcasters"
        )
    if mapper is None:
        mapper = EventMapper(upcasters=upcasters)
    return mapper.extended(
        projector.event_classes(), keys=keys or mapper.keys or projector.key_ring
    )


def _log_ids(record: StoredEvent) -> dict[str, str | int]:
    """The ids a log line about ``record`` carries."""
    stream = record.stream
    return {
        "event_id": event_id(record.change_set_id, stream, record.version),
        "stream": stream,
        "version": record.version,
        "correlation_id": record.correlation_id,
        "causation_id": record.causation_id,
    }


def group_by_stream(records: Iterable[StoredEvent]) -> dict[str, list[StoredEvent]]:
    """Records grouped by stream, streams in the order they were first seen."""
    by_stream: dict[str, list[StoredEvent]] = {}
    for record in records:
        by_stream.setdefault(record.stream, []).append(record)
    return by_stream
