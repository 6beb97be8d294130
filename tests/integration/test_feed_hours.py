"""Reading the feed costs queries for the hours that hold events, not for every hour since the
table was created; the number of feed shards can change and old events still read (moto and
DynamoDB Local)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from framework import Application, DynamoDBEventStore, Projector, event_handler
from framework.errors import ConfigurationError
from framework.projections import CatchUpRunner, Envelope
from framework.store import InMemoryPositionStore
from framework.store.items import event_item
from framework.store.keys import FEED_MARKERS_SINCE_KEY, feed_key
from framework.testing.bank import Account, AccountOpened, Deposit, Deposited, OpenAccount
from framework.testing.records import COMMITTED_AT, new_events, plant_event_item
from tests.support.request_counter import RequestCounter


def markers_written_since(store: DynamoDBEventStore, moment: dt.datetime) -> None:
    """As if hour markers had been written since ``moment`` (a table that old, on this version)."""
    store.client.put_item(
        TableName=store.tables.aggregates,
        Item={"pk": {"S": FEED_MARKERS_SINCE_KEY}, "since": {"S": moment.isoformat()}},
    )


def test_two_empty_years_cost_a_request_per_hundred_hours(dynamodb: DynamoDBEventStore) -> None:
    app = Application(store=dynamodb, aggregates=[Account])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    app.handle(Deposit(account_id="a", amount=Decimal(1)))
    two_years_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=730)
    markers_written_since(dynamodb, two_years_ago - dt.timedelta(days=2))
    requests = RequestCounter(dynamodb.client)
    events = list(dynamodb.read_feed(since=two_years_ago))

    assert [(e.aggregate_id, e.version) for e in events] == [("a", 1), ("a", 2)]
    hours = 730 * 24
    assert requests.counts["BatchGetItem"] <= hours // 100 + 2  # was 4 queries an hour: 70,080
    assert requests.counts["Query"] <= 2 * 4  # the one or two hours that hold events


def test_a_parallel_replay_reads_the_hour_markers_once_for_all_its_lanes(
    dynamodb: DynamoDBEventStore,
) -> None:
    app = Application(store=dynamodb, aggregates=[Account])
    for account_id in ("a", "b", "c", "d"):
        app.handle(OpenAccount(account_id=account_id, owner="x"))
    a_year_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
    markers_written_since(dynamodb, a_year_ago - dt.timedelta(days=2))
    requests = RequestCounter(dynamodb.client)
    counter = Applied()
    CatchUpRunner(
        dynamodb, InMemoryPositionStore(), [counter], safety_window=dt.timedelta(0), workers=4
    ).run(since=a_year_ago)

    assert sorted(counter.applied) == [(a, 1) for a in ("a", "b", "c", "d")]
    hours = 365 * 24 + 1
    # Each of the four lanes read every marker itself before: four times this.
    assert requests.counts["BatchGetItem"] <= hours // 100 + 2


def test_more_feed_shards_later_and_every_event_still_reads(dynamodb: DynamoDBEventStore) -> None:
    wider = DynamoDBEventStore(dynamodb.client, table_prefix=dynamodb.tables.prefix, feed_shards=16)
    narrow_app = Application(store=dynamodb, aggregates=[Account])
    wide_app = Application(store=wider, aggregates=[Account])
    accounts = [f"acc-{n}" for n in range(24)]
    for account_id in accounts:
        narrow_app.handle(OpenAccount(account_id=account_id, owner="x"))
    for account_id in accounts:
        wide_app.handle(Deposit(account_id=account_id, amount=Decimal(1)))
    # Some streams land in shards the narrow store never wrote to.
    assert any(
        int(feed_key(f"Account#{a}", 2, dt.datetime.now(dt.UTC), 16)[0].split("#")[1]) >= 4
        for a in accounts
    )
    for reader in (dynamodb, wider):
        events = list(reader.read_feed())
        assert len(events) == 2 * len(accounts)
        versions: dict[str, list[int]] = {}
        for event in events:
            versions.setdefault(event.aggregate_id, []).append(event.version)
        assert all(found == [1, 2] for found in versions.values())
    # The parallel replay reads every shard any writer used, whatever the reader's own setting.
    assert dynamodb.feed_lanes() == 4  # every stream in one lane: crc % 16 % 4 == crc % 4
    counter = Applied()
    CatchUpRunner(
        dynamodb, InMemoryPositionStore(), [counter], safety_window=dt.timedelta(0), workers=4
    ).run()
    assert sorted(counter.applied) == sorted((a, v) for a in accounts for v in (1, 2))


class Applied(Projector, name="applied"):
    def __init__(self) -> None:
        super().__init__()
        self.applied: list[tuple[str, int]] = []

    def reset(self) -> None:
        self.applied.clear()

    @event_handler(AccountOpened)
    def _opened(self, event: AccountOpened, envelope: Envelope) -> None:
        self.applied.append((envelope.aggregate_id, envelope.version))

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        self.applied.append((envelope.aggregate_id, envelope.version))


def test_events_written_before_hour_markers_existed_still_read(
    dynamodb: DynamoDBEventStore,
) -> None:
    for event in new_events("old", 1, 3):  # stamped COMMITTED_AT, no marker anywhere
        plant_event_item(dynamodb, event_item(event))
    since = COMMITTED_AT.replace(minute=0, second=0, microsecond=0)
    assert [e.version for e in dynamodb.read_feed(since=since)] == [1, 2, 3]


def test_a_shard_count_must_be_a_whole_positive_number() -> None:
    with pytest.raises(ConfigurationError, match="feed_shards"):
        DynamoDBEventStore(feed_shards=0)
    with pytest.raises(ConfigurationError, match="DYNAMO_FEED_SHARDS"):
        DynamoDBEventStore.from_env({"DYNAMO_FEED_SHARDS": "four"})
    assert DynamoDBEventStore.from_env({"DYNAMO_FEED_SHARDS": "12"}).feed_shards == 12
