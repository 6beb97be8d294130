"""Projector positions: per (projector, stream) the last applied version, and parked events.

A projector's position in a stream advances only with a condition on the version it had, so two
runners that deliver the same events cannot both apply them; the read-model writes a projector
queued travel in the same transaction as the advance, so a crash can never separate them.

Positions live in the ``{prefix}-positions`` table (``PositionStore`` for DynamoDB) or in memory
(``InMemoryPositionStore``). Both also keep the runners' checkpoints: how far the catch-up reader
got in the feed, and each DynamoDB Streams shard's last sequence number.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from framework.errors import ConflictError, EventStoreError
from framework.store.keys import checkpoint_projector

TransactItem = Mapping[str, Any]
"""One low-level ``TransactWriteItems`` entry (``{"Put": {...}}``, ``{"Update": {...}}``...)."""


def row_identity(table: str, key: Mapping[str, Any]) -> Hashable:
    """(table, key values): which item a write touches. One definition for the structured
    read-model writes a projector queues and the raw ones a position store reads the key of,
    as both must agree: a transaction may touch an item only once."""
    return (table, tuple(sorted((name, repr(value)) for name, value in key.items())))


class PositionConflict(ConflictError):
    """Another runner moved the projector's position in this stream first."""

    def __init__(self, projector: str, stream: str, expected: int) -> None:
        super().__init__(
            f"projector {projector!r} moved past version {expected} of {stream!r} elsewhere"
        )
        self.projector = projector
        self.stream = stream
        self.expected = expected


class ProjectionWriteError(EventStoreError):
    """A read-model write queued by a projector was refused (the position did not move)."""


@attrs.frozen
class ParkedEvent:
    """An event a projector failed to apply after its retries; its stream waits at it."""

    version: int
    error: str
    attempts: int
    parked_at: dt.datetime


@attrs.frozen
class Position:
    """How far ``projector`` got in ``stream``."""

    projector: str
    stream: str
    version: int = 0
    parked: ParkedEvent | None = None


@attrs.frozen
class StreamAdvance:
    """One stream's position moving from ``expected`` to ``new`` with the read-model writes of
    the events in between."""

    stream: str
    expected: int
    new: int
    writes: Sequence[TransactItem]


class PositionStore(Protocol):
    """Where projector positions and runner checkpoints are kept."""

    def get(self, projector: str, stream: str) -> Position:
        """The position (version 0 when the projector never saw the stream)."""
        ...

    def get_many(self, projector: str, streams: Sequence[str]) -> dict[str, Position]:
        """The positions in several streams at once (a replay asks for a chunk's streams)."""
        ...

    def advance(
        self,
        projector: str,
        stream: str,
        expected_version: int,
        new_version: int,
        writes: Sequence[TransactItem] = (),
    ) -> None:
        """Move the position from ``expected_version`` to ``new_version`` with ``writes``.

        Raises ``PositionConflict`` when the stored version is not ``expected_version``.
        """
        ...

    def advance_many(self, projector: str, moves: Sequence[tuple[str, int, int]]) -> list[str]:
        """Advance several streams without writes: (stream, expected, new) each.

        Returns the streams whose position was not at ``expected`` (another runner moved it);
        the others moved.
        """
        ...

    def advance_together(self, projector: str, moves: Sequence[StreamAdvance]) -> bool:
        """Advance several streams with their writes in one transaction, all or none.

        ``True`` when all moved. ``False`` when the store did not take them together (a lost
        race, a refused write, more than one transaction holds): nothing moved, and the caller
        advances them one by one to find out which and why. Errors that a retry cures (the
        store unavailable, throttled) are raised.
        """
        ...

    def park(self, projector: str, stream: str, expected_version: int, parked: ParkedEvent) -> None:
        """Record that the event after ``expected_version`` failed; the stream waits."""
        ...

    def item_identity(self, write: TransactItem) -> Hashable:
        """Which item ``write`` touches: one transaction may touch an item only once."""
        ...

    def release(self, projector: str, stream: str, *, skip: bool) -> Position:
        """Clear a parked event: to retry it (``skip=False``) or to step over it (``skip=True``)."""
        ...

    def parked(self, projector: str | None = None) -> list[Position]:
        """Every position holding a parked event (of one projector, or all)."""
        ...

    def positions(self, projector: str) -> list[Position]:
        """Every stream position of ``projector``."""
        ...

    def reset(self, projector: str) -> int:
        """Forget every position and checkpoint of ``projector`` (to rebuild it); count them."""
        ...

    def get_checkpoint(self, key: str) -> str | None:
        """A runner's checkpoint value."""
        ...

    def acquire_lease(self, name: str, owner: str, duration: dt.timedelta) -> bool:
        """Take or renew the lease ``name`` for ``duration``; ``False`` while another holds it."""
        ...

    def release_lease(self, name: str, owner: str) -> None:
        """Give up the lease ``name`` if ``owner`` holds it."""
        ...

    def put_checkpoint(self, key: str, value: str) -> None:
        """Store a runner's checkpoint value."""
        ...


