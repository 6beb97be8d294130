"""The shipped event-store contract, run against the framework's own stores."""

from __future__ import annotations

from typing import Any, cast

import pytest

from framework.store import EventStore, InMemoryEventStore
from framework.store.items import Item
from framework.testing.contracts import EventStoreContract


class TestInMemoryStore(EventStoreContract):
    @pytest.fixture
    def store(self, memory_store: EventStore) -> EventStore:
        return memory_store


class TestMotoStore(EventStoreContract):
    @pytest.fixture
    def store(self, moto_store: EventStore) -> EventStore:
        return moto_store


@pytest.mark.dynamodb_local
class TestDynamoDBLocalStore(EventStoreContract):
    @pytest.fixture
    def store(self, local_store: EventStore) -> EventStore:
        return local_store


class ForwardingStore:
    """A store of another kind, as a user would write one: here it forwards to a memory store."""

    def __init__(self, inner: InMemoryEventStore) -> None:
        self.inner = inner
        self.tables = inner.tables

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class TestAStoreOfAnotherKind(EventStoreContract):
    """The contract runs on a store that is neither of the framework's, given the two raw hooks."""

    @pytest.fixture
    def store(self) -> EventStore:
        return cast(EventStore, ForwardingStore(InMemoryEventStore()))

    def plant_item(self, store: EventStore, table: str, item: Item) -> None:
        assert isinstance(store, ForwardingStore)
        store.inner.put_raw_item(table, item)

    def stored_item(self, store: EventStore, table: str, key: str) -> Item | None:
        assert isinstance(store, ForwardingStore) and table == store.tables.aggregates
        return store.inner.aggregate_item(key)


def test_without_the_hooks_a_store_of_another_kind_is_told_what_to_override() -> None:
    store = cast(EventStore, ForwardingStore(InMemoryEventStore()))
    with pytest.raises(TypeError, match="override the contract's plant_item"):
        EventStoreContract().plant_item(store, store.tables.events, {})
    with pytest.raises(TypeError, match="override the contract's stored_item"):
        EventStoreContract().stored_item(store, store.tables.aggregates, "k")
