"""Catch-up and replay over the ``feed`` index: every event of every stream, in commit order.

The runner walks the feed hour by hour (``EventStore.read_feed``), in chunks of a fixed size, so
memory stays flat however many events there are. It stops a safety window short of now, because
the index is eventually consistent and the newest commits may not be in it yet; the next run
starts again at the hour it stopped in, and the per-stream positions make that overlap harmless.

``rebuild`` = forget the projector's positions, clear its read model, replay from the start.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import structlog

from framework.projections.engine import ApplyReport, ProjectionEngine
from framework.projections.projector import Projector
from framework.store.base import EventStore
from framework.store.keys import feed_checkpoint_key, feed_hour
from framework.store.positions import PositionStore
from framework.store.records import StoredEvent

log = structlog.get_logger(__name__)

DEFAULT_SAFETY_WINDOW = dt.timedelta(seconds=5)
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
        chunk_size: int = DEFAULT_CHUNK,
        progress: bool = False,
        **engine_options: Any,
    ) -> None:
        self.store = store
        self.positions = positions
        self.engines = [ProjectionEngine(p, store, positions, **engine_options) for p in projectors]
        self.safety_window = safety_window
        self.chunk_size = chunk_size
        self.progress = progress

    def run(
        self, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> ApplyReport:
        """Apply every event from ``since`` (default: where the last run stopped) to ``until``.

        ``until`` defaults to now minus the safety window.
        """
        end = until or dt.datetime.now(dt.UTC) - self.safety_window
        start = since if since is not None else self._resume_point()
        report = ApplyReport()
        events = 0
        with self._progress_bar(start, end) as advance:
            for chunk in _chunks(self.store.read_feed(start, end), self.chunk_size):
                for engine in self.engines:
                    report.merge(engine.apply(chunk))
                events += len(chunk)
                advance(len(chunk), chunk[-1].occurred_at)
        for engine in self.engines:
            self.positions.put_checkpoint(
                feed_checkpoint_key(engine.name), feed_hour(end).isoformat()
            )
        log.info(
            "projection.catch_up_done",
            projectors=[engine.name for engine in self.engines],
            events=events,
            applied=report.applied,
            parked=len(report.parked),
        )
        return report

    def rebuild(self) -> ApplyReport:
        """Forget the positions, clear the read models and replay everything from the start."""
        for engine in self.engines:
            removed = self.positions.reset(engine.name)
            engine.projector.reset()
            log.info("projection.reset", projector=engine.name, positions=removed)
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
