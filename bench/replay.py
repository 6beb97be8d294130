"""Replay over the feed index: throughput against a raw boto3 Query loop over the same index, flat
memory from 10,000 to 100,000 events, and a rebuild of a one-row-per-stream read model against
the same replay with a projector that writes nothing.

Measured, in interleaved rounds, each in a child process that reports its own peak RSS (so one
measurement does not inherit another's memory):

- ``raw``: a plain ``Query`` loop over every shard of every hour of the feed index, on a plain
  boto3 client (botocore parses the answers): the baseline;
- ``replay``: ``CatchUpRunner.run`` as the CLI's ``projections replay`` runs it, with the
  DynamoDB position store, of a projector that keeps O(1) state and writes nothing;
- ``in-memory positions``: the same with positions kept in memory;
- ``rebuild``: ``CatchUpRunner.rebuild`` of a projector keeping one balance row per account
  (a declared PynamoDB read model, typed ``add_to`` updates), as ``projections replay --rebuild``;
- ``raw-lean``: the raw loop on the store's own client, which decodes ``Query`` items from the
  JSON as the replay does: the part of the difference that decoding makes.

Each kind runs first in turn, round after round.

    python -m bench.replay [--events 10000 100000] [--rounds 3] [--workers 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from bench.common import fresh_store, machine, markdown_table, median, start_dynamodb_local
from example_app.read_models import DecimalAttribute
from framework import Application, DynamoDBEventStore, Projector, event_handler
from framework.logs import configure_logging
from framework.projections import CatchUpRunner, Envelope, read_models
from framework.store import DynamoDBPositionStore, InMemoryPositionStore
from framework.store.dynamodb.tables import FEED_INDEX
from framework.store.keys import feed_hour, feed_partitions
from framework.testing.bank import Account, Deposited, DepositMany, OpenAccount

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


class BenchBalance(Model):
    """One row per account."""

    class Meta:
        table_name = "bench-balances"

    account_id = UnicodeAttribute(hash_key=True)
    balance = DecimalAttribute(default=Decimal)
    deposits = NumberAttribute(default=0)


class Balances(Projector, name="bench-balances"):
    """One row per stream, updated by every event: the shape that needs folding."""

    read_models = (BenchBalance,)

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        self.add_to(BenchBalance, envelope.aggregate_id, balance=event.amount, deposits=1)


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


Result = tuple[str, int, str, float, int, int]
"""(kind, events seen, total, seconds, RSS before, peak RSS)."""


def _runner(
    store: DynamoDBEventStore, positions: object, projector: Projector, workers: int
) -> CatchUpRunner:
    return CatchUpRunner(
        store,
        positions,  # type: ignore[arg-type]
        [projector],
        safety_window=dt.timedelta(0),  # the events were written a moment ago
        workers=workers,
    )


def _replay_child(endpoint: str, prefix: str, workers: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """The CLI's way: positions in DynamoDB, forgotten first so that everything is replayed."""
    configure_logging("WARNING")
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=endpoint)
    positions = DynamoDBPositionStore(store)
    positions.reset(RunningTotal.projector_name())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    projector = RunningTotal()
    started = time.perf_counter()
    _runner(store, positions, projector, workers).run()
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(("replay", projector.count, str(projector.total), elapsed, before, peak))


def _memory_child(endpoint: str, prefix: str, workers: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    configure_logging("WARNING")
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=endpoint)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    projector = RunningTotal()
    started = time.perf_counter()
    _runner(store, InMemoryPositionStore(), projector, workers).run()
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(("memory", projector.count, str(projector.total), elapsed, before, peak))


def _rebuild_child(endpoint: str, prefix: str, workers: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """``projections replay --rebuild`` of the balances: tables emptied, then the replay."""
    configure_logging("WARNING")
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=endpoint)
    positions = DynamoDBPositionStore(store)
    positions.reset(Balances.projector_name())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    _runner(store, positions, Balances(), workers).rebuild()
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = list(read_models.bound(BenchBalance, store).scan(consistent_read=True))
    count = sum(int(row.deposits) for row in rows)
    total = sum((row.balance for row in rows), Decimal(0))
    queue.put(("rebuild", count, str(total), elapsed, before, peak))


def _raw_child(endpoint: str, prefix: str, workers: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """The baseline: a plain boto3 client, its answers parsed by botocore, as a user's loop."""
    configure_logging("WARNING")
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=endpoint)
    queue.put(_raw_loop("raw", store, store.make_client("dynamodb")))


