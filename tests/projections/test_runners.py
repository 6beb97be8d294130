"""The same projector through every runner gives the same read model (DynamoDB Local).

Catch-up over the feed index, the DynamoDB Streams poller, and the Lambda handler fed with
real-shaped records taken from DynamoDB Local's own stream, redelivered and out of order.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError

from framework import Application, DynamoDBEventStore, InMemoryEventStore
from framework.errors import StoreUnavailable
from framework.projections import CatchUpRunner, StreamsPoller
from framework.projections.aws_lambda import make_handler
from framework.store import DynamoDBPositionStore, InMemoryPositionStore
from framework.store.dynamodb.streams import EventStreamReader
from framework.testing.bank import Account, Deposit, OpenAccount, Transfer, Withdraw, transfer
from tests.support.projectors import Balances, TableBalances, create_read_table, read_table

pytestmark = pytest.mark.dynamodb_local


class CatchUpBalances(TableBalances, name="catch-up-balances"):
    pass


class PolledBalances(TableBalances, name="polled-balances"):
    pass


class LambdaBalances(TableBalances, name="lambda-balances"):
    pass


def play_history(app: Application, *, seed: int = 1, commands: int = 60) -> None:
    accounts = ["a", "b", "c", "d"]
    for account_id in accounts:
        app.handle(OpenAccount(account_id=account_id, owner=account_id.upper()))
    rng = random.Random(seed)
    for _ in range(commands):
        roll = rng.random()
        amount = Decimal(rng.randint(1, 5000)) / 100
        if roll < 0.5:
            app.handle(Deposit(account_id=rng.choice(accounts), amount=amount))
        else:
            source, target = rng.sample(accounts, 2)
            balance = app.get(Account, source).balance
            if balance >= amount:
                if roll < 0.75:
                    app.handle(Withdraw(account_id=source, amount=amount))
                else:
                    app.handle(Transfer(source_id=source, target_id=target, amount=amount))


def truth(app: Application) -> dict[str, tuple[Decimal, int]]:
    """Balances and event counts straight from the aggregates."""
    result = {}
    for account_id in ["a", "b", "c", "d"]:
        account = app.get(Account, account_id)
        result[account_id] = (account.balance, account.version)
    return result


def lambda_records(store: DynamoDBEventStore) -> list[dict[str, Any]]:
    """The stream's records as Lambda receives them: JSON, binary values base64-encoded."""
    reader = EventStreamReader(store)
    records = []
    for shard in reader.shards():
        iterator = reader.client.get_shard_iterator(
            StreamArn=reader.stream_arn, ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = reader.client.get_records(ShardIterator=iterator)
            for raw in page["Records"]:
                records.append(_as_lambda_json(raw, reader.stream_arn))
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def _as_lambda_json(raw: dict[str, Any], arn: str) -> dict[str, Any]:
    def encode(value: dict[str, Any]) -> dict[str, Any]:
        ((kind, content),) = value.items()
        if kind == "B":
            return {"B": base64.b64encode(content).decode()}
        if kind == "M":
            return {"M": {k: encode(v) for k, v in content.items()}}
        return {kind: content}

    dynamodb = dict(raw["dynamodb"])
    dynamodb["NewImage"] = {k: encode(v) for k, v in dynamodb["NewImage"].items()}
    dynamodb.pop("ApproximateCreationDateTime", None)
    return {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": arn,
    }


def batches(records: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


@pytest.fixture
def bank(local_store: DynamoDBEventStore) -> Application:
    app = Application(store=local_store, aggregates=[Account], handlers=[transfer])
    play_history(app)
    return app


def test_every_runner_builds_the_same_read_model(
    local_store: DynamoDBEventStore, bank: Application
) -> None:
    positions = DynamoDBPositionStore(local_store)
    expected = truth(bank)

    catch_up_table = create_read_table(local_store, "catch-up")
    CatchUpRunner(local_store, positions, [CatchUpBalances(catch_up_table)]).run(
        until=_far_future()
    )

    polled_table = create_read_table(local_store, "polled")
    poller = StreamsPoller(local_store, positions, [PolledBalances(polled_table)])
    while poller.poll_once().applied:
        pass

    lambda_table = create_read_table(local_store, "lambda")
    handler = make_handler([LambdaBalances(lambda_table)], local_store, positions)
    records = lambda_records(local_store)
    assert records and all("B" in r["dynamodb"]["NewImage"]["payload"] for r in records)
    rng = random.Random(3)
    deliveries = list(batches(records, 7))
    deliveries.insert(3, deliveries[1])  # a batch delivered twice
    deliveries = [rng.sample(batch, len(batch)) for batch in deliveries]  # reordered
    for batch in deliveries:
        assert handler({"Records": batch}, None) == {"batchItemFailures": []}

    for table in (catch_up_table, polled_table, lambda_table):
        assert read_table(local_store, table) == expected

    memory = Balances()
    CatchUpRunner(local_store, InMemoryPositionStore(), [memory]).run(until=_far_future())
    assert {k: v[0] for k, v in expected.items()} == memory.balances


def test_catch_up_resumes_and_rebuilds(local_store: DynamoDBEventStore, bank: Application) -> None:
    positions = DynamoDBPositionStore(local_store)
    projector = Balances()
    runner = CatchUpRunner(local_store, positions, [projector], safety_window=_no_window())
    first = runner.run()
    bank.handle(Deposit(account_id="a", amount=Decimal("1.25")))
    second = runner.run()  # resumes in the last hour: re-reads it, applies only what is new
    assert second.applied == 1 and second.skipped >= first.applied
    assert projector.balances == {k: v[0] for k, v in truth(bank).items()}
    rebuilt = runner.rebuild()
    assert rebuilt.applied == first.applied + 1
    assert projector.balances == {k: v[0] for k, v in truth(bank).items()}
    assert sorted(projector.applied) == sorted(set(projector.applied))


def test_a_commit_that_fails_moves_neither_the_read_model_nor_the_position(
    local_store: DynamoDBEventStore, bank: Application
) -> None:
    """The read-model write and the position advance are one transaction: a crash between
    them is impossible, and redelivery afterwards gives exactly the right read model."""
    impatient = DynamoDBEventStore(
        table_prefix=local_store.tables.prefix,
        endpoint_url=local_store.endpoint_url,
        client_config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    positions = DynamoDBPositionStore(impatient)
    table = create_read_table(local_store, "crash")
    runner = CatchUpRunner(impatient, positions, [CatchUpBalances(table)])
    sent = {"transactions": 0}

    def crash_on_third_transaction(**_: Any) -> None:
        sent["transactions"] += 1
        if sent["transactions"] == 3:
            raise ConnectionClosedError(endpoint_url="the runner's host died mid-request")

    impatient.client.meta.events.register(
        "before-send.dynamodb.TransactWriteItems", crash_on_third_transaction
    )
    with pytest.raises(StoreUnavailable):
        runner.run(until=_far_future())
    half_way = read_table(local_store, table)
    positions_half_way = {p.stream: p.version for p in positions.positions("catch-up-balances")}
    for account_id, (_, events) in half_way.items():
        assert positions_half_way[f"Account#{account_id}"] == events  # in step, always

    runner.run(until=_far_future())  # the runner restarts: everything is delivered again
    assert read_table(local_store, table) == truth(bank)


def test_a_poller_restart_that_lost_its_checkpoints_doubles_nothing(
    local_store: DynamoDBEventStore, bank: Application
) -> None:
    positions = DynamoDBPositionStore(local_store)
    table = create_read_table(local_store, "restart")
    StreamsPoller(local_store, positions, [PolledBalances(table)]).poll_once()
    for key in _shard_checkpoints(local_store):
        local_store.client.delete_item(TableName=local_store.tables.positions, Key={"pk": key})
    restarted = StreamsPoller(local_store, positions, [PolledBalances(table)])
    report = restarted.poll_once()
    assert report.applied == 0 and report.skipped > 0
    assert read_table(local_store, table) == truth(bank)


def test_two_runners_racing_on_one_projector_apply_each_event_once(
    local_store: DynamoDBEventStore, bank: Application
) -> None:
    positions = DynamoDBPositionStore(local_store)
    table = create_read_table(local_store, "race")
    catch_up = CatchUpRunner(local_store, positions, [PolledBalances(table)])
    poller = StreamsPoller(local_store, positions, [PolledBalances(table)])
    threads = [
        threading.Thread(target=catch_up.run, kwargs={"until": _far_future()}),
        threading.Thread(target=poller.poll_once),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    poller.poll_once()
    assert read_table(local_store, table) == truth(bank)


def test_memory_store_feed_gives_the_same_model() -> None:
    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[Account], handlers=[transfer])
    play_history(app)
    projector = Balances()
    CatchUpRunner(store, InMemoryPositionStore(), [projector]).run(until=_far_future())
    assert projector.balances == {k: v[0] for k, v in truth(app).items()}


def _shard_checkpoints(store: DynamoDBEventStore) -> list[dict[str, Any]]:
    items = store.client.scan(TableName=store.tables.positions)["Items"]
    return [item["pk"] for item in items if item["pk"]["S"].startswith("shard#")]


def _far_future() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)


def _no_window() -> dt.timedelta:
    return dt.timedelta(0)
