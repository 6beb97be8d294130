"""The shipped position-store contract, run against the framework's own position stores."""

from __future__ import annotations

import pytest

from framework.store import DynamoDBEventStore
from framework.store.dynamodb.positions import DynamoDBPositionStore
from framework.store.positions import InMemoryPositionStore, PositionStore
from framework.testing.contracts import PositionStoreContract


class TestInMemoryPositionStore(PositionStoreContract):
    @pytest.fixture
    def positions(self) -> PositionStore:
        return InMemoryPositionStore()


class TestMotoPositionStore(PositionStoreContract):
    @pytest.fixture
    def positions(self, moto_store: DynamoDBEventStore) -> PositionStore:
        return DynamoDBPositionStore(moto_store)


@pytest.mark.dynamodb_local
class TestDynamoDBLocalPositionStore(PositionStoreContract):
    @pytest.fixture
    def positions(self, local_store: DynamoDBEventStore) -> PositionStore:
        return DynamoDBPositionStore(local_store)
