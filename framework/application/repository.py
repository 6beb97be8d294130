"""The repository: where a command's aggregates come from.

Loading is one job with one order, whoever asks (a unit of work, or ``Application.get``): the
in-process cache when one is configured, else the latest snapshot (when the class's policy keeps
snapshots) and the events after it. A snapshot written for another shape of the class, or one
that fails to decode, is ignored and the stream replayed from its start: a mismatched state is
never applied.

A retry after a lost race reads only what it misses: each load returns a ``ReloadPoint`` (what the
state was built from), and the next attempt rebuilds that state without reading it again and reads
the events committed after it. Under contention on one aggregate this keeps each retry to one
short ``Query``, which narrows the window in which another commit can beat it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import attrs
import structlog

from framework.application.cache import AggregateCache
from framework.application.snapshots import NoSnapshots, SnapshotPolicy
from framework.domain import Aggregate
from framework.errors import CorruptEvent
from framework.mapping.mapper import EventMapper
from framework.store.base import EventStore
from framework.store.keys import stream_key
from framework.store.records import Snapshot, StreamEvent
from framework.tracing import active_tracer, counting_requests

A = TypeVar("A", bound=Aggregate)

log = structlog.get_logger(__name__)


@attrs.frozen
class ReloadPoint:
    """What one load of an aggregate was built from, so that a retry can rebuild it unread.

    ``version`` is the version the aggregate was loaded at. ``cached`` says it came from the
    aggregate cache (whose entries are committed states, never a refused attempt's); otherwise
    ``snapshot`` and ``records`` are the stored snapshot (or ``None``) and the stored events
    after it that were read: immutable records, decoded again on a rebuild, so that nothing the
    failed attempt's handlers did to the objects they were given can leak into the next one.
    """

    version: int
    cached: bool = False
    snapshot: Snapshot | None = None
    records: tuple[StreamEvent, ...] = ()


class Repository:
    """Loads aggregates from the cache, or from a snapshot and the events after it."""

    def __init__(
        self,
        store: EventStore,
        mapper: EventMapper,
        *,
        snapshot_policies: Mapping[type[Aggregate], SnapshotPolicy] | None = None,
        cache: AggregateCache | None = None,
    ) -> None:
        self.store = store
        self.mapper = mapper
        self.cache = cache
        self._policies = snapshot_policies or {}

    def load(
        self,
        aggregate_class: type[A],
        aggregate_id: str,
        *,
        since: ReloadPoint | None = None,
    ) -> tuple[A | None, ReloadPoint]:
        """The aggregate (``None`` for an empty stream) and what it was built from.

        Without ``since``: the cached copy when there is one, else the snapshot and the events
        after it. A cached copy may be stale: the unit of work checks every aggregate it loaded
        against its stored version when it commits, so a decision on stale state never commits.

        ``since`` is the ``ReloadPoint`` of an earlier attempt of the same command that lost a
        race: the state it was loaded at is rebuilt without reading it again (from the cache's
        committed copy, or from the snapshot and events that attempt read, decoded afresh) and
        only the events after it are read. The failed attempt's own aggregate object is never
        reused: its handler applied the refused events to it.
        """
        tracer = active_tracer()
        if tracer is None:
            return self._load(aggregate_class, aggregate_id, since)
        attributes = {
            "framework.aggregate.type": aggregate_class.aggregate_type(),
            "framework.aggregate.id": aggregate_id,
        }
        with (
            tracer.start_as_current_span("load", attributes=attributes) as span,
            counting_requests(span),
        ):
            aggregate, point = self._load(aggregate_class, aggregate_id, since)
            span.set_attributes(
                {
                    "framework.load.events": len(point.records),
                    "framework.load.from_snapshot": point.snapshot is not None,
                    "framework.load.cached": point.cached,
                    "framework.load.version": point.version,
                }
            )
            return aggregate, point

    def _load(
        self, aggregate_class: type[A], aggregate_id: str, since: ReloadPoint | None
    ) -> tuple[A | None, ReloadPoint]:
        if since is not None:
            return self._reload(aggregate_class, aggregate_id, since)
        if self.cache is not None:
            cached = self.cache.get(aggregate_class, aggregate_id)
            if cached is not None:
                return cached, ReloadPoint(cached.version, cached=True)
        return self._load_stored(aggregate_class, aggregate_id)

    def exists(self, aggregate_class: type[Aggregate], aggregate_id: str) -> bool:
        """True when the aggregate is cached or its stream holds events."""
        if self.cache is not None and self.cache.get(aggregate_class, aggregate_id) is not None:
            return True
        return self.store.stream_exists(aggregate_class.aggregate_type(), aggregate_id)

    def load_stored(self, aggregate_class: type[A], aggregate_id: str) -> A | None:
        """The aggregate as stored (snapshot, then events after it), bypassing the cache."""
        return self._load_stored(aggregate_class, aggregate_id)[0]

    def _load_stored(
        self, aggregate_class: type[A], aggregate_id: str
    ) -> tuple[A | None, ReloadPoint]:
        aggregate_type = aggregate_class.aggregate_type()
        aggregate: A | None = None
        snapshot: Snapshot | None = None
        if self.keeps_snapshots(aggregate_class):
            snapshot = self.store.load_snapshot(aggregate_type, aggregate_id)
            if snapshot is not None:
                aggregate = _restore(aggregate_class, snapshot, self.mapper)
                if aggregate is None:
                    snapshot = None  # ignored: the stream is replayed from its start
        start = aggregate.version if aggregate is not None else 0
        records = self.store.load_history(aggregate_type, aggregate_id, start)
        if aggregate is None:
            aggregate = aggregate_class(aggregate_id) if records else None
        if aggregate is not None:
            self._apply(aggregate, records)
        version = 0 if aggregate is None else aggregate.version
        return aggregate, ReloadPoint(version, snapshot=snapshot, records=tuple(records))

    def _reload(
        self, aggregate_class: type[A], aggregate_id: str, since: ReloadPoint
    ) -> tuple[A | None, ReloadPoint]:
        """The state ``since`` held, rebuilt, plus the events committed after it."""
        aggregate: A | None = None
        if since.cached:
            if self.cache is not None:
                aggregate = self.cache.get(aggregate_class, aggregate_id)
            if aggregate is None:  # evicted meanwhile: nothing to rebuild from
                return self._load_stored(aggregate_class, aggregate_id)
        elif since.snapshot is not None:
            aggregate = _restore(aggregate_class, since.snapshot, self.mapper)
            if aggregate is None:
                return self._load_stored(aggregate_class, aggregate_id)
        if aggregate is None and since.records:
            aggregate = aggregate_class(aggregate_id)
        if aggregate is not None and not since.cached:
            self._apply(aggregate, since.records)
        start = 0 if aggregate is None else aggregate.version
        records = self.store.load_history(aggregate_class.aggregate_type(), aggregate_id, start)
        if aggregate is None:
            aggregate = aggregate_class(aggregate_id) if records else None
        if aggregate is not None:
            self._apply(aggregate, records)
        if aggregate is None:
            return None, ReloadPoint(0)
        if since.cached:
            # The cache keeps the pristine committed state for the next attempt; the returned
            # object is the command's own, which its handler may change.
            assert self.cache is not None
            self.cache.put_if_newer(aggregate)
            return aggregate, ReloadPoint(aggregate.version, cached=True)
        return aggregate, ReloadPoint(
            aggregate.version, snapshot=since.snapshot, records=since.records + tuple(records)
        )

    def _apply(self, aggregate: Aggregate, records: Iterable[StreamEvent]) -> None:
        """Decode ``records`` and apply them in order, refusing a gap in the stream."""
        stream = stream_key(aggregate.aggregate_type(), aggregate.id)
        decode = self.mapper.decode
        for record in records:
            if record.version != aggregate.version + 1:
                raise CorruptEvent(
                    stream,
                    record.version,
                    f"expected version {aggregate.version + 1} (gap in stream)",
                )
            aggregate.apply_history(
                decode(
                    record.event_type,
                    record.schema,
                    record.payload,
                    stream=stream,
                    version=record.version,
                )
            )

    def keeps_snapshots(self, aggregate_class: type[Aggregate]) -> bool:
        """True when ``aggregate_class`` has a snapshot policy other than ``NoSnapshots``."""
        policy = self._policies.get(aggregate_class)
        return policy is not None and not isinstance(policy, NoSnapshots)


def _restore(aggregate_class: type[A], snapshot: Snapshot, mapper: EventMapper) -> A | None:
    expected = mapper.state_schema(aggregate_class)
    if snapshot.schema != expected:
        log.info(
            "snapshot.ignored_schema_changed",
            aggregate_type=snapshot.aggregate_type,
            aggregate_id=snapshot.aggregate_id,
            stored_schema=snapshot.schema,
            current_schema=expected,
        )
        return None
    try:
        state = mapper.decode_state(aggregate_class, snapshot.state)
    except Exception as error:  # any failure (JSON, cattrs' exception groups) means: replay
        log.warning(
            "snapshot.ignored_undecodable",
            aggregate_type=snapshot.aggregate_type,
            aggregate_id=snapshot.aggregate_id,
            error=repr(error),
        )
        return None
    return aggregate_class.restore(
        snapshot.aggregate_id, snapshot.version, state.values, state.subjects
    )
