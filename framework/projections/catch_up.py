"""Catch-up and replay over the ``feed`` index: every event of every stream, in commit order.

The runner walks the feed hour by hour, in chunks of a fixed size, so memory stays flat however
many events there are. On DynamoDB it reads the feed's lanes side by side (``workers`` threads,
``DynamoDBEventStore.read_feed_lane``; a lane is a set of feed shards holding whole streams),
each with its own checkpoint written as it goes, so that an interrupted replay resumes; other
stores are read whole (``EventStore.read_feed``). Side by side means threads, unless the caller
ran the runner under ``side_by_side_with`` (``framework.aio.AsyncCatchUpRunner`` runs the lanes
as greenlets on an asyncio loop that way): the rules of a run are written once. It stops a
safety window short of now, because the index is eventually consistent and the newest commits may
not be in it yet.

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

import concurrent.futures
import datetime as dt
import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

import attrs
import structlog

from framework.errors import DefinitionError
from framework.projections.engine import ApplyReport, ProjectionEngine
from framework.projections.garbage_collection import (
    DEFAULT_YOUNG_THRESHOLD,
    fewer_young_collections,
)
from framework.projections.projector import Projector
from framework.projections.read_models import clear_tables
from framework.store.base import EventStore
from framework.store.dynamodb.event_store import DynamoDBEventStore
from framework.store.keys import feed_checkpoint_key, feed_lane_checkpoint_key
from framework.store.positions import PositionStore
from framework.store.records import StoredEvent

log = structlog.get_logger(__name__)

T = TypeVar("T")

DEFAULT_SAFETY_WINDOW = dt.timedelta(seconds=5)
DEFAULT_OVERLAP = dt.timedelta(minutes=5)
"""How far the checkpoint trails what a run read: it must exceed commit latency plus the skew
between writers' clocks, or a late event could be stepped over."""
DEFAULT_CHUNK = 2000
"""Events applied together: a chunk's streams cost one positions read (for streams new to the
lane) and one transaction per hundred streams, and its writes of a row are folded into one. A
chunk of 500 made those fixed costs a fifth of a short replay; 2,000 events are a few MB held."""


DEFAULT_WORKERS = 4
"""Feed shards replayed side by side; one per shard at most."""
DEFAULT_CHECKPOINT_INTERVAL = 2.0
"""Seconds between the checkpoints a shard writes while it replays."""


class SideBySide(Protocol):
    """How a run calls its lanes' work at once: ``calls`` side by side, at most ``limit`` at a
    time, their results in the order of ``calls``. The first failure sets ``stop`` (the lanes
    still running stop after their current chunk), is waited out with the others, and raised."""

    def __call__(
        self, calls: Sequence[Callable[[], T]], stop: threading.Event, limit: int
    ) -> list[T]: ...


def in_threads(calls: Sequence[Callable[[], T]], stop: threading.Event, limit: int) -> list[T]:
    """``SideBySide`` on a pool of ``limit`` threads: the sync runner's way."""
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=limit, thread_name_prefix="replay"
    ) as pool:
        futures = [pool.submit(call) for call in calls]
        try:
            for future in concurrent.futures.as_completed(futures):
                future.result()
        except BaseException:
            stop.set()  # the others stop after their current chunk, checkpointed
            raise
    return [future.result() for future in futures]


_side_by_side: ContextVar[SideBySide] = ContextVar("framework_side_by_side", default=in_threads)


@contextmanager
def side_by_side_with(way: SideBySide) -> Iterator[None]:
    """Within the block (in this context only), runs call their lanes side by side ``way``.

    A context variable, as ``framework.pauses`` keeps its sleeper: the async runner sets it in
    the greenlet it runs ``CatchUpRunner.run`` in, and every other run keeps its threads.
    """
    token = _side_by_side.set(way)
    try:
        yield
    finally:
        _side_by_side.reset(token)


@attrs.define
class _Shard:
    """A lane of the feed that one worker replays in order, with its own checkpoints."""

    number: int | None  # None: the whole feed, of a store that does not shard it
    read: Callable[[dt.datetime | None, dt.datetime], Iterator[StoredEvent]]
    lanes: int = 1

    def checkpoint_key(self, projector: str) -> str:
        if self.number is None:
            return feed_checkpoint_key(projector)
        return feed_lane_checkpoint_key(projector, self.number, self.lanes)


