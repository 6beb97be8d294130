"""What only the DynamoDB store has: tables, transport failures, request counts, request tokens.

Tests parametrized over ``dynamodb`` run on moto and on DynamoDB Local; the ones that need what moto
does not implement (``ClientRequestToken``) use DynamoDB Local only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from unittest import mock

import botocore.awsrequest
import botocore.parsers
import pytest
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from framework import Application, DynamoDBEventStore, EveryNEvents
from framework.application import AggregateCache
from framework.errors import StoreUnavailable, TableMissing, Throttled
from framework.store.dynamodb.tables import FEED_INDEX
from framework.store.items import item_to_event
from framework.store.keys import feed_hour, split_stream
from framework.testing.bank import Account, Deposit, DepositMany, OpenAccount
from framework.testing.pytest_plugin import unique_prefix
from framework.testing.records import COMMITTED_AT, change_set
from tests.support.request_counter import RequestCounter
from tests.support.retries import NO_WAIT


def bank(store: DynamoDBEventStore, every: int = 100) -> Application:
    return Application(store=store, aggregates=[Account], snapshots={Account: EveryNEvents(every)})


# -- tables --------------------------------------------------------------------------------


def test_create_tables_is_idempotent_and_sets_up_streams_and_the_feed_index(
    dynamodb: DynamoDBEventStore,
) -> None:
    dynamodb.create_tables()  # second time: nothing to do, no error
    assert set(dynamodb.table_status().values()) == {"ACTIVE"}
    events = dynamodb.client.describe_table(TableName=dynamodb.tables.events)["Table"]
    assert events["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert [index["IndexName"] for index in events["GlobalSecondaryIndexes"]] == [FEED_INDEX]


def test_event_items_carry_the_feed_keys(dynamodb: DynamoDBEventStore) -> None:
    dynamodb.commit(change_set([("a1", 0, 2)]))
    items = dynamodb.client.scan(TableName=dynamodb.tables.events)["Items"]
    assert {item["feed_pk"]["S"][:10] for item in items} == {COMMITTED_AT.strftime("%Y%m%d%H")}
    assert sorted(item["feed_sk"]["S"] for item in items)[0].endswith("#Account#a1#0000000001")


def test_missing_tables_are_a_clear_error_and_nothing_is_created(
    dynamodb: DynamoDBEventStore,
) -> None:
    missing = DynamoDBEventStore(
        dynamodb.client, table_prefix=unique_prefix(), region_name=dynamodb.region_name
    )
    with pytest.raises(TableMissing, match=f"{missing.tables.aggregates}'? does not exist"):
        missing.commit(change_set([("a1", 0, 1)]))
    with pytest.raises(TableMissing, match=missing.tables.events):
        missing.load_events("Account", "a1")
    with pytest.raises(TableMissing, match=missing.tables.snapshots):
        missing.load_snapshot("Account", "a1")
    assert set(missing.table_status().values()) == {None}


def test_delete_tables_removes_everything(dynamodb: DynamoDBEventStore) -> None:
    dynamodb.delete_tables()
    assert set(dynamodb.table_status().values()) == {None}
    dynamodb.delete_tables()  # idempotent
    dynamodb.create_tables()  # so the fixture's own clean-up finds tables to delete


# -- requests per command ------------------------------------------------------------------


def test_requests_per_command(dynamodb: DynamoDBEventStore) -> None:
    app = Application(store=dynamodb, aggregates=[Account])
    requests = RequestCounter(dynamodb.client)
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    # The first events of the process in an hour mark the hour (and, once, when marking began).
    assert requests.operations == ["Query", "UpdateItem", "UpdateItem", "TransactWriteItems"]
    now = dt.datetime.now(dt.UTC)
    dynamodb.feed_hours.mark({feed_hour(now), feed_hour(now + dt.timedelta(hours=1))})
    requests.clear()
    app.handle(Deposit(account_id="a", amount=Decimal(1)))
    assert requests.operations == ["Query", "TransactWriteItems"]
    requests.clear()
    app.handle(Deposit(account_id="a", amount=Decimal(1)))
    assert requests.operations == ["Query", "TransactWriteItems"]
    with_snapshots = bank(dynamodb, every=2)
    requests.clear()
    with_snapshots.handle(Deposit(account_id="a", amount=Decimal(1)))
    assert requests.operations == ["GetItem", "Query", "TransactWriteItems"]
    hot = Application(store=dynamodb, aggregates=[Account], cache=AggregateCache())
    hot.handle(Deposit(account_id="a", amount=Decimal(1)))  # loads once, then stays cached
    requests.clear()
    hot.handle(Deposit(account_id="a", amount=Decimal(1)))
    assert requests.operations == ["TransactWriteItems"]


# -- failures on the wire ------------------------------------------------------------------


def _throttling_response(request: Any, **_: Any) -> botocore.awsrequest.AWSResponse:
    body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow"}'
    return botocore.awsrequest.AWSResponse(request.url, 400, HTTPHeaders(), _RawBody(body))


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


# moto answers requests inside botocore's own send hooks, so injected wire faults do not stop it
# from applying a request; these tests run against DynamoDB Local, over real HTTP.


@pytest.fixture
def impatient_store(local_store: DynamoDBEventStore) -> DynamoDBEventStore:
    """The same tables through a client that gives up after two tries, to keep tests fast."""
    return DynamoDBEventStore(
        table_prefix=local_store.tables.prefix,
        endpoint_url=local_store.endpoint_url,
        client_config=Config(retries={"total_max_attempts": 2, "mode": "standard"}),
    )


@pytest.mark.dynamodb_local
def test_throttling_that_outlasts_the_retries_is_a_typed_error_and_writes_nothing(
    impatient_store: DynamoDBEventStore,
) -> None:
    app = Application(store=impatient_store, aggregates=[Account], max_attempts=2, backoff=NO_WAIT)
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    sent: list[str] = []

    def throttle(request: Any, **_: Any) -> botocore.awsrequest.AWSResponse:
        sent.append(request.url)
        return _throttling_response(request)

    event_name = "before-send.dynamodb.TransactWriteItems"
    impatient_store.client.meta.events.register_first(event_name, throttle)
    with pytest.raises(Throttled, match="throttled"):
        app.handle(Deposit(account_id="a", amount=Decimal(1)))
    assert len(sent) == 4  # two botocore tries in each of two application attempts
    impatient_store.client.meta.events.unregister(event_name, throttle)
    assert [e.version for e in impatient_store.load_events("Account", "a")] == [1]


@pytest.mark.dynamodb_local
def test_throttling_that_passes_is_absorbed(impatient_store: DynamoDBEventStore) -> None:
    app = Application(store=impatient_store, aggregates=[Account], backoff=NO_WAIT)
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    remaining = {"throttles": 3}

    def throttle_a_few(request: Any, **_: Any) -> botocore.awsrequest.AWSResponse | None:
        if remaining["throttles"]:
            remaining["throttles"] -= 1
            return _throttling_response(request)
        return None

    impatient_store.client.meta.events.register_first(
        "before-send.dynamodb.TransactWriteItems", throttle_a_few
    )
    result = app.handle(Deposit(account_id="a", amount=Decimal(1)))
    assert result.version == 2 and remaining["throttles"] == 0
    assert [e.version for e in impatient_store.load_events("Account", "a")] == [1, 2]


@pytest.mark.dynamodb_local
def test_a_lost_answer_is_store_unavailable_and_a_retry_with_the_same_id_is_safe(
    impatient_store: DynamoDBEventStore,
) -> None:
    """The commit went through but its answer was lost: retrying the command must not double it."""
    store = impatient_store
    endpoint = store.endpoint_url
    assert endpoint is not None
    app = Application(store=store, aggregates=[Account])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    lost = {"answers": 0}

    def lose_the_answer(**_: Any) -> None:
        lost["answers"] += 1
        raise ReadTimeoutError(endpoint_url=endpoint)

    event_name = "after-call.dynamodb.TransactWriteItems"
    store.client.meta.events.register_first(event_name, lose_the_answer)
    with pytest.raises(StoreUnavailable, match="outcome of a commit is unknown"):
        app.handle(Deposit(account_id="a", amount=Decimal(5), command_id="dep-1"))
    store.client.meta.events.unregister(event_name, lose_the_answer)
    assert lost["answers"] == 1
    retried = app.handle(Deposit(account_id="a", amount=Decimal(5), command_id="dep-1"))
    assert retried.duplicate
    assert app.get(Account, "a").balance == Decimal(5)


@pytest.mark.dynamodb_local
def test_the_client_request_token_makes_a_resent_transaction_harmless(
    local_store: DynamoDBEventStore,
) -> None:
    committed = change_set([("a1", 0, 2)])
    local_store.commit(committed)
    local_store.commit(committed)  # same token, same request: DynamoDB answers success, no-op
    assert [e.version for e in local_store.load_events("Account", "a1")] == [1, 2]


# -- snapshots keep long streams cheap -----------------------------------------------------


@pytest.mark.dynamodb_local
def test_an_aggregate_with_thousands_of_events_loads_in_two_requests(
    local_store: DynamoDBEventStore,
) -> None:
    app = bank(local_store, every=100)
    app.handle(OpenAccount(account_id="long", owner="Ann"))
    amounts = tuple(Decimal(1) for _ in range(90))
    for _ in range(34):  # 3,060 deposits, 34 transactions of 90 events
        app.handle(DepositMany(account_id="long", amounts=amounts))
    requests = RequestCounter(local_store.client)
    account = app.get(Account, "long")
    assert (account.version, account.balance) == (3061, Decimal(3060))
    assert requests.operations == ["GetItem", "Query"]
    assert len(requests.operations) <= 2


def test_split_stream_keeps_ids_with_separators() -> None:
    assert split_stream("Account#a#b") == ("Account", "a#b")
    with pytest.raises(ValueError):
        split_stream("nohash")


def account_of_three_events(store: DynamoDBEventStore, account_id: str) -> Application:
    """A bank on ``store`` with one account: opened, then two deposits in one command."""
    app = bank(store, every=1000)
    app.handle(OpenAccount(account_id=account_id, owner="Ann"))
    app.handle(DepositMany(account_id=account_id, amounts=(Decimal("1.5"), Decimal(2))))
    return app


@pytest.mark.dynamodb_local
def test_a_stream_loads_without_the_feed_keys_and_decoded_as_botocore_would(
    local_store: DynamoDBEventStore,
) -> None:
    account_of_three_events(local_store, "lean")
    requests = RequestCounter(local_store.client)
    parsed_maps = []
    original = getattr(botocore.parsers.BaseJSONParser, "_handle_map")  # noqa: B009 - untyped

    def counting(self: Any, shape: Any, value: Any) -> Any:
        parsed_maps.append(shape.name)
        return original(self, shape, value)

    with mock.patch.object(botocore.parsers.BaseJSONParser, "_handle_map", counting):
        loaded = local_store.load_events("Account", "lean")
    assert parsed_maps == []  # the items were decoded from the JSON, not by botocore's parser
    ((operation, query),) = requests.requests
    assert operation == "Query" and query["ConsistentRead"] is True
    assert "feed_pk" not in query["ProjectionExpression"]
    assert "feed_sk" not in query["ProjectionExpression"]
    # A plain client (botocore's own parser, every attribute) reads the same records.
    plain = local_store.make_client("dynamodb").query(
        TableName=local_store.tables.events,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "Account#lean"}},
        ConsistentRead=True,
    )
    assert loaded == [item_to_event(item) for item in plain["Items"]]
    assert [record.version for record in loaded] == [1, 2, 3]
    assert isinstance(loaded[1].payload, bytes)


@pytest.mark.dynamodb_local
def test_an_aggregate_loads_from_four_attributes_of_each_item(
    local_store: DynamoDBEventStore,
) -> None:
    """The commit metadata is most of an event item: an aggregate's load asks for none of it."""
    app = account_of_three_events(local_store, "lean")
    requests = RequestCounter(local_store.client)
    assert app.get(Account, "lean").balance == Decimal("3.5")
    (query,) = [request for operation, request in requests.requests if operation == "Query"]
    assert query["ConsistentRead"] is True
    names = query.get("ExpressionAttributeNames", {})
    asked = {
        names.get(name.strip(), name.strip()) for name in query["ProjectionExpression"].split(",")
    }
    assert asked == {"sk", "event_type", "schema", "payload"}
    history = local_store.load_history("Account", "lean")
    assert [(e.version, e.event_type, e.payload) for e in history] == [
        (e.version, e.event_type, e.payload) for e in local_store.load_events("Account", "lean")
    ]
