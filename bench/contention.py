"""Contention on one hot aggregate: processes depositing into one account on DynamoDB Local.

N worker processes (default 4) each send M deposits (default 100) of 1 to the same account, all
released at once by a barrier, through ``Application.handle`` with its default retry policy, once
without and once with the ``AggregateCache``. Every conflict is retried by the application; a
command whose attempts run out raises (a give-up) and the caller would have to resend it.

Reported per configuration: give-ups, attempts per command (median, p99, max), commands/s over
the whole run, and the judge: the account's final balance and event count against the deposits
that were accepted (nothing lost, nothing doubled) and a gap-free stream. Each round starts a
fresh DynamoDB Local (it slows down with every Streams record it ever wrote) and rotates which
configuration runs first.

    python -m bench.contention [--rounds 3] [--processes 4] [--deposits 100]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from decimal import Decimal
from typing import Any

import attrs

from bench.common import fresh_store, machine, markdown_table, median, start_dynamodb_local
from framework import Application, DynamoDBEventStore
from framework.application import AggregateCache, Backoff
from framework.errors import ConcurrencyError, Throttled, TransactionConflict
from framework.logs import configure_logging
from framework.testing.bank import Account, Deposit, OpenAccount

ACCOUNT = "hot"


@attrs.frozen
class WorkerOutcome:
    """What one worker process saw: attempts of each accepted command, give-ups, its clock."""

    attempts: tuple[int, ...]
    gave_up: int
    started: float
    finished: float


@attrs.frozen
class RunOutcome:
    """One configuration's run, judged against the stored stream."""

    label: str
    attempts: tuple[int, ...]
    gave_up: int
    rate: float
    balance_ok: bool
    events_ok: bool


def _worker(
    endpoint: str,
    prefix: str,
    cached: bool,
    deposits: int,
    barrier: Any,
    results: Any,
    tuning: dict[str, Any],
) -> None:
    """Send ``deposits`` deposits to the hot account; report attempts and give-ups."""
    configure_logging("ERROR")
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=endpoint)
    app = Application(
        store=store, aggregates=[Account], cache=AggregateCache() if cached else None, **tuning
    )
    app.get(Account, ACCOUNT)  # the client and its connection, before the clock starts
    attempts: list[int] = []
    gave_up = 0
    barrier.wait()
    started = time.time()
    for _ in range(deposits):
        try:
            result = app.handle(Deposit(account_id=ACCOUNT, amount=Decimal(1)))
        except (ConcurrencyError, TransactionConflict, Throttled):
            gave_up += 1
            continue
        attempts.append(result.attempts)
    results.put(WorkerOutcome(tuple(attempts), gave_up, started, time.time()))


def run(
    endpoint: str, *, cached: bool, processes: int, deposits: int, tuning: dict[str, Any]
) -> RunOutcome:
    """One configuration on a fresh set of tables: the workers, then the judge."""
    store = fresh_store(endpoint)
    app = Application(store=store, aggregates=[Account])
    app.handle(OpenAccount(account_id=ACCOUNT, owner="bench"))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(
            target=_worker,
            args=(endpoint, store.tables.prefix, cached, deposits, barrier, results, tuning),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    attempts = tuple(a for outcome in outcomes for a in outcome.attempts)
    gave_up = sum(outcome.gave_up for outcome in outcomes)
    elapsed = max(o.finished for o in outcomes) - min(o.started for o in outcomes)
    events = store.load_events("Account", ACCOUNT)
    gap_free = [event.version for event in events] == list(range(1, len(events) + 1))
    account = app.get(Account, ACCOUNT)
    store.delete_tables()
    return RunOutcome(
        label="with the cache" if cached else "without the cache",
        attempts=attempts,
        gave_up=gave_up,
        rate=len(attempts) / elapsed,
        balance_ok=account.balance == Decimal(len(attempts)),
        events_ok=gap_free and len(events) == 1 + len(attempts),
    )


def percentile(values: list[int], fraction: float) -> int:
    """The nearest-rank percentile: the smallest value at least ``fraction`` of values reach."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.contention", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--deposits", type=int, default=100, help="per process")
    parser.add_argument(
        "--max-attempts", type=int, default=None, help="default: the Application's own"
    )
    parser.add_argument("--base", type=float, default=None, help="backoff base, seconds")
    parser.add_argument("--cap", type=float, default=None, help="backoff cap, seconds")
    parser.add_argument(
        "--only", choices=["cache", "no-cache"], default=None, help="one configuration"
    )
    arguments = parser.parse_args(argv)
    configure_logging("ERROR")
    tuning: dict[str, Any] = {}
    if arguments.max_attempts is not None:
        tuning["max_attempts"] = arguments.max_attempts
    if arguments.base is not None or arguments.cap is not None:
        default = Backoff()
        tuning["backoff"] = Backoff(
            base=default.base if arguments.base is None else arguments.base,
            cap=default.cap if arguments.cap is None else arguments.cap,
        )
    configurations = {None: (False, True), "cache": (True,), "no-cache": (False,)}[arguments.only]
    runs: dict[str, list[RunOutcome]] = {"without the cache": [], "with the cache": []}
    for round_number in range(arguments.rounds):
        server = start_dynamodb_local()  # a fresh one: it slows with every record it wrote
        try:
            order = configurations[round_number % 2 :] + configurations[: round_number % 2]
            for cached in order:
                outcome = run(
                    server.endpoint_url,
                    cached=cached,
                    processes=arguments.processes,
                    deposits=arguments.deposits,
                    tuning=tuning,
                )
                runs[outcome.label].append(outcome)
        finally:
            server.stop()
    total = arguments.processes * arguments.deposits
    print(
        f"Contention on one account ({machine()}): {arguments.processes} processes x "
        f"{arguments.deposits} deposits, {arguments.rounds} rounds (a fresh DynamoDB Local "
        "each, order rotated); rates are medians (min-max):\n"
    )
    rows = []
    for label, outcomes in runs.items():
        if not outcomes:
            continue
        attempts = [a for outcome in outcomes for a in outcome.attempts]
        rates = [outcome.rate for outcome in outcomes]
        gave_up = [outcome.gave_up for outcome in outcomes]
        judged = all(outcome.balance_ok and outcome.events_ok for outcome in outcomes)
        rows.append(
            [
                label,
                f"{sum(gave_up)} of {total * len(outcomes)} ({' / '.join(map(str, gave_up))})",
                f"{statistics.median(attempts):g}",
                str(percentile(attempts, 0.99)),
                str(max(attempts)),
                f"{statistics.fmean(attempts):.2f}",
                f"{median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})",
                "yes" if judged else "NO",
            ]
        )
    print(
        markdown_table(
            [
                "configuration",
                "give-ups (per round)",
                "attempts median",
                "p99",
                "max",
                "mean",
                "commands/s",
                "balance and events exact",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