class CatchUpRunner:
    """Brings projectors up to date from the events table's ``feed`` index.

    On DynamoDB the feed's lanes are replayed by ``workers`` threads side by side: a stream
    always lands in one lane (``keys.feed_lanes``), even across changes of the number of feed
    shards, so each stream is applied in order by one worker. Each lane checkpoints its progress
    every ``checkpoint_interval`` seconds, so an interrupted run or rebuild resumes (with a plain
    ``run``) where each lane got to instead of starting over; a finished run also checkpoints
    the whole feed, where lanes of another count resume from.
    """

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
        workers: int = DEFAULT_WORKERS,
        checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
        on_progress: Callable[[ReplayProgress], None] | None = None,
        young_gc_threshold: int | None = DEFAULT_YOUNG_THRESHOLD,
        **engine_options: Any,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if young_gc_threshold is not None and young_gc_threshold < 1:
            raise ValueError(f"young_gc_threshold must be at least 1, got {young_gc_threshold}")
        self.store = store
        self.positions = positions
        self.engines = [ProjectionEngine(p, store, positions, **engine_options) for p in projectors]
        self.safety_window = safety_window
        self.overlap = overlap
        self.chunk_size = chunk_size
        self.progress = progress
        self.workers = workers
        self.checkpoint_interval = checkpoint_interval
        self.on_progress = on_progress
        self.young_gc_threshold = young_gc_threshold

    def run(
        self, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> ApplyReport:
        """Apply every event from ``since`` (default: where the last run stopped) to ``until``.

        ``until`` defaults to now minus the safety window. The checkpoint the next run resumes
        from is ``min(until, now - safety window) - overlap``, per shard. While it runs, the
        garbage collector's first threshold is raised to ``young_gc_threshold``
        (``garbage_collection``; ``None`` leaves the collector alone).
        """
        with self._fewer_collections():
            return self._run(since, until)

    def _fewer_collections(self) -> AbstractContextManager[Any]:
        if self.young_gc_threshold is None:
            return nullcontext()
        return fewer_young_collections(self.young_gc_threshold)

    def _run(self, since: dt.datetime | None, until: dt.datetime | None) -> ApplyReport:
        settled = dt.datetime.now(dt.UTC) - self.safety_window
        end = until or settled
        shards = self._shards()
        starts = self._starts(shards, since)
        shards = self._sharing_hours(shards, starts, end)
        shown = self.progress or self.on_progress is not None
        estimate = self._estimate(min(starts, key=_earliest), end) if shown else None
        progress = ReplayProgress(total=estimate)
        report = ApplyReport()
        with self._display(progress):
            if len(shards) == 1 or self.workers == 1:
                for shard, start in zip(shards, starts, strict=True):
                    report.merge(self._replay_shard(shard, start, end, settled, progress))
            else:
                report = self._in_parallel(shards, starts, end, settled, progress)
            progress.finish()
        if shards[0].number is not None:  # the lanes are done: the whole feed is, too
            self._checkpoint(
                _Shard(None, self.store.read_feed), min(starts, key=_earliest), min(end, settled)
            )
        log.info(
            "projection.catch_up_done",
            projectors=[engine.name for engine in self.engines],
            events=progress.events,
            applied=report.applied,
            parked=len(report.parked),
            seconds=round(progress.elapsed(), 3),
        )
        return report

    def _starts(self, shards: list[_Shard], since: dt.datetime | None) -> list[dt.datetime | None]:
        """Where each shard starts: ``since``, else its resume point, read side by side."""
        if since is not None:
            return [since for _ in shards]
        if len(shards) == 1 or self.workers == 1:
            return [self._resume_point(shard) for shard in shards]
        calls = [functools.partial(self._resume_point, shard) for shard in shards]
        return _side_by_side.get()(calls, threading.Event(), min(self.workers, len(shards)))

    def _in_parallel(
        self,
        shards: list[_Shard],
        starts: list[dt.datetime | None],
        end: dt.datetime,
        settled: dt.datetime,
        progress: ReplayProgress,
    ) -> ApplyReport:
        """One lane per shard (``workers`` at a time); the first failure stops the others.

        A lane is a thread, or whatever ``side_by_side_with`` installed (``SideBySide``)."""
        stop = threading.Event()
        report = ApplyReport()
        if isinstance(self.store, DynamoDBEventStore):
            self.store.client  # noqa: B018  (made once, here: the workers share it)
        calls = [
            functools.partial(self._replay_shard, shard, start, end, settled, progress, stop)
            for shard, start in zip(shards, starts, strict=True)
        ]
        for lane in _side_by_side.get()(calls, stop, min(self.workers, len(shards))):
            report.merge(lane)
        return report

    def _replay_shard(
        self,
        shard: _Shard,
        start: dt.datetime | None,
        end: dt.datetime,
        settled: dt.datetime,
        progress: ReplayProgress,
        stop: threading.Event | None = None,
    ) -> ApplyReport:
        report = ApplyReport()
        last_checkpoint = time.monotonic()
        with ExitStack() as remembering:
            for engine in self.engines:  # a lane's positions are read once, not every chunk
                remembering.enter_context(engine.remembering())
            try:
                for chunk in _chunks(shard.read(start, end), self.chunk_size):
                    for engine in self.engines:
                        report.merge(engine.apply(chunk))
                    progress.advance(len(chunk), chunk[-1].occurred_at)
                    if self.on_progress is not None:
                        self.on_progress(progress)
                    if time.monotonic() - last_checkpoint >= self.checkpoint_interval:
                        self._checkpoint(shard, start, min(chunk[-1].occurred_at, end, settled))
                        last_checkpoint = time.monotonic()
                    if stop is not None and stop.is_set():
                        return report
            except BaseException:
                if stop is not None:  # at once: the others stop after the chunk they are on
                    stop.set()
                raise
        self._checkpoint(shard, start, min(end, settled))
        return report

    def _checkpoint(self, shard: _Shard, start: dt.datetime | None, read_to: dt.datetime) -> None:
        """Record that ``shard`` was applied up to ``read_to``, less the overlap."""
        checkpoint = read_to - self.overlap
        if start is not None:
            checkpoint = max(checkpoint, start)  # never move a checkpoint backwards
        for engine in self.engines:
            self.positions.put_checkpoint(shard.checkpoint_key(engine.name), checkpoint.isoformat())

    def _shards(self) -> list[_Shard]:
        store = self.store
        if isinstance(store, DynamoDBEventStore):
            lanes = store.feed_lanes()
            return [
                _Shard(lane, functools.partial(store.read_feed_lane, lane, lanes), lanes)
                for lane in range(lanes)
            ]
        return [_Shard(None, store.read_feed)]

    def _sharing_hours(
        self, shards: list[_Shard], starts: list[dt.datetime | None], end: dt.datetime
    ) -> list[_Shard]:
        """The lanes of a DynamoDB feed, reading the hours to query once for all of them.

        Each lane would otherwise read the same hour markers (and the table's creation time)
        itself: a few requests each, a tenth of a short replay's time.
        """
        store = self.store
        if not isinstance(store, DynamoDBEventStore) or len(shards) == 1:
            return shards
        earliest = min(starts, key=_earliest)
        hours = store.feed_hours_to_read(earliest, end)
        return [  # the shards are the lanes 0, 1, ... in order (``_shards``)
            attrs.evolve(
                shard, read=functools.partial(store.read_feed_lane, lane, shard.lanes, hours=hours)
            )
            for lane, shard in enumerate(shards)
        ]

    def _estimate(self, start: dt.datetime | None, end: dt.datetime) -> int | None:
        """How many events the run will read, estimated before it starts; ``None``: unknown.

        The events table's item count (DescribeTable), times the share of the table's lifetime
        (up to ``end``) the run covers: exact enough for a replay from the start, a guess that
        assumes a steady write rate for a catch-up.
        """
        if not isinstance(self.store, DynamoDBEventStore):
            return None
        count = self.store.approximate_event_count()
        created = self.store.feed_start()
        if start is None or start <= created:
            return count
        lifetime = (end - created).total_seconds()
        covered = (end - start).total_seconds()
        if lifetime <= 0 or covered <= 0:
            return 0
        return round(count * min(covered / lifetime, 1.0))

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

    def _resume_point(self, shard: _Shard) -> dt.datetime | None:
        """Where ``shard`` resumes: its own checkpoint, else the whole feed's (written by
        earlier versions, and by stores with one shard); ``None`` (the start) when a projector
        has neither."""
        values: list[str] = []
        for engine in self.engines:
            value = self.positions.get_checkpoint(shard.checkpoint_key(engine.name))
            if value is None and shard.number is not None:
                value = self.positions.get_checkpoint(feed_checkpoint_key(engine.name))
            if value is None:
                return None
            values.append(value)
        if not values:
            return None
        return min(dt.datetime.fromisoformat(value) for value in values)

    def _display(self, progress: ReplayProgress) -> AbstractContextManager[Any]:
        if not self.progress:
            return nullcontext()
        return _RichProgress(progress)


def _earliest(moment: dt.datetime | None) -> dt.datetime:
    return dt.datetime.min.replace(tzinfo=dt.UTC) if moment is None else moment


class ReplayProgress:
    """How far a replay got: events read against an estimated total, time and rate.

    Shared by the workers (under a lock) and read by the progress bar and ``on_progress``.
    The total is estimated before the run starts; when the run reads more than the estimate,
    the total follows the count, so the fraction never passes 1 before the run is done.
    """

    def __init__(self, total: int | None) -> None:
        self.estimate = total
        self.events = 0
        self.moment: dt.datetime | None = None
        self.done = False
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def advance(self, count: int, moment: dt.datetime) -> None:
        """``count`` more events read, the last of them committed at ``moment``."""
        with self._lock:
            self.events += count
            if self.moment is None or moment > self.moment:
                self.moment = moment

    def finish(self) -> None:
        """The run is over: the total is what was read."""
        with self._lock:
            self.done = True

    @property
    def total(self) -> int | None:
        """The estimated total, raised to the count when the count passed it."""
        if self.done:
            return self.events
        if self.estimate is None:
            return None
        return max(self.estimate, self.events)

    def fraction(self) -> float | None:
        """The share read so far; ``None`` while the total is unknown."""
        total = self.total
        if total is None:
            return None
        if total == 0:
            return 1.0 if self.done else 0.0
        share = self.events / total
        return share if self.done else min(share, 0.999)

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self._started

    def rate(self) -> float:
        """Events read per second since the run started."""
        elapsed = self.elapsed()
        return self.events / elapsed if elapsed > 0 else 0.0


class _RichProgress:
    """A terminal progress bar: events read of the estimated total, elapsed time, rate, and
    the time left at that rate. rich redraws it several times a second, so the clock runs
    between chunks."""

    def __init__(self, progress: ReplayProgress) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = progress
        self.bar = Progress(
            TextColumn("replaying"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}"),
            transient=False,
        )
        self.task = self.bar.add_task(
            "replay", total=progress.total, counts="", rate="", left="", moment=""
        )

    def __enter__(self) -> _RichProgress:
        self.bar.start()
        self._redraw()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="replay-progress", daemon=True)
        self._ticker.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._redraw()

    def _redraw(self) -> None:
        progress = self.progress
        total, rate = progress.total, progress.rate()
        counts = f"{progress.events:,} events"
        left = ""
        if total is not None:
            approximate = "" if progress.done else "~"
            counts = f"{progress.events:,} of {approximate}{total:,} events"
            if rate > 0 and not progress.done:
                left = f"~{_duration((total - progress.events) / rate)} left"
        if progress.moment is not None:
            counts += f", up to {progress.moment:%Y-%m-%d %H:%M}"
        self.bar.update(
            self.task,
            total=total,
            completed=progress.events,
            counts=counts,
            rate=f"{rate:,.0f}/s",
            left=left,
        )

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._ticker.join()
        self._redraw()
        self.bar.stop()


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}"


def _chunks(records: Iterator[StoredEvent], size: int) -> Iterator[list[StoredEvent]]:
    while True:
        chunk = list(itertools.islice(records, size))
        if not chunk:
            return
        yield chunk
