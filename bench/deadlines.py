"""Deadlines fired per second by 1, 2 and 4 runners racing over the same due deadlines.

Each configuration gets fresh tables on a warm DynamoDB Local: D accounts (default 200) and one
due deadline per account, a deposit of 1. Then R runner processes (``DeadlineRunner.run_due``,
each its own client), released at once by a barrier, fire what is due until nothing is left.
Reported: deadlines fired per second over the whole run, its ratio to one runner in the same
round, claims lost to another runner, and the judge: every deadline ``fired``, every account
holding exactly one deposit (each command applied once, whatever the race). The order of the
configurations rotates between rounds.

    python -m bench.deadlines [--rounds 2] [--deadlines 200] [--runners 1 2 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import time
from decimal import Decimal
from typing import Any

import attrs

from bench.common import fresh_store, machine, markdown_table, median, start_dynamodb_local
from framework import Application, DynamoDBEventStore
from framework.logs import configure_logging
from framework.projections import Deadline, DeadlineRunner, DeadlineStatus, DynamoDBDeadlineStore
from framework.projections.deadlines import encode_command
from framework.testing.bank import Account, Deposit, OpenAccount

DUE = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@attrs.frozen
class RunOutcome:
    """One configuration's run: its rate, the lost claims, and whether every deadline fired once."""

    runners: int
    rate: float
    lost: int
    judged: bool


def _runner(endpoint: str, prefix: str, barrier: Any, results: Any) -> None:
    configure_logging("ERROR")
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=endpoint)
    runner = DeadlineRunner(
        Application(store=store, aggregates=[Account]), DynamoDBDeadlineStore(store)
    )
    runner.store.due(DUE, 1)  # the client and its connection, before the clock starts
    barrier.wait()
    started = time.time()
    fired = lost = 0
    while True:
        report = runner.run_due(DUE)
        fired, lost = fired + report.fired, lost + report.lost
        if report.fired == 0 and report.lost == 0:
            break
    results.put((fired, lost, started, time.time()))


def run(endpoint: str, runners: int, deadlines: int) -> RunOutcome:
    store = fresh_store(endpoint)
    table = DynamoDBDeadlineStore(store)
    table.create_table()
    app = Application(store=store, aggregates=[Account])
    for i in range(deadlines):
        app.handle(OpenAccount(account_id=f"a{i}", owner="bench"))
        command_type, document = encode_command(Deposit(account_id=f"a{i}", amount=Decimal(1)))
        table.schedule(Deadline(f"d{i}", "bench", DUE, command_type, document))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(runners)
    results = context.Queue()
    workers = [
        context.Process(target=_runner, args=(endpoint, store.tables.prefix, barrier, results))
        for _ in range(runners)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    fired = sum(o[0] for o in outcomes)
    elapsed = max(o[3] for o in outcomes) - min(o[2] for o in outcomes)
    every_fired = all(d.status is DeadlineStatus.FIRED for d in table.list(limit=deadlines + 1))
    once = all(
        [e.event_type for e in store.load_events("Account", f"a{i}")]
        == ["AccountOpened", "Deposited"]
        for i in range(deadlines)
    )
    table.delete_table()
    store.delete_tables()
    return RunOutcome(
        runners,
        deadlines / elapsed,
        sum(o[1] for o in outcomes),
        every_fired and once and fired >= deadlines,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deadlines", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--deadlines", type=int, default=200)
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 4])
    arguments = parser.parse_args(argv)
    configure_logging("ERROR")
    configurations: list[int] = arguments.runners
    runs: dict[int, list[RunOutcome]] = {n: [] for n in configurations}
    ratios: dict[int, list[float]] = {n: [] for n in configurations}
    server = start_dynamodb_local()
    try:
        for round_number in range(arguments.rounds):
            shift = round_number % len(configurations)
            order = configurations[shift:] + configurations[:shift]
            outcomes = {n: run(server.endpoint_url, n, arguments.deadlines) for n in order}
            baseline = outcomes[configurations[0]].rate
            for n, outcome in outcomes.items():
                runs[n].append(outcome)
                ratios[n].append(outcome.rate / baseline)
    finally:
        server.stop()
    print(
        f"Deadlines fired per second ({machine()}): {arguments.deadlines} due deadlines, "
        f"{arguments.rounds} rounds on one warm DynamoDB Local, order rotated; medians "
        f"(min-max), ratio to {configurations[0]} runner(s) in the same round:\n"
    )
    rows = []
    for n, measured in runs.items():
        rates = [o.rate for o in measured]
        rows.append(
            [
                str(n),
                f"{median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})",
                f"{median(ratios[n]):.2f}",
                " / ".join(str(o.lost) for o in measured),
                "yes" if all(o.judged for o in measured) else "NO",
            ]
        )
    print(
        markdown_table(
            ["runners", "fired/s", "ratio", "claims lost", "each fired once, applied once"],
            rows,
        )
    )
    return 0 if all(o.judged for measured in runs.values() for o in measured) else 1


if __name__ == "__main__":
    raise SystemExit(main())
