"""The Streams poller survives what a retry cures, and two pollers of one projector share the
work through a lease (DynamoDB Local, its own stream)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError

from framework import Application, DynamoDBEventStore
from framework.application import Backoff
from framework.projections import StreamsPoller
from framework.projections.engine import ApplyReport
from framework.store import DynamoDBPositionStore
from framework.testing.bank import Account, Deposit, OpenAccount
from tests.support.projectors import TableBalances, create_read_table, read_table
from tests.support.timing import wait_until

pytestmark = pytest.mark.dynamodb_local


@pytest.fixture
def bank(local_store: DynamoDBEventStore) -> Application:
    app = Application(store=local_store, aggregates=[Account])
    for account_id in ("a", "b"):
        app.handle(OpenAccount(account_id=account_id, owner=account_id))
        app.handle(Deposit(account_id=account_id, amount=Decimal(5)))
    return app


def test_the_poller_backs_off_and_resumes_after_dropped_connections(
    local_store: DynamoDBEventStore, bank: Application
) -> None:
    impatient = DynamoDBEventStore(  # botocore gives up at once, so the poller sees each failure
        table_prefix=local_store.tables.prefix,
        endpoint_url=local_store.endpoint_url,
        client_config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    table = create_read_table(local_store, "resilient")
    poller = StreamsPoller(
        impatient,
        DynamoDBPositionStore(impatient),
        [TableBalances(table)],
        backoff=Backoff(base=0.01, cap=0.05),
    )
    dropped = {"count": 0}

    def drop_three_reads(request: Any, **_: Any) -> None:
        if "GetRecords" in str(request.headers.get("X-Amz-Target")) and dropped["count"] < 3:
            dropped["count"] += 1
            raise ConnectionClosedError(endpoint_url="the connection dropped")

    poller.reader.client.meta.events.register("before-send", drop_three_reads)
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), kwargs={"interval": 0.05})
    thread.start()
    try:
        wait_until(lambda: read_table(local_store, table).get("b") == (Decimal(5), 2))
        bank.handle(Deposit(account_id="a", amount=Decimal(1)))  # and it keeps following
        wait_until(lambda: read_table(local_store, table).get("a") == (Decimal(6), 3))
    finally:
        stop.set()
        thread.join(10)
    assert dropped["count"] == 3 and not thread.is_alive()


class CountingPoller(StreamsPoller):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.polls = 0

    def poll_once(self) -> ApplyReport:
        self.polls += 1
        return super().poll_once()


def test_a_second_poller_stands_by_then_takes_over(
    local_store: DynamoDBEventStore, bank: Application
) -> None:
    table = create_read_table(local_store, "leased")
    positions = DynamoDBPositionStore(local_store)
    # Long enough that a loaded machine never lets it lapse between renewals; the takeover below
    # does not wait for it to expire: a stopping poller releases its lease.
    lease = dt.timedelta(seconds=10)
    first = CountingPoller(local_store, positions, [TableBalances(table)], lease=lease)
    second = CountingPoller(local_store, positions, [TableBalances(table)], lease=lease)
    stop_first, stop_second = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=first.run, args=(stop_first,), kwargs={"interval": 0.05}),
        threading.Thread(target=second.run, args=(stop_second,), kwargs={"interval": 0.05}),
    ]
    threads[0].start()
    wait_until(lambda: first.polls > 0)
    threads[1].start()
    try:
        wait_until(lambda: read_table(local_store, table).get("b") == (Decimal(5), 2))
        time.sleep(0.3)
        assert second.polls == 0  # standing by while the first holds the lease

        stop_first.set()  # the first stops (and releases the lease): the second takes over
        threads[0].join(10)
        bank.handle(Deposit(account_id="b", amount=Decimal(2)))
        wait_until(lambda: read_table(local_store, table).get("b") == (Decimal(7), 3))
        assert second.polls > 0
    finally:
        stop_first.set()
        stop_second.set()
        for thread in threads:
            thread.join(10)
    assert read_table(local_store, table) == {"a": (Decimal(5), 2), "b": (Decimal(7), 3)}


def test_an_expired_lease_is_taken_over(local_store: DynamoDBEventStore) -> None:
    positions = DynamoDBPositionStore(local_store)
    short = dt.timedelta(milliseconds=200)
    assert positions.acquire_lease("streams#x", "one", short)
    assert not positions.acquire_lease("streams#x", "two", short)
    assert positions.acquire_lease("streams#x", "one", short)  # renewing is taking again
    time.sleep(0.3)
    assert positions.acquire_lease("streams#x", "two", short)  # the holder died
    positions.release_lease("streams#x", "one")  # not its lease any more: no effect
    assert not positions.acquire_lease("streams#x", "one", short)
