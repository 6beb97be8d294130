"""Follows the events table's DynamoDB Stream and applies new events to projectors, live.

For local use (DynamoDB Local supports Streams) and for hosts that prefer polling to Lambda. Each
shard's progress is checkpointed per projector after its records were applied, so a restart
resumes where it stopped: what was applied but not yet checkpointed is delivered again and skipped
by the per-stream positions. Closed shards are read to their end before their children.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import structlog

from framework.projections.engine import ApplyReport, ProjectionEngine
from framework.projections.projector import Projector
from framework.store.dynamodb import DynamoDBEventStore
from framework.store.keys import shard_checkpoint_key
from framework.store.positions import PositionStore
from framework.store.streams import EventStreamReader

log = structlog.get_logger(__name__)

_CLOSED = "closed"


class StreamsPoller:
    """Polls every shard of the events table's stream and feeds the projection engines."""

    def __init__(
        self,
        store: DynamoDBEventStore,
        positions: PositionStore,
        projectors: Iterable[Projector],
        **engine_options: Any,
    ) -> None:
        self.reader = EventStreamReader(store)
        self.positions = positions
        self.engines = [ProjectionEngine(p, store, positions, **engine_options) for p in projectors]

    def poll_once(self) -> ApplyReport:
        """Read what is new in every shard, apply it, checkpoint it."""
        report = ApplyReport()
        for shard in self.reader.shards():
            checkpoints = {
                engine.name: self.positions.get_checkpoint(
                    shard_checkpoint_key(shard.shard_id, engine.name)
                )
                for engine in self.engines
            }
            behind = [value for value in checkpoints.values() if value != _CLOSED]
            if not behind:
                continue
            start = None if None in behind else min(behind, key=lambda seq: int(str(seq)))
            records, exhausted = self.reader.read(shard.shard_id, start)
            for engine in self.engines:
                done = checkpoints[engine.name]
                if done == _CLOSED:
                    continue
                fresh = [r for r in records if done is None or int(r.sequence_number) > int(done)]
                events = [r.event for r in fresh if r.event is not None]
                report.merge(engine.apply(events))
                key = shard_checkpoint_key(shard.shard_id, engine.name)
                if exhausted and shard.closed:
                    self.positions.put_checkpoint(key, _CLOSED)
                elif fresh:
                    self.positions.put_checkpoint(key, fresh[-1].sequence_number)
        return report

    def run(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Poll until ``stop`` is set, waiting ``interval`` seconds between idle rounds."""
        while not stop.is_set():
            report = self.poll_once()
            if report.applied:
                log.info("projection.streams_polled", applied=report.applied)
            else:
                stop.wait(interval)
