"""The repository: where a command's aggregates come from.

Loading is one job with one order, whoever asks (a unit of work, or ``Application.get``): the
in-process cache when one is configured, else the latest snapshot (when the class's policy keeps
snapshots) and the events after it. A snapshot written for another shape of the class, or one
that fails to decode, is ignored and the stream replayed from its start: a mismatched state is
never applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import structlog

from framework.cache import AggregateCache
from framework.domain import Aggregate
from framework.errors import CorruptEvent
from framework.mapping.mapper import EventMapper
from framework.snapshots import NoSnapshots, SnapshotPolicy
from framework.store.base import EventStore
from framework.store.keys import stream_key
from framework.store.records import Snapshot

A = TypeVar("A", bound=Aggregate)

log = structlog.get_logger(__name__)


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

    def load(self, aggregate_class: type[A], aggregate_id: str) -> A | None:
        """The aggregate (the cached copy when there is one), or ``None`` for an empty stream.

        A cached copy may be stale: the unit of work checks every aggregate it loaded against
        its stored version when it commits, so a decision on stale state never commits.
        """
        if self.cache is not None:
            cached = self.cache.get(aggregate_class, aggregate_id)
            if cached is not None:
                return cached
        return self.load_stored(aggregate_class, aggregate_id)

    def exists(self, aggregate_class: type[Aggregate], aggregate_id: str) -> bool:
        """True when the aggregate is cached or its stream holds events."""
        if self.cache is not None and self.cache.get(aggregate_class, aggregate_id) is not None:
            return True
        return self.store.stream_exists(aggregate_class.aggregate_type(), aggregate_id)

    def load_stored(self, aggregate_class: type[A], aggregate_id: str) -> A | None:
        """The aggregate as stored (snapshot, then events after it), bypassing the cache."""
        aggregate_type = aggregate_class.aggregate_type()
        aggregate: A | None = None
        if self.keeps_snapshots(aggregate_class):
            snapshot = self.store.load_snapshot(aggregate_type, aggregate_id)
            if snapshot is not None:
                aggregate = _restore(aggregate_class, snapshot, self.mapper)
        start = aggregate.version if aggregate is not None else 0
        records = self.store.load_events(aggregate_type, aggregate_id, start)
        if aggregate is None:
            if not records:
                return None
            aggregate = aggregate_class(aggregate_id)
        stream = stream_key(aggregate_type, aggregate_id)
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
        return aggregate

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
