"""Pure framework speed: the in-memory store against the ``eventsourcing`` library's POPO store.

The same bank workload on both, in the same process, rounds interleaved: open accounts, then
deposits and withdrawals spread over them, each command loading its aggregate from its events (no
snapshots, no caches on either side) and saving what it changed.

Then loading with snapshots on the in-memory store alone: an account ``--load-events`` long
against one of 100 events, both 10 events past their last snapshot (one every 100), so that only
the stream's length differs. A load that walked the whole stream would show here.

    pip install eventsourcing   # a benchmark extra: pip install -e ".[bench]"
    python -m bench.inmemory [--rounds 5] [--accounts 100] [--per-account 15 100]
                             [--load-events 100000]
"""

from __future__ import annotations

import argparse
import functools
import os
import time
import uuid
from decimal import Decimal
from typing import Any

from bench.common import grow_account, machine, markdown_table, median
from framework import Application, EveryNEvents, InMemoryEventStore
from framework.logs import configure_logging
from framework.testing.bank import Account, Deposit, OpenAccount, Withdraw

SNAPSHOT_EVERY = 100
PAST_THE_SNAPSHOT = 10


def bank_workload(app: Application, accounts: int, per_account: int) -> int:
    """Open ``accounts`` accounts, then ``per_account`` deposits and withdrawals on each, round
    after round; returns the number of commands handled."""
    ids = [str(uuid.uuid4()) for _ in range(accounts)]
    for account_id in ids:
        app.handle(OpenAccount(account_id=account_id, owner="bench"))
    for step in range(per_account):
        for account_id in ids:
            if step % 3 == 2:
                app.handle(Withdraw(account_id=account_id, amount=Decimal("0.50")))
            else:
                app.handle(Deposit(account_id=account_id, amount=Decimal("1.25")))
    return accounts * (per_account + 1)


def framework_round(accounts: int, per_account: int) -> float:
    app = Application(store=InMemoryEventStore(), aggregates=[Account])
    started = time.perf_counter()
    commands = bank_workload(app, accounts, per_account)
    return commands / (time.perf_counter() - started)


@functools.cache
def eventsourcing_bank() -> Any:
    """The eventsourcing library's version of the bank (classes defined once: it registers them)."""
    from eventsourcing.application import Application as ESApplication
    from eventsourcing.domain import Aggregate as ESAggregate
    from eventsourcing.domain import event

    class BankAccount(ESAggregate):
        @event("Opened")
        def __init__(self, owner: str) -> None:
            self.owner = owner
            self.balance = Decimal(0)

        def deposit(self, amount: Decimal) -> None:
            if amount <= 0:
                raise ValueError("a deposit must be positive")
            self._deposited(amount)

        @event("Deposited")
        def _deposited(self, amount: Decimal) -> None:
            self.balance += amount

        def withdraw(self, amount: Decimal) -> None:
            if amount > self.balance:
                raise ValueError("insufficient funds")
            self._withdrawn(amount)

        @event("Withdrawn")
        def _withdrawn(self, amount: Decimal) -> None:
            self.balance -= amount

    class Bank(ESApplication):  # type: ignore[misc]
        def open(self, owner: str) -> Any:
            account = BankAccount(owner)
            self.save(account)
            return account.id

        def deposit(self, account_id: Any, amount: Decimal) -> None:
            account = self.repository.get(account_id)
            account.deposit(amount)
            self.save(account)

        def withdraw(self, account_id: Any, amount: Decimal) -> None:
            account = self.repository.get(account_id)
            account.withdraw(amount)
            self.save(account)

    return Bank


def eventsourcing_round(accounts: int, per_account: int) -> float:
    os.environ.pop("PERSISTENCE_MODULE", None)  # the default, in-memory "POPO" persistence
    bank = eventsourcing_bank()()
    started = time.perf_counter()
    ids = [bank.open("bench") for _ in range(accounts)]
    for step in range(per_account):
        for account_id in ids:
            if step % 3 == 2:
                bank.withdraw(account_id, Decimal("0.50"))
            else:
                bank.deposit(account_id, Decimal("1.25"))
    return (accounts * (per_account + 1)) / (time.perf_counter() - started)


