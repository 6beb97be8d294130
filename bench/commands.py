"""Commands on DynamoDB Local: framework overhead, requests and capacity per command, load time.

Every measure runs its sides in a rotated order (each side goes first in turn) and prints the
median with the range of its rounds; DynamoDB Local slows down with every Streams record it has
ever written, so the command measure restarts it (and warms it up) every round and the load
measure restarts it before it starts and warms it up again every round.

1. Commands per second through ``Application.handle``, cold (stream read every time) and hot
   (the aggregate cache), against hand-written boto3 loops: a consistent ``Query`` of the stream,
   then a ``TransactWriteItems`` of two items (the aggregate's conditional update and the event)
   or of the framework's own three (the command-id record too); accounts of ~100 events.
2. Requests per command, counted with botocore event hooks: cold, with a snapshot policy, hot.
3. Loading across the snapshot interval (a snapshot every 100): aggregates of 10,000 events
   standing at a snapshot, half-way to the next and one event short of it, each against an
   aggregate of 1 event.
4. Capacity per command: the units DynamoDB Local reports (``ReturnConsumedCapacity``) and the
   write units DynamoDB's pricing rule gives for the items sent, per side.
5. What keeping recent command ids on the aggregate's own item (instead of a record of their
   own) would cost: write units of the aggregate item by the number of ids it holds.
6. The cost of checking what a command read: a command that reads one account and changes
   another against the very same command through a store wrapper that strips the checks.

    python -m bench.commands [--rounds 5] [--commands 200] [--history 100] [--events 10000]
                             [--only overhead|requests|load|capacity|forms|checks]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import attrs

from bench.common import (
    fresh_store,
    grow_account,
    machine,
    markdown_table,
    median,
    start_dynamodb_local,
)
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
from framework.testing.dynamodb_local import DynamoDBLocal
from tests.support.request_counter import RequestCounter

ACCOUNTS = 20


def spread(values: Sequence[float], digits: int = 2, scale: float = 1.0) -> str:
    """The median with the range of the rounds beside it: ``1.23 (1.10-1.40)``."""
    low, mid, high = (value * scale for value in (min(values), median(values), max(values)))
    return f"{mid:,.{digits}f} ({low:,.{digits}f}-{high:,.{digits}f})"


def rotated(sides: Sequence[str], round_index: int) -> list[str]:
    """The sides in the order they run in round ``round_index``: each goes first in turn."""
    shift = round_index % len(sides)
    return [*sides[shift:], *sides[:shift]]


def raw_deposit(
    client: Any,
    store: DynamoDBEventStore,
    account_id: str,
    amount: Decimal,
    *,
    command_item: bool = True,
) -> None:
    """One deposit by hand: a consistent ``Query`` of the stream, then one transaction.

    The transaction holds the aggregate's conditional update and the event, plus, with
    ``command_item``, the command-id record the framework writes: the two hand-written
    baselines. The loop only counts the stream's items (it decodes and applies nothing).
    """
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
    items: list[dict[str, Any]] = [
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
    ]
    if command_item:
        items.append(
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
            }
        )
    client.transact_write_items(TransactItems=items, ClientRequestToken=change_set_id)


def grow(app: Application, account_id: str, events: int) -> None:
    """Open the account and deposit until its stream holds ``events`` events, 50 a command."""
    app.handle(OpenAccount(account_id=account_id, owner="bench"))
    left = events - 1
    while left > 0:
        step = min(left, 50)
        app.handle(
            DepositMany(account_id=account_id, amounts=tuple(Decimal(1) for _ in range(step)))
        )
        left -= step


COMMAND_SIDES = ("cold", "hot", "two items", "three items")
"""The sides of the command measure: ``Application.handle`` without and with the aggregate
cache, and the hand-written loops sending a two-item and a three-item transaction."""


def _command_round(
    endpoint: str, round_index: int, commands: int, history: int
) -> dict[str, float]:
    """One round on a fresh store: every side's commands per second, in rotated order.

    Each side has its own ``ACCOUNTS`` accounts, each grown to ``history`` events first, so the
    cold sides read streams of about that length; the hot side's cache is filled by one command
    per account before the clock starts, and every side gets the same untimed first pass.
    """
    store = fresh_store(endpoint)
    cold = Application(store=store, aggregates=[Account], snapshots={Account: NoSnapshots()})
    hot = Application(
        store=store,
        aggregates=[Account],
        snapshots={Account: NoSnapshots()},
        cache=AggregateCache(),
    )
    ids = {side: [f"{side}-{i}" for i in range(ACCOUNTS)] for side in COMMAND_SIDES}
    for side_ids in ids.values():
        for account_id in side_ids:
            grow(cold, account_id, history)
    client = store.client

    def send(side: str, account_id: str) -> None:
        if side == "cold":
            cold.handle(Deposit(account_id=account_id, amount=Decimal(1)))
        elif side == "hot":
            hot.handle(Deposit(account_id=account_id, amount=Decimal(1)))
        else:
            raw_deposit(client, store, account_id, Decimal(1), command_item=side == "three items")

    for side in COMMAND_SIDES:  # untimed: fills the cache, warms every path alike
        for account_id in ids[side]:
            send(side, account_id)
    rates = {}
    for side in rotated(COMMAND_SIDES, round_index):
        side_ids = ids[side]
        started = time.perf_counter()
        for index in range(commands):
            send(side, side_ids[index % ACCOUNTS])
        rates[side] = commands / (time.perf_counter() - started)
    return rates


def overhead(
    server: DynamoDBLocal, rounds: int, commands: int, history: int = 100
) -> list[list[str]]:
    """Commands per second of each side, DynamoDB Local restarted (and warmed) every round."""
    per_round: list[dict[str, float]] = []
    for round_index in range(rounds):
        if round_index:
            server.stop()
            server.start()
            server.warm_up()
        per_round.append(_command_round(server.endpoint_url, round_index, commands, history))

    def row(label: str, side: str, baseline: str, target: str) -> list[str]:
        """``side`` against ``baseline``: both rates' medians, and the ratio's median and spread."""
        side_rates = [rates[side] for rates in per_round]
        baseline_rates = [rates[baseline] for rates in per_round]
        ratios = [rates[side] / rates[baseline] for rates in per_round]
        return [
            label,
            f"{spread(side_rates, 0)} vs {spread(baseline_rates, 0)}",
            spread(ratios),
            target,
        ]

    streams = f"streams of ~{history} events"
    return [
        row(
            f"commands/s, cold `Application.handle` vs the two-item loop ({streams})",
            "cold",
            "two items",
            ">= 0.85",
        ),
        row(
            "commands/s, hot (aggregate cache) `Application.handle` vs the two-item loop",
            "hot",
            "two items",
            ">= 1.5",
        ),
        row(
            "commands/s, cold `Application.handle` vs the three-item loop (its own requests)",
            "cold",
            "three items",
            "measured",
        ),
        row(
            "commands/s, the three-item loop vs the two-item loop (the command record's cost)",
            "three items",
            "two items",
            "measured",
        ),
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


LOAD_SIDES = ("1 event", "at a snapshot", "half-way", "just before the next")
"""The aggregates of the load measure: one of a single event, and three long ones standing at
different points of their snapshot interval (no event after the snapshot, half an interval,
one event short of the next snapshot)."""

SNAPSHOT_EVERY = 100


def load_interval(
    server: DynamoDBLocal, rounds: int, events: int = 10_000, loads: int = 20
) -> list[list[str]]:
    """Loading a long aggregate across its snapshot interval, against a 1-event aggregate.

    Three aggregates of ``events`` events (a multiple of ``SNAPSHOT_EVERY``) are grown, then
    two of them by half an interval and by one event short of a whole one. Each round re-warms
    DynamoDB Local, then loads every aggregate ``loads`` times, the sides in rotated order; a
    side's figure for the round is the median of its loads, its ratio that over the 1-event
    aggregate's in the same round.

    DynamoDB Local is restarted first: after the command measure's writes its every request
    was slower (a 1-event load took 11.5 ms instead of 5), which flattered the ratios.
    """
    server.stop()
    server.start()
    server.warm_up()
    store = fresh_store(server.endpoint_url)
    app = Application(
        store=store, aggregates=[Account], snapshots={Account: EveryNEvents(SNAPSHOT_EVERY)}
    )
    half = SNAPSHOT_EVERY // 2
    after_snapshot = {"1 event": 0, "at a snapshot": 0, "half-way": half}
    after_snapshot["just before the next"] = SNAPSHOT_EVERY - 1
    for side, extra in after_snapshot.items():
        grow_account(app, side, 1 if side == "1 event" else events + extra)
    for side, extra in after_snapshot.items():
        account = app.get(Account, side)
        snapshot = store.load_snapshot("Account", side)
        expected_snapshot = None if side == "1 event" else events
        assert account is not None
        assert (snapshot.version if snapshot else None) == expected_snapshot, side
        assert account.version == (1 if side == "1 event" else events + extra), side
    per_round: list[dict[str, float]] = []
    for round_index in range(rounds):
        server.warm_up()
        app.get(Account, "1 event")  # one untimed load after the warm-up
        times: dict[str, float] = {}
        for side in rotated(LOAD_SIDES, round_index):
            side_times = []
            for _ in range(loads):
                started = time.perf_counter()
                app.get(Account, side)
                side_times.append(time.perf_counter() - started)
            times[side] = median(side_times)
        per_round.append(times)
    rows = []
    short = [times["1 event"] for times in per_round]
    for side in LOAD_SIDES[1:]:
        long = [times[side] for times in per_round]
        ratios = [times[side] / times["1 event"] for times in per_round]
        rows.append(
            [
                f"load ms, {events:,} events, a snapshot every {SNAPSHOT_EVERY}, "
                f"{after_snapshot[side]} after it ({side}) vs 1 event",
                f"{spread(long, scale=1000)} vs {spread(short, scale=1000)}",
                spread(ratios),
                "<= 1.5",
            ]
        )
    return rows


def _billed_write_units(store: DynamoDBEventStore, transact_items: list[dict[str, Any]]) -> int:
    """Write units by DynamoDB's pricing rule: 2 per started KB of every transaction item.

    An update is counted at the size of the item it leaves (read back), an event put once more
    for the copy the ``feed`` index keeps. DynamoDB Local reports a table's units per
    transaction without adding up several items on one table (the aggregate and the command
    record), so its figure is shown beside this one.
    """
    total = 0
    for entry in transact_items:
        ((action, request),) = entry.items()
        if action == "Put":
            item = request["Item"]
        else:
            item = store.client.get_item(TableName=request["TableName"], Key=request["Key"])["Item"]
        units = 2 * -(-item_size(item) // 1024)
        copies = 2 if action == "Put" and request["TableName"] == store.tables.events else 1
        total += units * copies
    return total


def _capacity_of(
    store: DynamoDBEventStore, counter: RequestCounter, send: Callable[[], object]
) -> str:
    counter.clear()
    send()
    ((transaction,),) = [
        [params["TransactItems"]]
        for operation, params in counter.requests
        if operation == "TransactWriteItems"
    ]
    reported = f"{counter.read_units:g} RCU / {counter.write_units:g} WCU reported"
    billed = _billed_write_units(store, transaction)  # reads: after the command's own units
    return f"{reported}, {billed} WCU billed ({len(transaction)} items)"


def capacity(store: DynamoDBEventStore, history: int = 100) -> list[list[str]]:
    """Read and write units of one deposit on each side, on accounts of ``history`` events."""
    counter = RequestCounter(store.client, capacity=True)
    cold = Application(store=store, aggregates=[Account], snapshots={Account: NoSnapshots()})
    hot = Application(
        store=store,
        aggregates=[Account],
        snapshots={Account: NoSnapshots()},
        cache=AggregateCache(),
    )
    for side in COMMAND_SIDES:
        grow(cold, f"capacity-{side}", history)
    hot.handle(Deposit(account_id="capacity-hot", amount=Decimal(1)))  # into the cache
    units = {
        "cold": _capacity_of(
            store,
            counter,
            lambda: cold.handle(Deposit(account_id="capacity-cold", amount=Decimal("1234.56"))),
        ),
        "hot": _capacity_of(
            store,
            counter,
            lambda: hot.handle(Deposit(account_id="capacity-hot", amount=Decimal("1234.56"))),
        ),
    }
    for side in ("two items", "three items"):

        def by_hand(side: str = side) -> None:
            raw_deposit(
                store.client,
                store,
                f"capacity-{side}",
                Decimal("1234.56"),
                command_item=side == "three items",
            )

        units[side] = _capacity_of(store, counter, by_hand)
    key = {"pk": {"S": "Account#capacity-cold"}}
    event = store.client.query(
        TableName=store.tables.events,
        KeyConditionExpression="pk = :pk AND sk = :v",
        ExpressionAttributeValues={**{":pk": key["pk"]}, ":v": {"N": str(history + 1)}},
    )["Items"][0]
    aggregate = store.client.get_item(TableName=store.tables.aggregates, Key=key)["Item"]
    records = store.client.scan(
        TableName=store.tables.aggregates,
        FilterExpression="begins_with(pk, :c)",
        ExpressionAttributeValues={":c": {"S": "command#"}},
    )["Items"]
    sizes = (
        f"event {item_size(event)} B, aggregate {item_size(aggregate)} B, "
        f"command record {max(item_size(record) for record in records)} B"
    )
    return [
        [
            f"capacity of one deposit, {side}",
            units[side],
            sizes if side == "cold" else "",
            "measured",
        ]
        for side in COMMAND_SIDES
    ]


def _recent_commands(count: int) -> dict[str, Any]:
    """``count`` command entries as the aggregate's own item would have to keep them.

    Each holds what the command record holds today (the change set id, the result answered to a
    repeat, the payload fingerprint, the expiry), keyed by a command id.
    """
    entries = {}
    for _ in range(count):
        entries[str(uuid.uuid4())] = {
            "M": {
                "c": {"S": str(uuid.uuid4())},
                "r": {"B": encode_json({"change_set_id": str(uuid.uuid4()), "versions": {}})},
                "f": {"S": "f" * 64},
                "x": {"N": str(int(time.time()) + 7 * 86400)},
            }
        }
    return {"M": entries}


def command_record_forms(store: DynamoDBEventStore) -> list[list[str]]:
    """What keeping recent command ids on the aggregate's own item would cost in write units.

    The aggregate item is given ``count`` recent command entries (a map attribute), then one
    deposit is sent by hand as the two-item transaction (aggregate + event) that form would
    send; DynamoDB Local reports the units it consumed on the aggregates table, per item size.
    """
    app = Application(store=store, aggregates=[Account], snapshots={Account: NoSnapshots()})
    grow(app, "forms", 1)
    units: list[float] = []

    def ask(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems":
            params["ReturnConsumedCapacity"] = "INDEXES"

    def keep(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems":
            for entry in parsed.get("ConsumedCapacity", []):
                if entry["TableName"] == store.tables.aggregates:
                    units.append(float(entry["CapacityUnits"]))

    client = store.make_client("dynamodb")
    client.meta.events.register("provide-client-params.dynamodb.*", ask)
    client.meta.events.register("after-call.dynamodb.*", keep)
    key = {"pk": {"S": "Account#forms"}}
    rows = []
    for count in (0, 3, 4, 10, 70):
        client.update_item(
            TableName=store.tables.aggregates,
            Key=key,
            UpdateExpression="SET recent_commands = :r",
            ExpressionAttributeValues={":r": _recent_commands(count)},
        )
        size = item_size(client.get_item(TableName=store.tables.aggregates, Key=key)["Item"])
        units.clear()
        raw_deposit(client, store, "forms", Decimal(1), command_item=False)
        rows.append(
            [
                f"aggregate item holding {count} recent command ids: WCU on the aggregates table",
                f"{units[0]:g} WCU",
                f"item {size:,} B",
                "a command record is 2 WCU",
            ]
        )
    return rows


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
        store=WithoutReadChecks(store),
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

    rates: dict[str, list[float]] = {"checked": [], "unchecked": []}
    apps = {"checked": checked, "unchecked": unchecked}
    for round_index in range(rounds):
        for side in rotated(("checked", "unchecked"), round_index):
            rates[side].append(run(apps[side], pairs[side]))
    ratios = [c / u for c, u in zip(rates["checked"], rates["unchecked"], strict=True)]

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
            f"{spread(rates['checked'], 0)} vs {spread(rates['unchecked'], 0)}",
            spread(ratios),
            "measured (no target)",
        ],
        [
            "capacity of that command, with the read check vs without",
            f"{units[0]} vs {units[1]}",
            "1 transaction item more",
            "measured (no target)",
        ],
    ]


CASES: dict[str, Callable[[DynamoDBLocal, argparse.Namespace], list[list[str]]]] = {
    "overhead": lambda server, a: overhead(server, a.rounds, a.commands, a.history),
    "requests": lambda server, a: requests_per_command(fresh_store(server.endpoint_url)),
    "load": lambda server, a: load_interval(server, a.rounds, a.events),
    "capacity": lambda server, a: capacity(fresh_store(server.endpoint_url), a.history),
    "forms": lambda server, a: command_record_forms(fresh_store(server.endpoint_url)),
    "checks": lambda server, a: read_checks(fresh_store(server.endpoint_url), a.rounds, a.commands),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument(
        "--history", type=int, default=100, help="events per account before commands are timed"
    )
    parser.add_argument(
        "--events",
        type=int,
        default=10_000,
        help=f"events of the long aggregates of the load measure (a multiple of {SNAPSHOT_EVERY})",
    )
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
            case_rows = CASES[name](server, arguments)
            # each measure's rows as soon as it ends: a long run interrupted keeps what it got
            print(markdown_table(["measure", "measured", "ratio / count", "target"], case_rows))
            print(flush=True)
            rows += case_rows
    finally:
        server.stop()
    print(
        f"Commands on DynamoDB Local ({machine()}), "
        f"medians (min-max) of {arguments.rounds} rounds, sides in rotated order:\n"
    )
    print(markdown_table(["measure", "measured", "ratio / count", "target"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
