"""Replay over the feed index: flat memory from 10,000 to 50,000 events, and throughput against a
raw boto3 Query loop over the same index.

Each replay runs in a child process, which reports its own peak RSS, so that one measurement does
not inherit another's memory. The projector keeps O(1) state (a running total), so any growth in
peak memory would be the runner's.

    python -m bench.replay [--events 10000 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import sys
import time
from decimal import Decimal

from bench.common import fresh_store, machine, markdown_table, median, start_dynamodb_local
from framework import (
    Application,
    CatchUpRunner,
    DynamoDBEventStore,
    Envelope,
    InMemoryPositionStore,
    Projector,
    event_handler,
)
from framework.logs import configure_logging
from framework.store.keys import feed_hour, feed_partitions
from framework.store.tables import FEED_INDEX
from tests.support.bank import Account, Deposited, DepositMany, OpenAccount

ACCOUNTS = 100
PER_COMMAND = 90


class RunningTotal(Projector, name="running-total"):
    """O(1) state: the sum and count of every deposit."""

    def __init__(self) -> None:
        super().__init__()
        self.total = Decimal(0)
        self.count = 0

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        self.total += event.amount
        self.count += 1


def grow_to(app: Application, events: int, written: int) -> int:
    """Append deposits of 1 round-robin over the accounts until ``events`` deposits exist."""
    account = written // PER_COMMAND
    while written < events:
        batch = min(PER_COMMAND, events - written)
        amounts = tuple(Decimal(1) for _ in range(batch))
        app.handle(DepositMany(account_id=f"acc-{account % ACCOUNTS}", amounts=amounts))
        written += batch
        account += 1
    return written


def _replay_child(endpoint: str, prefix: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=endpoint)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    projector = RunningTotal()
    started = time.perf_counter()
    CatchUpRunner(store, InMemoryPositionStore(), [projector]).run(
        until=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    )
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(("replay", projector.count, str(projector.total), elapsed, before, peak))


def _raw_child(endpoint: str, prefix: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=endpoint)
    client = store.client
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    count = 0
    hour = feed_hour(dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    end = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    while hour <= end:
        for partition in feed_partitions(hour):
            request = {
                "TableName": store.tables.events,
                "IndexName": FEED_INDEX,
                "KeyConditionExpression": "feed_pk = :p",
                "ExpressionAttributeValues": {":p": {"S": partition}},
            }
            while True:
                page = client.query(**request)
                count += sum(1 for item in page["Items"] if item["event_type"]["S"] == "Deposited")
                if "LastEvaluatedKey" not in page:
                    break
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        hour += dt.timedelta(hours=1)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(("raw", count, "", elapsed, before, peak))


def measure(target: object, endpoint: str, prefix: str) -> tuple[int, str, float, int, int]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=target, args=(endpoint, prefix, queue))
    child.start()
    _, count, total, elapsed, before, peak = queue.get(timeout=1800)
    child.join()
    return count, total, elapsed, before, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args(argv)
    configure_logging("WARNING")
    server = start_dynamodb_local()
    try:
        store = fresh_store(server.endpoint_url)
        app = Application(store=store, aggregates=[Account])
        for index in range(ACCOUNTS):
            app.handle(OpenAccount(account_id=f"acc-{index}", owner=f"owner {index}"))
        rows = []
        written = 0
        for events in sorted(arguments.events):
            started = time.perf_counter()
            written = grow_to(app, events, written)
            sys.stderr.write(f"{events} events written in {time.perf_counter() - started:.0f} s\n")
            replays, raws = [], []
            for _ in range(arguments.rounds):  # interleaved: replay, raw, replay, raw...
                replays.append(measure(_replay_child, server.endpoint_url, store.tables.prefix))
                raws.append(measure(_raw_child, server.endpoint_url, store.tables.prefix))
            assert all(r[0] == events and r[1] == str(events) for r in replays), replays
            assert all(r[0] == events for r in raws), raws
            replay_rate = median([events / r[2] for r in replays])
            raw_rate = median([events / r[2] for r in raws])
            replay_peak = median([r[4] for r in replays]) / 1024
            raw_peak = median([r[4] for r in raws]) / 1024
            rows.append(
                [
                    f"{events:,}",
                    f"{replay_rate:,.0f}",
                    f"{raw_rate:,.0f}",
                    f"{replay_rate / raw_rate:.2f}",
                    f"{replay_peak:.0f}",
                    f"{raw_peak:.0f}",
                ]
            )
        print(
            f"Replay over the feed index on DynamoDB Local ({machine()}), "
            f"medians of {arguments.rounds} rounds, interleaved:\n"
        )
        print(
            markdown_table(
                [
                    "events",
                    "replay events/s",
                    "raw Query loop events/s",
                    "ratio",
                    "replay peak RSS MiB",
                    "raw loop peak RSS MiB",
                ],
                rows,
            )
        )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
