"""Processes hammer the same few accounts on DynamoDB Local: nothing lost, nothing doubled."""

from __future__ import annotations

import multiprocessing
import random
from collections import defaultdict
from decimal import Decimal

import pytest

from framework import Application, ConcurrencyError, DomainError, DynamoDBEventStore, EveryNEvents
from framework.testing.bank import Account, Deposit, OpenAccount, Transfer, transfer

PROCESSES = 4
COMMANDS_PER_PROCESS = 40
ACCOUNTS = ("hot-1", "hot-2", "hot-3")

Operation = tuple[str, str, str, str]
"""``(kind, source, target, amount)``: a deposit has no source."""


def _worker(endpoint: str, prefix: str, seed: int) -> tuple[list[Operation], int, int, int]:
    """Deposit into and transfer between the hot accounts; report what was accepted.

    Returns the accepted operations, how many commands needed a retry, how many the rules refused
    (a transfer from an account without enough money) and how many gave up after every retry.
    """
    store = DynamoDBEventStore(table_prefix=prefix, endpoint_url=endpoint)
    app = Application(
        store=store,
        aggregates=[Account],
        handlers=[transfer],
        snapshots={Account: EveryNEvents(7)},
        max_attempts=30,
    )
    rng = random.Random(seed)
    accepted: list[Operation] = []
    retried = refused = gave_up = 0
    for _ in range(COMMANDS_PER_PROCESS):
        amount = Decimal(rng.randint(1, 10_000)) / 100
        if rng.random() < 0.7:
            target = rng.choice(ACCOUNTS)
            command: Deposit | Transfer = Deposit(account_id=target, amount=amount)
            operation = ("deposit", "", target, str(amount))
        else:
            source, target = rng.sample(ACCOUNTS, 2)
            command = Transfer(source_id=source, target_id=target, amount=amount)
            operation = ("transfer", source, target, str(amount))
        try:
            result = app.handle(command)
        except DomainError:
            refused += 1
            continue
        except ConcurrencyError:
            gave_up += 1
            continue
        retried += result.attempts > 1
        accepted.append(operation)
    return accepted, retried, refused, gave_up


@pytest.mark.dynamodb_local
@pytest.mark.slow
def test_concurrent_processes_lose_and_double_nothing(local_store: DynamoDBEventStore) -> None:
    app = Application(store=local_store, aggregates=[Account], handlers=[transfer])
    for account_id in ACCOUNTS:
        app.handle(OpenAccount(account_id=account_id, owner=account_id))

    endpoint = local_store.endpoint_url
    assert endpoint is not None
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        outcomes = pool.starmap(
            _worker, [(endpoint, local_store.tables.prefix, seed) for seed in range(PROCESSES)]
        )

    accepted = [operation for operations, *_ in outcomes for operation in operations]
    retried = sum(outcome[1] for outcome in outcomes)
    refused = sum(outcome[2] for outcome in outcomes)
    gave_up = sum(outcome[3] for outcome in outcomes)
    assert len(accepted) + refused + gave_up == PROCESSES * COMMANDS_PER_PROCESS
    assert retried > 0, "no command met a conflict: the test would prove nothing"

    expected_balance: dict[str, Decimal] = defaultdict(Decimal)
    expected_events: dict[str, int] = defaultdict(int)
    for kind, source, target, amount in accepted:
        expected_balance[target] += Decimal(amount)
        expected_events[target] += 1
        if kind == "transfer":
            expected_balance[source] -= Decimal(amount)
            expected_events[source] += 1

    with_snapshots = Application(
        store=local_store, aggregates=[Account], snapshots={Account: EveryNEvents(7)}
    )
    for account_id in ACCOUNTS:
        events = local_store.load_events("Account", account_id)
        assert [e.version for e in events] == list(range(1, len(events) + 1))  # no gap
        assert len(events) == 1 + expected_events[account_id]  # nothing lost, nothing doubled
        assert app.get(Account, account_id).balance == expected_balance[account_id]
        assert with_snapshots.get(Account, account_id).balance == expected_balance[account_id]
    deposited = sum(Decimal(a) for kind, _, _, a in accepted if kind == "deposit")
    assert sum(app.get(Account, a).balance for a in ACCOUNTS) == deposited  # money is conserved