def load_by_length(rounds: int, long_events: int, loads: int = 200) -> list[str]:
    """The median load of a ``long_events`` account against a 100-event one, in the same store
    and at the same point of their snapshot interval; each round's figure is the median of
    ``loads`` loads a side, the side that runs first rotated."""
    app = Application(
        store=InMemoryEventStore(),
        aggregates=[Account],
        snapshots={Account: EveryNEvents(SNAPSHOT_EVERY)},
    )
    lengths = {"short": SNAPSHOT_EVERY, "long": long_events}
    for side, length in lengths.items():
        grow_account(app, side, length + PAST_THE_SNAPSHOT)
        assert app.get(Account, side).version == length + PAST_THE_SNAPSHOT, side
    times: dict[str, list[float]] = {side: [] for side in lengths}
    for round_number in range(rounds):
        sides = list(lengths) if round_number % 2 == 0 else list(reversed(lengths))
        for side in sides:
            side_times = []
            for _ in range(loads):
                started = time.perf_counter()
                app.get(Account, side)
                side_times.append(time.perf_counter() - started)
            times[side].append(median(side_times) * 1e6)
    long, short = times["long"], times["short"]
    return [
        f"load us, {long_events:,} vs {SNAPSHOT_EVERY} events, {PAST_THE_SNAPSHOT} past a "
        f"snapshot every {SNAPSHOT_EVERY}",
        f"{median(long):,.1f} ({min(long):,.1f}-{max(long):,.1f})",
        f"{median(short):,.1f} ({min(short):,.1f}-{max(short):,.1f})",
        f"{median(long) / median(short):.2f}",
        "<= 1.5",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument(
        "--per-account",
        type=int,
        nargs="+",
        default=[15, 100],
        help="commands per account after its opening, one workload each (default: 15 100)",
    )
    parser.add_argument(
        "--load-events",
        type=int,
        default=100_000,
        help="length of the long account in the loading measure, 0 to skip it (default: 100000)",
    )
    arguments = parser.parse_args(argv)
    configure_logging("WARNING")
    ours: dict[int, list[float]] = {n: [] for n in arguments.per_account}
    theirs: dict[int, list[float]] = {n: [] for n in arguments.per_account}
    for round_number in range(arguments.rounds):
        for per_account in arguments.per_account:
            sides = [(ours, framework_round), (theirs, eventsourcing_round)]
            if round_number % 2:
                sides.reverse()  # rotate which side runs first
            for rates, side in sides:
                rates[per_account].append(side(arguments.accounts, per_account))
    from importlib.metadata import version

    print(
        f"In-memory stores ({machine()}, eventsourcing {version('eventsourcing')}), "
        f"{arguments.accounts} accounts, medians (min-max) of {arguments.rounds} interleaved "
        "rounds, the side that runs first rotated:\n"
    )
    rows = []
    for per_account in arguments.per_account:
        our, their = ours[per_account], theirs[per_account]
        rows.append(
            [
                f"commands/s, {per_account + 1} events per account",
                f"{median(our):,.0f} ({min(our):,.0f}-{max(our):,.0f})",
                f"{median(their):,.0f} ({min(their):,.0f}-{max(their):,.0f})",
                f"{median(our) / median(their):.2f}",
                ">= 3",
            ]
        )
    print(
        markdown_table(
            ["measure", "this framework", "eventsourcing (POPO)", "ratio", "target"], rows
        )
    )
    if arguments.load_events:
        row = load_by_length(arguments.rounds, arguments.load_events)
        print(
            f"\nLoading on the in-memory store, medians (min-max) of {arguments.rounds} rounds, "
            "the side that runs first rotated:\n"
        )
        print(markdown_table(["measure", "long", "short", "ratio", "target"], [row]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
