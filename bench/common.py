"""What every benchmark shares: a warm DynamoDB Local, a fresh store, medians, a markdown table."""

from __future__ import annotations

import os
import platform
import statistics
import uuid
from collections.abc import Sequence

from framework import DynamoDBEventStore
from framework.testing.dynamodb_local import DynamoDBLocal


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
