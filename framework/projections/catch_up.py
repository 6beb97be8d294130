"""Catch-up and replay over the ``feed`` index: every event of every stream, in commit order.

The runner walks the feed hour by hour (``EventStore.read_feed``), in chunks of a fixed size, so
memory stays flat however many events there are. It stops a safety window short of now, because
the index is eventually consistent and the newest commits may not be in it yet.

An event's feed time is stamped by the writer before its transaction is sent, so an event can
become readable after a run has read past its time (a slow commit, a writer's clock behind). The
checkpoint therefore trails what was read by an *overlap* (five minutes by default): the next run
reads that stretch again, and the per-stream positions make the re-reading exactly-once. The
checkpoint never moves past now minus the safety window, whatever ``until`` a caller passes, so a
run asked to read into the future cannot step over commits that have not happened yet.

``rebuild`` = empty the projector's read-model tables (dropped and created again), forget its
positions, then replay from the start. In that order: a crash after the tables were emptied leaves
positions that skip events (run ``rebuild`` again), never a full read model whose events are
applied a second time.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import structlog

from framework.errors import DefinitionError
from framework.projections.engine import ApplyReport, ProjectionEngine
from framework.projections.projector import Projector
from framework.projections.read_models import clear_tables
from framework.store.base import EventStore
from framework.store.dynamodb import DynamoDBEventStore
from framework.store.keys import feed_checkpoint_key
from framework.store.positions import PositionStore
from framework.store.records import StoredEvent

log = structlog.get_logger(__name__)

DEFAULT_SAFETY_WINDOW = dt.timedelta(seconds=5)
DEFAULT_OVERLAP = dt.timedelta(minutes=5)
"""How far the checkpoint trails what a run read: it must exceed commit latency plus the skew
between writers' clocks, or a late event could be stepped over."""
DEFAULT_CHUNK = 500


class CatchUpRunner:
    """Brings projectors up to date from the events table's ``feed`` index."""

    def __init__(
        self,
        store: EventStore,
        positions: PositionStore,
        projectors: Iterable[Projector],
        *,
        safety_window: dt.timedelta = DEFAULT_SAFETY_WINDOW,
        overlap: dt.timedelta = DEFAULT_OVERLAP,
        chunk_size: int = DEFAULT_CHUNK,
        progress: bool = False,
        **engine_options: Any,
    ) -> None:
        self.store = store
        self.positions = positions
        self.engines = [ProjectionEngine(p, store, positions, **engine_options) for p in projectors]
        self.safety_window = safety_window
        self.overlap = overlap
        self.chunk_size = chunk_size
        self.progress = progress

    def run(
        self, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> ApplyReport:
        """Apply every event from ``since`` (default: where the last run stopped) to ``until``.

        ``until`` defaults to now minus the safety window. The checkpoint the next run resumes
        from is ``min(until, now - safety window) - overlap``.
        """
        settled = dt.datetime.now(dt.UTC) - self.safety_window
        end = until or settled
        start = since if since is not None else self._resume_point()
        report = ApplyReport()
        events = 0
        with self._progress_bar(start, end) as advance:
            for chunk in _chunks(self.store.read_feed(start, end), self.chunk_size):
                for engine in self.engines:
                    report.merge(engine.apply(chunk))
                events += len(chunk)
                advance(len(chunk), chunk[-1].occurred_at)
        checkpoint = min(end, settled) - self.overlap
        if start is not None:
            checkpoint = max(checkpoint, start)  # never move a checkpoint backwards
        for engine in self.engines:
            self.positions.put_checkpoint(feed_checkpoint_key(engine.name), checkpoint.isoformat())
        log.info(
            "projection.catch_up_done",
            projectors=[engine.name for engine in self.engines],
            events=events,
            applied=report.applied,
            parked=len(report.parked),
        )
        return report

    def rebuild(self) -> ApplyReport:
        """Empty the read models, forget the positions and replay everything from the start.

        A projector must declare its ``read_models`` (their tables are emptied) or override
        ``reset()`` (for a read model kept elsewhere); otherwise the replay would apply every
        event a second time on top of what is there, and the rebuild is refused before it
        starts. Stop the live runners of the projector (the poller, the Lambda's event source
        mapping) while it rebuilds.
        """
        for engine in self.engines:
            projector = engine.projector
            if not projector.read_models and type(projector).reset is Projector.reset:
                raise DefinitionError(
                    f"cannot rebuild {engine.name}: it declares no read_models and does not "
                    "override reset(), so the replay would apply every event again on top of "
                    "its read model"
                )
        for engine in self.engines:
            models = engine.projector.read_models
            if models:
                if not isinstance(self.store, DynamoDBEventStore):
                    raise DefinitionError(
                        f"{engine.name} keeps its read models in DynamoDB: rebuild it with a "
                        "DynamoDBEventStore"
                    )
                clear_tables(self.store, models)
            engine.projector.reset()
            removed = self.positions.reset(engine.name)
            log.info(
                "projection.reset", projector=engine.name, positions=removed, tables=len(models)
            )
        return self.run(since=None)

    def _resume_point(self) -> dt.datetime | None:
        checkpoints = [
            self.positions.get_checkpoint(feed_checkpoint_key(engine.name))
            for engine in self.engines
        ]
        if not checkpoints or any(value is None for value in checkpoints):
            return None  # some projector never ran: from the beginning
        return min(dt.datetime.fromisoformat(value) for value in checkpoints if value is not None)

    def _progress_bar(
        self, start: dt.datetime | None, end: dt.datetime
    ) -> AbstractContextManager[Any]:
        if not self.progress:
            return nullcontext(lambda count, moment: None)
        return _RichProgress(start, end)


class _RichProgress:
    """A terminal progress bar over the replayed time span, counting events."""

    def __init__(self, start: dt.datetime | None, end: dt.datetime) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.start = start
        self.end = end
        self.bar = Progress(
            TextColumn("replaying"),
            BarColumn(),
            TextColumn("{task.fields[events]} events, up to {task.fields[moment]}"),
            TimeElapsedColumn(),
            transient=False,
        )
        self.task = self.bar.add_task("replay", total=1.0, events=0, moment="")
        self.events = 0

    def __enter__(self) -> Any:
        self.bar.start()
        return self.advance

    def advance(self, count: int, moment: dt.datetime) -> None:
        self.events += count
        done = 1.0
        if self.start is not None and self.end > self.start:
            done = (moment - self.start) / (self.end - self.start)
        self.bar.update(
            self.task,
            completed=min(done, 1.0),
            events=self.events,
            moment=f"{moment:%Y-%m-%d %H:%M}",
        )

    def __exit__(self, *exc_info: object) -> None:
        self.bar.update(self.task, completed=1.0)
        self.bar.stop()


def _chunks(records: Iterator[StoredEvent], size: int) -> Iterator[list[StoredEvent]]:
    while True:
        chunk = list(itertools.islice(records, size))
        if not chunk:
            return
        yield chunk