def _raw_lean_child(endpoint: str, prefix: str, workers: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """The same loop on the store's own client, which decodes Query items from the JSON: how
    much of the replay's lead or lag is that decoding, and how much the rest of the replay."""
    configure_logging("WARNING")
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=endpoint)
    queue.put(_raw_loop("raw-lean", store, store.client))


def _raw_loop(kind: str, store: DynamoDBEventStore, client: Any) -> Result:
    """Every shard partition of every hour of the feed index, page by page, items counted."""
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
    return (kind, count, "", elapsed, before, peak)


def measure(target: Callable[..., None], endpoint: str, prefix: str, workers: int) -> Result:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=target, args=(endpoint, prefix, workers, queue))
    child.start()
    result: Result = queue.get(timeout=3600)
    child.join()
    return result


CHILDREN = {
    "raw": _raw_child,
    "replay": _replay_child,
    "memory": _memory_child,
    "rebuild": _rebuild_child,
    "raw-lean": _raw_lean_child,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--only", nargs="+", choices=list(CHILDREN), help="measure these kinds only (no table)"
    )
    arguments = parser.parse_args(argv)
    configure_logging("WARNING")
    server = start_dynamodb_local()
    try:
        store = fresh_store(server.endpoint_url)
        read_models.create_tables(store, [BenchBalance])
        app = Application(store=store, aggregates=[Account])
        for index in range(ACCOUNTS):
            app.handle(OpenAccount(account_id=f"acc-{index}", owner=f"owner {index}"))
        rows = []
        written = 0
        for events in sorted(arguments.events):
            started = time.perf_counter()
            written = grow_to(app, events, written)
            sys.stderr.write(f"{events} events written in {time.perf_counter() - started:.0f} s\n")
            time.sleep(1)  # past the feed index's propagation, with a safety window of 0
            kinds = arguments.only or list(CHILDREN)
            results: dict[str, list[Result]] = {kind: [] for kind in kinds}
            for round_number in range(arguments.rounds):  # interleaved: one of each per round
                first = round_number % len(kinds)  # and each kind first in turn
                for kind in kinds[first:] + kinds[:first]:
                    child = CHILDREN[kind]
                    result = measure(
                        child, server.endpoint_url, store.tables.prefix, arguments.workers
                    )
                    sys.stderr.write(f"  round {round_number + 1} {kind}: {result[3]:.1f} s\n")
                    results[kind].append(result)
            for kind, found in results.items():
                assert all(r[1] == events for r in found), (kind, found)
                assert kind.startswith("raw") or all(r[2] == str(events) for r in found), found
            rates = {kind: [events / r[3] for r in found] for kind, found in results.items()}
            if arguments.only:
                for kind, values in rates.items():
                    print(f"{events:,} events, {kind}: {_rate(values)} events/s")
                continue
            peaks = {kind: median([r[5] for r in found]) / 1024 for kind, found in results.items()}
            rate = {kind: median(values) for kind, values in rates.items()}
            rows.append(
                [
                    f"{events:,}",
                    _rate(rates["raw"]),
                    _rate(rates["replay"]),
                    f"{rate['replay'] / rate['raw']:.2f}",
                    _rate(rates["memory"]),
                    f"{rate['memory'] / rate['raw']:.2f}",
                    _rate(rates["rebuild"]),
                    f"{rate['rebuild'] / rate['replay']:.2f}",
                    " / ".join(f"{peaks[kind]:.0f}" for kind in ("raw", "replay", "rebuild")),
                    _rate(rates["raw-lean"]),
                    f"{rate['replay'] / rate['raw-lean']:.2f}",
                ]
            )
        if arguments.only:
            return 0
        print(
            f"Replay over the feed index on DynamoDB Local ({machine()}), {arguments.workers} "
            f"workers, medians of {arguments.rounds} interleaved rounds (min-max):\n"
        )
        print(
            markdown_table(
                [
                    "events",
                    "raw Query loop events/s",
                    "replay (DynamoDB positions) events/s",
                    "replay / raw",
                    "replay (in-memory positions) events/s",
                    "in-memory / raw",
                    "rebuild of balances events/s",
                    "rebuild / replay",
                    "peak RSS MiB raw / replay / rebuild",
                    "raw loop on the store's client (JSON-decoded items) events/s",
                    "replay / that",
                ],
                rows,
            )
        )
    finally:
        server.stop()
    return 0


def _rate(values: list[float]) -> str:
    return f"{median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


if __name__ == "__main__":
    raise SystemExit(main())
