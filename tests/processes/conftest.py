"""The deadlines table on DynamoDB Local, next to the plugin's store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from framework import DynamoDBEventStore
from framework.projections.dynamodb_deadlines import DynamoDBDeadlineStore


@pytest.fixture
def dynamodb_deadlines(dynamodb_store: DynamoDBEventStore) -> Iterator[DynamoDBDeadlineStore]:
    """A deadline store with its table created, deleted after the test."""
    deadlines = DynamoDBDeadlineStore(dynamodb_store)
    deadlines.create_table()
    try:
        yield deadlines
    finally:
        deadlines.delete_table()
