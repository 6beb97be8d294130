"""Commands on DynamoDB Local: framework overhead, requests per command, load time, capacity.

1. Commands per second through ``Application.handle`` versus a hand-written boto3 loop that sends
   exactly the same requests (a consistent ``Query`` of the stream, then a ``TransactWriteItems``
   with the same three items and conditions), interleaved round by round.
2. Requests per command, counted with botocore event hooks: cold, with a snapshot policy, hot in
   the aggregate cache.
3. Loading an aggregate of 10,000 events with a snapshot every 100, against one of 1 event.
4. Capacity per command, summed from ``ConsumedCapacity`` (requested on every call by a hook).
5. The cost of checking what a command read: a command that reads one account and changes
   another (its commit carries a ``ConditionCheck`` on the account it read) against the very same
   command through a store wrapper that strips the checks from the change set (what the commit
   sent before read aggregates were checked), interleaved round by round; plus the capacity of
   one such command with and without the check.

    python -m bench.commands [--rounds 5] [--commands 200] [--only checks]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from bench.common import fresh_store, machine, markdown_table, median, start_dynamodb_local
from framework import Application, DynamoDBEventStore, EveryNEvents, NoSnapshots
from framework.application import AggregateCache
from framework.logs import configure_logging
from framework.mapping.formats import encode_json
from framework.store import ChangeSet
from framework.store.items import item_size, timestamp
from framework.store.keys import feed_key
from framework.testing.bank import (
    Account,
    Deposit,
    DepositMany,
    JointWithdraw,
    OpenAccount,
    joint_withdraw,
)
from tests.support.request_counter import RequestCounter

ACCOUNTS = 20


def raw_deposit(client: Any, store: DynamoDBEventStore, account_id: str, amount: Decimal) -> None:
    """One deposit by hand: the requests the framework sends, with nothing around them."""
    pk = f"Account#{account_id}"
    request: dict[str, Any] = {
        "TableName": store.tables.events,
        "KeyConditionExpression": "pk = :pk AND sk > :after",
        "ExpressionAttributeValues": {":pk": {"S": pk}, ":after": {"N": "0"}},
        "ConsistentRead": True,
    }
    version = 0
    while True:
        page = client.query(**request)
        version += len(page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    now = time.time()
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    change_set_id = str(uuid.uuid4())
    command_id = str(uuid.uuid4())
    feed_pk, feed_sk = feed_key(pk, version + 1, moment)
    stamp = timestamp(moment)
    client.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": store.tables.aggregates,
                    "Key": {"pk": {"S": pk}},
                    "UpdateExpression": "SET #v = :v, updated_at = :u, last_change_set_id = :c",
                    "ConditionExpression": "#v = :expected",
                    "ExpressionAttributeNames": {"#v": "version"},
                    "ExpressionAttributeValues": {
                        ":v": {"N": str(version + 1)},
                        ":u": {"S": stamp},
                        ":c": {"S": change_set_id},
                        ":expected": {"N": str(version)},
                    },
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Put": {
                    "TableName": store.tables.events,
                    "Item": {
                        "pk": {"S": pk},
                        "sk": {"N": str(version + 1)},
                        "event_type": {"S": "Deposited"},
                        "schema": {"N": "1"},
                        "payload": {"B": encode_json({"amount": str(amount)})},
                        "occurred_at": {"S": stamp},
                        "change_set_id": {"S": change_set_id},
                        "command_id": {"S": command_id},
                        "correlation_id": {"S": command_id},
                        "causation_id": {"S": command_id},
                        "feed_pk": {"S": feed_pk},
                        "feed_sk": {"S": feed_sk},
                    },
                    "ConditionExpression": "attribute_not_exists(sk)",
                }
            },
            {
                "Put": {
                    "TableName": store.tables.aggregates,
                    "Item": {
                        "pk": {"S": f"command#{command_id}"},
                        "change_set_id": {"S": change_set_id},
                        "result": {"B": b'{"change_set_id":"x","versions":{}}'},
                        "expires_at": {"N": str(int(now) + 7 * 86400)},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ],
        ClientRequestToken=change_set_id,
    )


def overhead(store: DynamoDBEventStore, rounds: int, commands: int) -> list[list[str]]:
    app = Application(store=store, aggregates=[Account], snapshots={Account: NoSnapshots()})
    framework_ids = [f"fw-{i}" for i in range(ACCOUNTS)]
    raw_ids = [f"raw-{i}" for i in range(ACCOUNTS)]
    for account_id in framework_ids + raw_ids:
        app.handle(OpenAccount(account_id=account_id, owner="bench"))
    client = store.client
    framework_rates, raw_rates = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for index in range(commands):
            app.handle(Deposit(account_id=framework_ids[index % ACCOUNTS], amount=Decimal(1)))
        framework_rates.append(commands / (time.perf_counter() - started))
        started = time.perf_counter()
        for index in range(commands):
            raw_deposit(client, store, raw_ids[index % ACCOUNTS], Decimal(1))
        raw_rates.append(commands / (time.perf_counter() - started))
    framework_rate, raw_rate = median(framework_rates), median(raw_rates)
    return [
        [
            "commands/s, Application.handle vs hand-written boto3 loop",
            f"{framework_rate:,.0f} vs {raw_rate:,.0f}",
            f"{framework_rate / raw_rate:.2f}",
            ">= 0.85",
        ]
    ]


def requests_per_command(store: DynamoDBEventStore) -> list[list[str]]:
    counter = RequestCounter(store.client, capacity=True)
    cold = Application(store=store, aggregates=[Account])
    snapshotted = Application(
        store=store, aggregates=[Account], snapshots={Account: EveryNEvents(3)}
    )
    hot = Application(store=store, aggregates=[Account], cache=AggregateCache())
    for account_id in ("cold", "snapshotted", "hot"):
        cold.handle(OpenAccount(account_id=account_id, owner="bench"))
    hot.handle(Deposit(account_id="hot", amount=Decimal(1)))  # loads it once, into the cache
    rows = []
    for label, app, account_id, expected in (
        ("requests per command, cold aggregate", cold, "cold", 2),
        ("requests per command, with a snapshot policy", snapshotted, "snapshotted", 3),
        ("requests per command, hot aggregate in the cache", hot, "hot", 1),
    ):
        counter.clear()
        app.handle(Deposit(account_id=account_id, amount=Decimal(1)))
        operations = counter.operations
        rows.append([label, " + ".join(operations), str(len(operations)), f"= {expected}"])
    return rows


def load_time(store: DynamoDBEventStore, rounds: int) -> list[list[str]]:
    app = Application(store=store, aggregates=[Account], snapshots={Account: EveryNEvents(100)})
    app.handle(OpenAccount(account_id="long", owner="bench"))
    app.handle(OpenAccount(account_id="short", owner="bench"))
    amounts = tuple(Decimal(1) for _ in range(90))
    for _ in range(111):  # 9,990 deposits: 10,000 events with the opening (rounded to 9,991)
        app.handle(DepositMany(account_id="long", amounts=amounts))
    app.handle(DepositMany(account_id="long", amounts=tuple(Decimal(1) for _ in range(9))))
    assert app.get(Account, "long").version == 10_000
    long_times, short_times = [], []
    for _ in range(rounds * 10):
        started = time.perf_counter()
        app.get(Account, "long")
        long_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        app.get(Account, "short")
        short_times.append(time.perf_counter() - started)
    long_ms, short_ms = median(long_times) * 1000, median(short_times) * 1000
    return [
        [
            "load, 10,000 events + snapshot every 100 vs 1 event (ms)",
            f"{long_ms:.2f} vs {short_ms:.2f}",
            f"{long_ms / short_ms:.2f}",
            "<= 1.5",
        ]
    ]


def capacity(store: DynamoDBEventStore) -> list[list[str]]:
    counter = RequestCounter(store.client, capacity=True)
    app = Application(store=store, aggregates=[Account])
    app.handle(OpenAccount(account_id="capacity", owner="bench"))
    counter.clear()
    app.handle(Deposit(account_id="capacity", amount=Decimal("1234.56")))
    event = store.client.query(
        TableName=store.tables.events,
        KeyConditionExpression="pk = :pk AND sk = :v",
        ExpressionAttributeValues={":pk": {"S": "Account#capacity"}, ":v": {"N": "2"}},
    )["Items"][0]
    return [
        [
            "capacity of one deposit (read units / write units)",
            f"{counter.read_units:g} RCU / {counter.write_units:g} WCU",
            f"event item {item_size(event)} bytes",
            "event item < 1 KB (1 WCU, x2 in a transaction)",
        ]
    ]


class WithoutReadChecks:
    """The store, with the version checks of read-but-unchanged aggregates stripped from commits.

    The baseline of the read-check measure: the same application, the same command and the same
    transaction, minus the ``ConditionCheck`` items (what a commit sent before they existed).
    """

    def __init__(self, inner: DynamoDBEventStore) -> None:
        self.inner = inner

    def commit(self, change_set: ChangeSet) -> None:
        self.inner.commit(attrs.evolve(change_set, checks=()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def read_checks(store: DynamoDBEventStore, rounds: int, commands: int) -> list[list[str]]:
    checked = Application(store=store, aggregates=[Account], handlers=[joint_withdraw])
    unchecked = Application(
        store=WithoutReadChecks(store),  # type: ignore[arg-type]
        aggregates=[Account],
        handlers=[joint_withdraw],
    )
    pairs: dict[str, list[str]] = {
        side: [f"{side}-{i}" for i in range(ACCOUNTS)] for side in ("checked", "unchecked")
    }
    for account_id in pairs["checked"] + pairs["unchecked"]:
        checked.handle(OpenAccount(account_id=account_id, owner="bench"))
        checked.handle(OpenAccount(account_id=f"{account_id}-reserve", owner="bench"))
        checked.handle(Deposit(account_id=f"{account_id}-reserve", amount=Decimal(10**9)))

    def run(app: Application, ids: list[str]) -> float:
        started = time.perf_counter()
        for index in range(commands):
            account_id = ids[index % ACCOUNTS]
            app.handle(
                JointWithdraw(
                    account_id=account_id, partner_id=f"{account_id}-reserve", amount=Decimal(1)
                )
            )
        return commands / (time.perf_counter() - started)

    checked_rates, unchecked_rates = [], []
    for _ in range(rounds):
        checked_rates.append(run(checked, pairs["checked"]))
        unchecked_rates.append(run(unchecked, pairs["unchecked"]))
    checked_rate, unchecked_rate = median(checked_rates), median(unchecked_rates)

    counter = RequestCounter(store.client, capacity=True)
    units = []
    for app, account_id in ((checked, "checked-0"), (unchecked, "unchecked-0")):
        counter.clear()
        app.handle(
            JointWithdraw(
                account_id=account_id, partner_id=f"{account_id}-reserve", amount=Decimal(1)
            )
        )
        units.append(f"{counter.read_units:g} RCU / {counter.write_units:g} WCU")
    return [
        [
            "commands/s, read one account + change another: with the read check vs without",
            f"{checked_rate:,.0f} vs {unchecked_rate:,.0f}",
            f"{checked_rate / unchecked_rate:.2f}",
            "measured (no target)",
        ],
        [
            "capacity of that command, with the read check vs without",
            f"{units[0]} vs {units[1]}",
            "1 transaction item more",
            "measured (no target)",
        ],
    ]


CASES: dict[str, Callable[[str, argparse.Namespace], list[list[str]]]] = {
    "overhead": lambda url, a: overhead(fresh_store(url), a.rounds, a.commands),
    "requests": lambda url, a: requests_per_command(fresh_store(url)),
    "load": lambda url, a: load_time(fresh_store(url), a.rounds),
    "capacity": lambda url, a: capacity(fresh_store(url)),
    "checks": lambda url, a: read_checks(fresh_store(url), a.rounds, a.commands),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument(
        "--only",
        choices=sorted(CASES),
        action="append",
        help="run only this measure (repeatable); default: all of them",
    )
    arguments = parser.parse_args(argv)
    configure_logging("WARNING")
    server = start_dynamodb_local()
    try:
        rows = []
        for name in arguments.only or list(CASES):
            rows += CASES[name](server.endpoint_url, arguments)
    finally:
        server.stop()
    print(
        f"Commands on DynamoDB Local ({machine()}), "
        f"medians of {arguments.rounds} interleaved rounds:\n"
    )
    print(markdown_table(["measure", "measured", "ratio / count", "target"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
