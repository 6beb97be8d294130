"""Follows the events table's DynamoDB Stream and applies new events to projectors, live.

For local use (DynamoDB Local supports Streams) and for hosts that prefer polling to Lambda. Each
shard's progress is checkpointed per projector after its records were applied, so a restart
resumes where it stopped: what was applied but not yet checkpointed is delivered again and skipped
by the per-stream positions. Closed shards are read to their end before their children.

``run`` keeps going through what a retry cures (throttling, a dropped connection, an endpoint
that does not answer for a while): it logs the failure, backs off (full jitter, capped) and polls
again. Two pollers of the same projectors share a *lease* in the positions table: the one holding
it polls and renews it each round, the other stands by and takes over once the lease expires
(the holder stopped or died). The lease saves duplicated work; correctness never rests on it, since
positions apply each event once whoever delivers it.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterable
from typing import Any

import structlog

from framework.application import Backoff
from framework.errors import StoreUnavailable, TransactionConflict
from framework.projections.engine import ApplyReport, ProjectionEngine
from framework.projections.projector import Projector
from framework.store.dynamodb.event_store import DynamoDBEventStore
from framework.store.dynamodb.streams import EventStreamReader
from framework.store.keys import shard_checkpoint_key
from framework.store.positions import PositionStore

log = structlog.get_logger(__name__)

_CLOSED = "closed"
_TRANSIENT: tuple[type[Exception], ...] = (StoreUnavailable, TransactionConflict)
"""Failures a later poll can get past: throttling (a ``StoreUnavailable``), no answer, a race."""
DEFAULT_LEASE = dt.timedelta(seconds=30)


class StreamsPoller:
    """Polls every shard of the events table's stream and feeds the projection engines."""

    def __init__(
        self,
        store: DynamoDBEventStore,
        positions: PositionStore,
        projectors: Iterable[Projector],
        *,
        lease: dt.timedelta = DEFAULT_LEASE,
        backoff: Backoff | None = None,
        owner: str | None = None,
        **engine_options: Any,
    ) -> None:
        self.reader = EventStreamReader(store)
        self.positions = positions
        self.engines = [ProjectionEngine(p, store, positions, **engine_options) for p in projectors]
        self.lease = lease
        self.backoff = backoff or Backoff(base=0.5, cap=30.0)
        self.owner = owner or f"poller-{uuid.uuid4()}"
        self.lease_name = "streams#" + ",".join(sorted(engine.name for engine in self.engines))

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
        """Poll until ``stop`` is set, waiting ``interval`` seconds between idle rounds.

        Holds the lease while it polls (standing by while another poller holds it), backs off
        after a transient failure and polls again; other failures end the run (and release the
        lease) with the error.
        """
        failures = 0
        try:
            while not stop.is_set():
                try:
                    if not self.positions.acquire_lease(self.lease_name, self.owner, self.lease):
                        log.debug("projection.poller_standing_by", lease=self.lease_name)
                        stop.wait(interval)
                        continue
                    report = self.poll_once()
                except _TRANSIENT as error:
                    failures += 1
                    delay = self.backoff.delay(failures)
                    log.warning(
                        "projection.poll_failed",
                        attempt=failures,
                        error_type=type(error).__name__,
                        error=str(error),
                        retry_in_s=round(delay, 2),
                    )
                    stop.wait(delay)
                    continue
                if failures:
                    log.info("projection.poll_recovered", after_failures=failures)
                failures = 0
                if report.applied:
                    log.info("projection.streams_polled", applied=report.applied)
                else:
                    stop.wait(interval)
        finally:
            self._release_lease()

    def _release_lease(self) -> None:
        try:
            self.positions.release_lease(self.lease_name, self.owner)
        except _TRANSIENT:  # it expires by itself
            log.warning("projection.lease_not_released", lease=self.lease_name)
