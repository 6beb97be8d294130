"""Commands in flight at once: the asyncio face against a thread pool over the sync application.

One process, one DynamoDB Local. Each side keeps ``--in-flight`` commands in flight (50 by
default) on as many distinct accounts: worker ``n`` sends ``--commands`` deposits, one after the
other, to account ``n`` of its side, so no two commands ever race for one aggregate. The asyncio
side runs the workers as tasks of one event loop through ``AsyncApplication`` on the aiobotocore
store; the thread side runs them on a ``ThreadPoolExecutor`` with as many threads, through
``Application.handle`` on the boto3 store. Both stores allow as many connections as commands in
flight, and run without the aggregate cache unless ``--cache``: each deposit is then a ``Query``
of the stream and a ``TransactWriteItems``.

Rounds are interleaved and rotated (each side goes first in turn), after a warm-up round of each
side that is not counted; each round opens fresh accounts. Reported: commands/s (all the round's
commands over its wall time) and the p50/p99 latency of single commands, medians over rounds
with their ranges, and the ratio asyncio / threads of each round (median and range); and this
process's CPU time per command, which tells the client's cost apart from DynamoDB Local's (a JVM
on the same cores), and how many of its threads were runnable but waiting for a core, on average
(Linux only): a loop is one thread, and on a crowded machine one thread gets one thread's share
of the cores, however much work waits for it.

    python -m bench.async_commands [--rounds 5] [--in-flight 50] [--commands 10] [--cache]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import attrs
from botocore.config import Config

from bench.common import machine, markdown_table, median, start_dynamodb_local
from framework import Application, DynamoDBEventStore
from framework.aio import AsyncApplication, open_async_store, run_in_greenlet
from framework.application import AggregateCache
from framework.logs import configure_logging
from framework.store.dynamodb.event_store import default_client_config
from framework.testing.bank import Account, Deposit, OpenAccount

SIDES = ("asyncio", "threads")


@attrs.frozen
class RoundResult:
    side: str
    commands_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    """This process's CPU time per command (all its threads): what the client side costs."""
    waiting: float
    """How many of this process's threads were, on average over the round, runnable but
    waiting for a core (Linux ``schedstat`` run-queue time, summed over threads, over wall
    time): for the loop's one thread, the share of the round it could not run."""


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` of 1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def run_queue_wait() -> float:
    """Seconds this process's threads have spent waiting on a run queue (0 where unknown)."""
    total = 0
    for stat in Path("/proc/self/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(stat.read_text().split()[1])
    return total / 1e9


@attrs.frozen
class Clocks:
    """Where a round starts: wall time, this process's CPU time, its run-queue wait."""

    wall: float = attrs.field(factory=time.perf_counter)
    cpu: float = attrs.field(factory=time.process_time)
    waited: float = attrs.field(factory=run_queue_wait)

    def result(self, side: str, latencies: Sequence[float]) -> RoundResult:
        elapsed = time.perf_counter() - self.wall
        return RoundResult(
            side,
            len(latencies) / elapsed,
            percentile(latencies, 0.50) * 1000,
            percentile(latencies, 0.99) * 1000,
            (time.process_time() - self.cpu) / len(latencies) * 1000,
            (run_queue_wait() - self.waited) / elapsed,
        )


def build(store: DynamoDBEventStore, cache: bool) -> Application:
    return Application(store=store, aggregates=[Account], cache=AggregateCache() if cache else None)


def accounts(in_flight: int) -> list[str]:
    prefix = uuid.uuid4().hex[:8]
    return [f"{prefix}-{n}" for n in range(in_flight)]


async def asyncio_round(app: AsyncApplication, in_flight: int, commands: int) -> RoundResult:
    ids = accounts(in_flight)
    await asyncio.gather(*(app.handle(OpenAccount(account_id=i, owner="bench")) for i in ids))
    latencies: list[float] = []

    async def worker(account_id: str) -> None:
        for _ in range(commands):
            started = time.perf_counter()
            await app.handle(Deposit(account_id=account_id, amount=Decimal(1)))
            latencies.append(time.perf_counter() - started)

    clocks = Clocks()
    await asyncio.gather(*(worker(account_id) for account_id in ids))
    return clocks.result("asyncio", latencies)


def threads_round(
    app: Application, pool: ThreadPoolExecutor, in_flight: int, commands: int
) -> RoundResult:
    ids = accounts(in_flight)
    list(pool.map(lambda i: app.handle(OpenAccount(account_id=i, owner="bench")), ids))
    latencies: list[float] = []  # list.append is atomic: the threads share it safely

    def worker(account_id: str) -> None:
        for _ in range(commands):
            started = time.perf_counter()
            app.handle(Deposit(account_id=account_id, amount=Decimal(1)))
            latencies.append(time.perf_counter() - started)

    clocks = Clocks()
    list(pool.map(worker, ids))
    return clocks.result("threads", latencies)


def spread(values: Sequence[float], digits: int) -> str:
    return f"{median(values):,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def report(results: dict[str, list[RoundResult]]) -> str:
    rows: list[list[str]] = []
    asyncio_rounds, thread_rounds = results["asyncio"], results["threads"]
    measures: list[tuple[str, Callable[[RoundResult], float], int]] = [
        ("commands/s", lambda r: r.commands_per_second, 0),
        ("p50 latency, ms", lambda r: r.p50_ms, 1),
        ("p99 latency, ms", lambda r: r.p99_ms, 1),
        ("CPU ms per command (this process)", lambda r: r.cpu_ms, 2),
        ("threads waiting for a core, mean", lambda r: r.waiting, 2),
    ]
    for name, measure, digits in measures:
        ratios = [
            measure(a) / measure(t) for a, t in zip(asyncio_rounds, thread_rounds, strict=True)
        ]
        rows.append(
            [
                name,
                spread([measure(r) for r in asyncio_rounds], digits),
                spread([measure(r) for r in thread_rounds], digits),
                spread(ratios, 2),
            ]
        )
    return markdown_table(["measure", "asyncio", "thread pool", "ratio asyncio / threads"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.async_commands", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--commands", type=int, default=10, help="per account and round")
    parser.add_argument("--cache", action="store_true", help="with the aggregate cache")
    arguments = parser.parse_args(argv)
    configure_logging("ERROR")
    in_flight, commands = arguments.in_flight, arguments.commands
    config = default_client_config().merge(Config(max_pool_connections=in_flight))
    server = start_dynamodb_local()
    loop = asyncio.new_event_loop()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    sync_store = DynamoDBEventStore(
        table_prefix=prefix, endpoint_url=server.endpoint_url, client_config=config
    )
    clients = contextlib.AsyncExitStack()
    try:
        sync_store.create_tables()
        async_store = loop.run_until_complete(
            clients.enter_async_context(
                open_async_store(
                    DynamoDBEventStore(
                        table_prefix=prefix, endpoint_url=server.endpoint_url, client_config=config
                    )
                )
            )
        )
        async_app = AsyncApplication(build(async_store, arguments.cache))
        sync_app = build(sync_store, arguments.cache)
        results: dict[str, list[RoundResult]] = {side: [] for side in SIDES}
        with ThreadPoolExecutor(max_workers=in_flight) as pool:

            def run(side: str) -> RoundResult:
                if side == "asyncio":
                    return loop.run_until_complete(asyncio_round(async_app, in_flight, commands))
                return threads_round(sync_app, pool, in_flight, commands)

            for side in SIDES:  # warm-up: connections, the JIT of DynamoDB Local, imports
                run(side)
            for round_number in range(arguments.rounds):
                shift = round_number % len(SIDES)
                for side in (*SIDES[shift:], *SIDES[:shift]):
                    outcome = run(side)
                    results[side].append(outcome)
                    print(
                        f"round {round_number + 1} {side}: {outcome.commands_per_second:.0f} "
                        f"commands/s, p50 {outcome.p50_ms:.1f} ms, p99 {outcome.p99_ms:.1f} ms, "
                        f"CPU {outcome.cpu_ms:.2f} ms a command, {outcome.waiting:.2f} threads "
                        f"waiting for a core, load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        loop.run_until_complete(run_in_greenlet(async_store.delete_tables))
    finally:
        loop.run_until_complete(clients.aclose())
        loop.close()
        server.stop()
    cache = "with" if arguments.cache else "without"
    print(
        f"\n{in_flight} commands in flight on distinct accounts, {commands} deposits per account "
        f"and round, {cache} the aggregate cache, {arguments.rounds} rounds; {machine()}; "
        f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}\n"
    )
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
