"""The stores the integration tests run on, each test once per backend."""

from __future__ import annotations

import pytest

from framework import DynamoDBEventStore
from framework.store import EventStore


@pytest.fixture(params=["moto", pytest.param("local", marks=pytest.mark.dynamodb_local)])
def dynamodb(request: pytest.FixtureRequest) -> DynamoDBEventStore:
    """The DynamoDB store, on moto and on DynamoDB Local."""
    fixture = "moto_store" if request.param == "moto" else "local_store"
    store: DynamoDBEventStore = request.getfixturevalue(fixture)
    return store


@pytest.fixture(
    params=[
        "memory_store",
        "moto_store",
        pytest.param("local_store", marks=pytest.mark.dynamodb_local),
    ]
)
def store(request: pytest.FixtureRequest) -> EventStore:
    """Every store: in memory, on moto and on DynamoDB Local."""
    chosen: EventStore = request.getfixturevalue(request.param)
    return chosen
