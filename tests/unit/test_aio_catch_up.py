"""``AsyncCatchUpRunner`` on the in-memory store, and the engine's lanes as greenlets on one loop:
each lane keeps its own memory, and a handler that waits on the loop inside the handler lock
does not deadlock the others."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from decimal import Decimal

import pytest

from framework import Application, InMemoryEventStore, Projector, event_handler
from framework.aio import AsyncCatchUpRunner, in_bridge, run_in_greenlet, wait_for
from framework.errors import DefinitionError
from framework.projections import (
    CatchUpRunner,
    Envelope,
    EventBridgePublisher,
    ProjectionEngine,
)
from framework.store import InMemoryPositionStore
from framework.store.keys import feed_checkpoint_key
from framework.store.records import StoredEvent
from framework.testing.bank import Account, Deposited, DepositMany, OpenAccount
from tests.support.stores import CountingPositions

ACCOUNTS = ["a", "b", "c"]


class Ordered(Projector, name="ordered"):
    """Records the versions it applies per stream; ``waits`` makes each handler call wait on
    the loop (as a handler doing I/O does), inside the engine's handler lock."""

    def __init__(self, *, waits: bool = False) -> None:
        super().__init__()
        self.versions: dict[str, list[int]] = {}
        self.waits = waits

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        if self.waits and in_bridge():
            wait_for(asyncio.sleep(0.001))
        self.versions.setdefault(envelope.aggregate_id, []).append(envelope.version)

    def reset(self) -> None:
        self.versions.clear()


@pytest.fixture
def store() -> InMemoryEventStore:
    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[Account])
    for account in ACCOUNTS:
        app.handle(OpenAccount(account_id=account, owner=account))
        app.handle(DepositMany(account_id=account, amounts=(Decimal(1),) * 6))
    return store


def later() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)


def stream_events(store: InMemoryEventStore, account: str) -> list[StoredEvent]:
    return store.load_events("Account", account, 0)


def test_run_and_rebuild_on_the_in_memory_store(store: InMemoryEventStore) -> None:
    positions = InMemoryPositionStore()
    projector = Ordered()
    runner = CatchUpRunner(
        store, positions, [projector], safety_window=dt.timedelta(0), chunk_size=4
    )
    replay = AsyncCatchUpRunner(runner)

    async def scenario() -> None:
        report = await replay.run(until=later())
        assert report.applied == len(ACCOUNTS) * 7
        assert projector.versions == {account: list(range(2, 8)) for account in ACCOUNTS}
        assert positions.get_checkpoint(feed_checkpoint_key("ordered")) is not None
        again = await replay.run(until=later())
        # From the checkpoint less the overlap: read again, applied no second time.
        assert (again.applied, again.skipped) == (0, len(ACCOUNTS) * 7)
        rebuilt = await replay.rebuild()
        assert rebuilt.applied == len(ACCOUNTS) * 7
        assert projector.versions == {account: list(range(2, 8)) for account in ACCOUNTS}

    asyncio.run(scenario())


def test_lanes_on_one_thread_each_remember_their_own_positions(store: InMemoryEventStore) -> None:
    # Lane A enters its memory, then lane B; A leaves while B still applies. A memory kept per
    # thread would be one for both lanes, and A's leaving would make B forget its streams.
    positions = CountingPositions()
    engine = ProjectionEngine(Ordered(), store, positions)
    b_entered, a_left = threading.Event(), threading.Event()

    def lane_a() -> None:
        with engine.remembering():
            while not b_entered.is_set():
                wait_for(asyncio.sleep(0))
            engine.apply(stream_events(store, "a"))
        a_left.set()

    def lane_b() -> None:
        events = stream_events(store, "b")
        with engine.remembering():
            b_entered.set()
            engine.apply(events[:4])
            while not a_left.is_set():
                wait_for(asyncio.sleep(0))
            engine.apply(events[4:])

    async def both() -> None:
        await asyncio.gather(run_in_greenlet(lane_a), run_in_greenlet(lane_b))

    asyncio.run(both())
    assert positions.reads == {"Account#a": 1, "Account#b": 1}


def test_a_handler_waiting_on_the_loop_inside_the_handler_lock_lets_the_other_lanes_wait_their_turn(
    store: InMemoryEventStore,
) -> None:
    # Several lanes' handlers share the engine's lock; one waits on the loop while holding it.
    # Taking the lock with a blocking acquire would stop the loop's one thread for good.
    projector = Ordered(waits=True)
    engine = ProjectionEngine(projector, store, InMemoryPositionStore())

    async def lanes() -> None:
        await asyncio.gather(
            *(run_in_greenlet(engine.apply, stream_events(store, account)) for account in ACCOUNTS)
        )

    done = threading.Event()

    def on_a_loop() -> None:
        asyncio.run(lanes())
        done.set()

    threading.Thread(target=on_a_loop, daemon=True).start()  # a deadlock hangs it, not the test
    assert done.wait(20), "the lanes deadlocked on the handler lock"
    assert projector.versions == {account: list(range(2, 8)) for account in ACCOUNTS}


def test_the_eventbridge_publisher_is_refused(store: InMemoryEventStore) -> None:
    class Publisher(EventBridgePublisher):
        source = "tests"

    runner = CatchUpRunner(store, InMemoryPositionStore(), [Publisher()])
    with pytest.raises(DefinitionError, match="async catch-up runner"):
        AsyncCatchUpRunner(runner)
