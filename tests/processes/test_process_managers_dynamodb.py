"""A process manager on DynamoDB Local, driven by the real runners: the catch-up runner and the
Streams poller racing over the same events issue each command once, the deadlines it schedules
are stored once and fired once, and what the fired commands cause is followed in turn."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

import pytest

from framework import DynamoDBEventStore
from framework.projections import CatchUpRunner, StreamsPoller
from framework.projections.deadlines import DeadlineRunner, DeadlineStatus
from framework.projections.dynamodb_deadlines import DynamoDBDeadlineStore
from framework.store.dynamodb.positions import DynamoDBPositionStore
from tests.support.processes import (
    PAYMENT_WINDOW,
    Allocation,
    Allocator,
    Fulfilment,
    Order,
    PayOrder,
    PlaceOrder,
    Stock,
    order_application,
)


def test_runners_racing_issue_once_and_deadlines_fire_once(
    dynamodb_store: DynamoDBEventStore, dynamodb_deadlines: DynamoDBDeadlineStore
) -> None:
    app = order_application(dynamodb_store)
    deadlines = dynamodb_deadlines
    positions = DynamoDBPositionStore(dynamodb_store)
    orders = [f"order-{i}" for i in range(6)]
    for order_id in orders:
        app.handle(PlaceOrder(order_id=order_id, sku="apple"))
    for order_id in orders[:2]:
        app.handle(PayOrder(order_id=order_id))

    def managers() -> tuple[CatchUpRunner, StreamsPoller]:
        return (
            CatchUpRunner(dynamodb_store, positions, [Fulfilment(app, deadlines=deadlines)]),
            StreamsPoller(dynamodb_store, positions, [Fulfilment(app, deadlines=deadlines)]),
        )

    catch_up, poller = managers()
    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    threads = [
        threading.Thread(target=catch_up.run, kwargs={"until": far}),
        threading.Thread(target=poller.poll_once),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while poller.poll_once().applied:
        pass
    _, again = managers()  # a restart that lost nothing still doubles nothing
    again.poll_once()

    stock = app.get(Stock, "apple")
    assert sorted(stock.reserved) == sorted(orders)
    assert stock.version == len(orders)  # each Reserve applied once
    stored = {d.deadline_id: d for d in deadlines.list()}
    assert set(stored) == {Fulfilment.deadline_id(o) for o in orders}
    cancelled = {Fulfilment.deadline_id(o) for o in orders[:2]}
    assert {i for i, d in stored.items() if d.status is DeadlineStatus.CANCELLED} == cancelled

    due = max(d.due_at for d in stored.values())
    assert due <= dt.datetime.now(dt.UTC) + PAYMENT_WINDOW
    reports = [DeadlineRunner(app, deadlines).run_due(due) for _ in range(2)]
    assert [r.fired for r in reports] == [len(orders) - 2, 0]
    while poller.poll_once().applied:
        pass
    stock = app.get(Stock, "apple")
    assert sorted(stock.reserved) == sorted(orders[:2])  # expired orders released theirs
    assert stock.version == len(orders) + len(orders) - 2


def test_a_state_and_the_event_it_handled_commit_together_on_dynamodb(
    dynamodb_store: DynamoDBEventStore,
) -> None:
    app = order_application(dynamodb_store)
    for order_id in ("o1", "o2"):
        app.handle(PlaceOrder(order_id=order_id, sku="pear"))

    class CrashOnAdvance(DynamoDBPositionStore):
        def advance_many(self, projector: str, moves: Sequence[tuple[str, int, int]]) -> list[str]:
            raise RuntimeError("crash before the positions were written")

    allocator = Allocator(app)
    safe = dt.timedelta(0)
    with pytest.raises(RuntimeError):
        CatchUpRunner(
            dynamodb_store, CrashOnAdvance(dynamodb_store), [allocator], safety_window=safe
        ).run()
    positions = DynamoDBPositionStore(dynamodb_store)
    report = CatchUpRunner(dynamodb_store, positions, [allocator], safety_window=safe).run()
    assert report.parked == []
    # Streams interleave in no set order: one order got the unit, the other none.
    (winner,) = app.get(Stock, "pear").reserved
    (loser,) = {"o1", "o2"} - {winner}
    assert app.get(Order, winner).state == "placed" and app.get(Order, loser).state == "expired"
    allocation = app.get(Allocation, "pear")
    assert allocation.given == 1 and allocation.handled == {"Order#o1": 1, "Order#o2": 1}
