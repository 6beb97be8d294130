"""What every benchmark shares: a warm DynamoDB Local, a fresh store, a grown account, medians,
a markdown table."""

from __future__ import annotations

import os
import platform
import statistics
import uuid
from collections.abc import Sequence
from decimal import Decimal

from framework import Application, DynamoDBEventStore
from framework.testing.bank import DepositMany, OpenAccount
from framework.testing.dynamodb_local import DynamoDBLocal

GROWTH_STEP = 50
"""Events a command while growing an account: with a snapshot every 100, a transaction then holds
the snapshot too and stays within DynamoDB's 100 items."""


def start_dynamodb_local() -> DynamoDBLocal:
    """A DynamoDB Local, warmed up: a cold JVM is about three times slower."""
    server = DynamoDBLocal()
    server.start()
    server.warm_up()
    return server


def fresh_store(endpoint: str) -> DynamoDBEventStore:
    store = DynamoDBEventStore(table_prefix=f"bench{uuid.uuid4().hex[:8]}", endpoint_url=endpoint)
    store.create_tables()
    return store


def grow_account(app: Application, account_id: str, events: int) -> None:
    """Open ``account_id`` and deposit into it until it holds ``events`` events, 50 a command."""
    app.handle(OpenAccount(account_id=account_id, owner="bench"))
    ones = tuple(Decimal(1) for _ in range(GROWTH_STEP))
    grown = 1
    while grown < events:
        step = min(events - grown, GROWTH_STEP - 1 if grown == 1 else GROWTH_STEP)
        app.handle(DepositMany(account_id=account_id, amounts=ones[:step]))
        grown += step


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """The machine a figure was measured on, for the tables in docs/benchmarks.md."""
    cores = os.cpu_count()
    return f"{platform.machine()}, {cores} cores, Python {platform.python_version()}"
