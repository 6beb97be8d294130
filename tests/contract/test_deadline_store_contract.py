"""The shipped deadline-store contract, run against the framework's own deadline stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from framework.projections import DeadlineStore, DynamoDBDeadlineStore, InMemoryDeadlineStore
from framework.store import DynamoDBEventStore
from framework.testing.contracts import DeadlineStoreContract


class TestInMemoryDeadlineStore(DeadlineStoreContract):
    @pytest.fixture
    def deadlines(self) -> DeadlineStore:
        return InMemoryDeadlineStore()


class TestMotoDeadlineStore(DeadlineStoreContract):
    @pytest.fixture
    def deadlines(self, moto_store: DynamoDBEventStore) -> DeadlineStore:
        store = DynamoDBDeadlineStore(moto_store)
        store.create_table()
        return store


@pytest.mark.dynamodb_local
class TestDynamoDBLocalDeadlineStore(DeadlineStoreContract):
    @pytest.fixture
    def deadlines(self, local_store: DynamoDBEventStore) -> Iterator[DeadlineStore]:
        store = DynamoDBDeadlineStore(local_store)
        store.create_table()
        yield store
        store.delete_table()