class InMemoryPositionStore:
    """Positions in process memory, for projectors whose read models are in memory too.

    It cannot carry DynamoDB writes: a projector that queues them needs the DynamoDB store.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._positions: dict[tuple[str, str], Position] = {}
        self._checkpoints: dict[str, str] = {}
        self._leases: dict[str, tuple[str, dt.datetime]] = {}

    def get(self, projector: str, stream: str) -> Position:
        with self._lock:
            return self._positions.get((projector, stream)) or Position(projector, stream)

    def get_many(self, projector: str, streams: Sequence[str]) -> dict[str, Position]:
        return {stream: self.get(projector, stream) for stream in streams}

    def advance(
        self,
        projector: str,
        stream: str,
        expected_version: int,
        new_version: int,
        writes: Sequence[TransactItem] = (),
    ) -> None:
        if writes:
            raise ProjectionWriteError(
                "the in-memory position store cannot apply DynamoDB writes: use the DynamoDB "
                "position store for projectors with DynamoDB read models"
            )
        with self._lock:
            current = self._positions.get((projector, stream)) or Position(projector, stream)
            if current.version != expected_version or current.parked is not None:
                raise PositionConflict(projector, stream, expected_version)
            self._positions[(projector, stream)] = Position(projector, stream, new_version)

    def advance_many(self, projector: str, moves: Sequence[tuple[str, int, int]]) -> list[str]:
        lost = []
        for stream, expected, new in moves:
            try:
                self.advance(projector, stream, expected, new)
            except PositionConflict:
                lost.append(stream)
        return lost

    def advance_together(self, projector: str, moves: Sequence[StreamAdvance]) -> bool:
        if any(move.writes for move in moves):
            return False  # ``advance`` says why, stream by stream
        with self._lock:  # all or none, as one DynamoDB transaction
            for move in moves:
                current = self._positions.get((projector, move.stream))
                if current is None:
                    current = Position(projector, move.stream)
                if current.version != move.expected or current.parked is not None:
                    return False
            for move in moves:
                self._positions[(projector, move.stream)] = Position(
                    projector, move.stream, move.new
                )
        return True

    def item_identity(self, write: TransactItem) -> Hashable:
        return id(write)  # never reached with writes: ``advance`` refuses them

    def park(self, projector: str, stream: str, expected_version: int, parked: ParkedEvent) -> None:
        with self._lock:
            current = self._positions.get((projector, stream)) or Position(projector, stream)
            if current.version != expected_version:
                raise PositionConflict(projector, stream, expected_version)
            self._positions[(projector, stream)] = attrs.evolve(current, parked=parked)

    def release(self, projector: str, stream: str, *, skip: bool) -> Position:
        with self._lock:
            current = self._positions.get((projector, stream)) or Position(projector, stream)
            if current.parked is None:
                return current
            version = current.parked.version if skip else current.version
            released = Position(projector, stream, version)
            self._positions[(projector, stream)] = released
            return released

    def parked(self, projector: str | None = None) -> list[Position]:
        with self._lock:
            return [
                position
                for position in self._positions.values()
                if position.parked is not None and projector in (None, position.projector)
            ]

    def positions(self, projector: str) -> list[Position]:
        with self._lock:
            return [p for p in self._positions.values() if p.projector == projector]

    def reset(self, projector: str) -> int:
        with self._lock:
            keys = [key for key in self._positions if key[0] == projector]
            for key in keys:
                del self._positions[key]
            checkpoints = [k for k in self._checkpoints if checkpoint_projector(k) == projector]
            for checkpoint in checkpoints:
                del self._checkpoints[checkpoint]
            return len(keys) + len(checkpoints)

    def get_checkpoint(self, key: str) -> str | None:
        with self._lock:
            return self._checkpoints.get(key)

    def put_checkpoint(self, key: str, value: str) -> None:
        with self._lock:
            self._checkpoints[key] = value

    def acquire_lease(self, name: str, owner: str, duration: dt.timedelta) -> bool:
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            holder = self._leases.get(name)
            if holder is not None and holder[0] != owner and holder[1] > now:
                return False
            self._leases[name] = (owner, now + duration)
            return True

    def release_lease(self, name: str, owner: str) -> None:
        with self._lock:
            holder = self._leases.get(name)
            if holder is not None and holder[0] == owner:
                del self._leases[name]
