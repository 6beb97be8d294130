"""``AsyncCatchUpRunner`` on the aiobotocore store against DynamoDB Local: the feed's lanes replayed
as greenlets on one loop, their Query pages in flight together, with the sync runner's results,
checkpoints and parking."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from framework import Application, DynamoDBEventStore, Projector, event_handler
from framework.aio import AsyncApplication, AsyncCatchUpRunner
from framework.config import Settings
from framework.projections import CatchUpRunner, Envelope
from framework.store import DynamoDBPositionStore, InMemoryPositionStore
from framework.store.keys import FEED_SHARDS, feed_lane_checkpoint_key
from framework.store.positions import PositionStore
from framework.testing.bank import Account, Deposited, DepositMany, OpenAccount
from tests.support.aio import BridgedLoop
from tests.support.stores import CountingPositions

pytestmark = pytest.mark.dynamodb_local

ACCOUNTS = [f"acc-{index}" for index in range(12)]
PER_ACCOUNT = 30  # in three commands of ten deposits
HISTORY = len(ACCOUNTS) * (PER_ACCOUNT + 1)
EVERY_STREAM_IN_ORDER = {account: list(range(2, PER_ACCOUNT + 2)) for account in ACCOUNTS}


class Interrupted(BaseException):
    """Stands for Ctrl-C or a killed process: not a handler failure to retry and park."""


class Ordered(Projector, name="ordered"):
    """Records the versions it applies per stream; ``on_event`` sees each one first."""

    def __init__(self, on_event: Callable[[Envelope, int], None] | None = None) -> None:
        super().__init__()
        self.versions: dict[str, list[int]] = {}
        self.on_event = on_event

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        if self.on_event is not None:
            self.on_event(envelope, sum(map(len, self.versions.values())))
        self.versions.setdefault(envelope.aggregate_id, []).append(envelope.version)


class InFlight:
    """Wraps an aiobotocore client's ``query``: how many are awaited at once, from which
    threads."""

    def __init__(self, client: Any) -> None:
        self._query = client.query
        self.now = 0
        self.most = 0
        self.threads: set[int] = set()

    async def query(self, **request: Any) -> Any:
        self.now += 1
        self.most = max(self.most, self.now)
        self.threads.add(threading.get_ident())
        try:
            return await self._query(**request)
        finally:
            self.now -= 1


@pytest.fixture
def history(async_local_store: DynamoDBEventStore, bridged: BridgedLoop) -> int:
    app = AsyncApplication(Application(store=async_local_store, aggregates=[Account]))

    async def write() -> None:
        await asyncio.gather(*(app.handle(OpenAccount(account_id=a, owner=a)) for a in ACCOUNTS))
        for _ in range(3):
            await asyncio.gather(
                *(
                    app.handle(DepositMany(account_id=a, amounts=(Decimal(1),) * 10))
                    for a in ACCOUNTS
                )
            )

    bridged.run(write())
    lanes = bridged.call(async_local_store.feed_lanes)
    assert lanes > 1, "the feed must have several lanes to replay side by side"
    return HISTORY


def runner(store: Any, positions: PositionStore, projector: Projector, **options: Any) -> Any:
    options.setdefault("safety_window", dt.timedelta(0))
    options.setdefault("workers", 4)
    return CatchUpRunner(store, positions, [projector], chunk_size=7, **options)


def later() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)


@pytest.mark.parametrize("workers", [2, 4])
def test_every_event_once_and_in_order_as_the_sync_runner_applies_them(
    workers: int,
    async_local_store: DynamoDBEventStore,
    bridged: BridgedLoop,
    history: int,
    dynamodb_settings: Settings,
) -> None:
    projector = Ordered()
    positions = DynamoDBPositionStore(async_local_store)  # its requests awaited too
    replay = AsyncCatchUpRunner(runner(async_local_store, positions, projector, workers=workers))
    report = bridged.run(replay.run(until=later()))
    assert report.applied == history  # the openings too: the position moves past them
    assert projector.versions == EVERY_STREAM_IN_ORDER

    threaded = Ordered()  # the sync runner, on a boto3 store of the same tables, agrees
    boto3_store = DynamoDBEventStore.from_settings(dynamodb_settings)
    sync_report = runner(boto3_store, InMemoryPositionStore(), threaded).run(until=later())
    assert threaded.versions == projector.versions
    assert (sync_report.applied, sync_report.parked) == (report.applied, report.parked)

    again = bridged.run(replay.run(until=later()))  # from the checkpoints: nothing twice
    assert again.applied == 0
    assert projector.versions == EVERY_STREAM_IN_ORDER


def test_the_lanes_queries_are_in_flight_together_on_the_loops_thread(
    async_local_store: DynamoDBEventStore,
    bridged: BridgedLoop,
    history: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aio_client = async_local_store.client.aio_client
    in_flight = InFlight(aio_client)
    monkeypatch.setattr(aio_client, "query", in_flight.query)
    threads = threading.active_count()
    projector = Ordered(on_event=lambda *_: threads_seen.add(threading.get_ident()))
    threads_seen: set[int] = set()
    replay = AsyncCatchUpRunner(runner(async_local_store, InMemoryPositionStore(), projector))
    bridged.run(replay.run(until=later()))
    assert projector.versions == EVERY_STREAM_IN_ORDER
    assert in_flight.most > 1, "the lanes' Query pages were awaited one at a time"
    assert in_flight.threads == threads_seen == {threading.get_ident()}  # the loop's thread
    assert threading.active_count() == threads  # no thread was started


def test_each_lane_remembers_its_own_positions(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop, history: int
) -> None:
    # Each lane reads a stream's position once, then knows it: lanes sharing one memory (a
    # threading.local on the loop's one thread) would forget it when another lane finished.
    positions = CountingPositions()
    projector = Ordered()
    replay = AsyncCatchUpRunner(runner(async_local_store, positions, projector))
    bridged.run(replay.run(until=later()))
    assert projector.versions == EVERY_STREAM_IN_ORDER
    streams = {f"Account#{account}" for account in ACCOUNTS}
    assert set(positions.reads) == streams
    assert max(positions.reads.values()) == 1, positions.reads


def test_an_interrupted_run_stops_every_lane_and_resumes_from_their_checkpoints(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop, history: int
) -> None:
    positions = DynamoDBPositionStore(async_local_store)

    def interrupt(_: Envelope, applied: int) -> None:
        if applied >= 120:
            raise Interrupted

    options = {"checkpoint_interval": 0.0, "overlap": dt.timedelta(0)}
    first = AsyncCatchUpRunner(runner(async_local_store, positions, Ordered(interrupt), **options))
    with pytest.raises(Interrupted):
        bridged.run(first.run(until=later()))
    committed = sum(p.version for p in bridged.call(positions.positions, "ordered"))
    assert 0 < committed < history
    saved = [
        bridged.call(
            positions.get_checkpoint, feed_lane_checkpoint_key("ordered", lane, FEED_SHARDS)
        )
        for lane in range(FEED_SHARDS)
    ]
    assert any(saved), "each lane checkpoints as it goes"

    second = Ordered()
    replay = AsyncCatchUpRunner(runner(async_local_store, positions, second, **options))
    report = bridged.run(replay.run(until=later()))
    assert report.applied + report.skipped < history * 3 // 4  # resumed, not started over
    assert committed + report.applied == history  # every event exactly once
    for versions in second.versions.values():  # the rest of each stream, in order
        assert versions == list(range(versions[0], PER_ACCOUNT + 2))


def test_a_failing_lane_stops_the_others_after_their_current_chunk(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop, history: int
) -> None:
    def fail_first(envelope: Envelope, _: int) -> None:
        if (envelope.aggregate_id, envelope.version) == ("acc-0", 2):
            raise Interrupted  # in the first chunk of acc-0's lane

    # Positions on DynamoDB: every chunk waits for its transaction, so the lanes take turns on
    # the loop chunk by chunk (in memory, a lane would apply a whole page without yielding).
    positions = DynamoDBPositionStore(async_local_store)
    replay = AsyncCatchUpRunner(runner(async_local_store, positions, Ordered(fail_first)))
    with pytest.raises(Interrupted):
        bridged.run(replay.run(until=later()))
    committed = sum(p.version for p in bridged.call(positions.positions, "ordered"))
    # Lanes left to run on would apply the other lanes whole: three quarters of the history.
    assert committed < history // 2, committed


def test_a_cancelled_run_unwinds_every_lane_and_the_next_run_applies_the_rest_once(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop, history: int
) -> None:
    positions = DynamoDBPositionStore(async_local_store)
    task: asyncio.Task[Any] | None = None

    def cancel_once(_: Envelope, applied: int) -> None:
        if applied == 100 and task is not None:
            task.cancel()  # a handler runs on the loop's thread: as a caller's timeout would

    projector = Ordered(cancel_once)
    replay = AsyncCatchUpRunner(runner(async_local_store, positions, projector))

    async def cancelled() -> int:
        nonlocal task
        task = asyncio.ensure_future(replay.run(until=later()))
        with pytest.raises(asyncio.CancelledError):
            await task
        seen = sum(map(len, projector.versions.values()))
        await asyncio.sleep(0.3)  # a lane left running would go on applying meanwhile
        assert sum(map(len, projector.versions.values())) == seen
        return seen

    seen = bridged.run(cancelled())
    assert 100 <= seen < history - len(ACCOUNTS)  # the openings are not Deposited
    committed = sum(p.version for p in bridged.call(positions.positions, "ordered"))

    second = Ordered()
    report = bridged.run(
        AsyncCatchUpRunner(runner(async_local_store, positions, second)).run(until=later())
    )
    assert committed + report.applied == history  # every event exactly once
    for account, versions in second.versions.items():
        assert versions == list(range(versions[0], PER_ACCOUNT + 2)), account


def test_a_poison_event_is_parked_and_every_other_goes_on(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop, history: int
) -> None:
    def poison(envelope: Envelope, _: int) -> None:
        if (envelope.aggregate_id, envelope.version) == ("acc-3", 5):
            raise ValueError("cannot apply this one")

    positions = DynamoDBPositionStore(async_local_store)
    projector = Ordered(poison)
    replay = AsyncCatchUpRunner(runner(async_local_store, positions, projector, retry_delay=0.001))
    report = bridged.run(replay.run(until=later()))
    assert report.parked == ["ordered:Account#acc-3@5"]
    assert projector.versions == {**EVERY_STREAM_IN_ORDER, "acc-3": [2, 3, 4]}
    parked = bridged.call(positions.parked, "ordered")
    assert [(p.stream, p.parked.version if p.parked else None) for p in parked] == [
        ("Account#acc-3", 5)
    ]
