"""The shipped event-store contract, run against the framework's own stores."""

from __future__ import annotations

from typing import Any, cast

import pytest

from framework import DynamoDBEventStore
from framework.aio import BridgedClient, BridgeError, open_async_store, run_in_greenlet
from framework.config import Settings
from framework.errors import ConfigurationError
from framework.store import EventStore, InMemoryEventStore, StoredEvent
from framework.store.dynamodb import event_store as dynamodb_module
from framework.store.items import Item
from framework.testing.contracts import EventStoreContract
from framework.testing.records import change_set
from tests.support.aio import BridgedLoop


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


@pytest.mark.dynamodb_local
class TestAsyncDynamoDBLocalStore(EventStoreContract):
    """The same store code on aiobotocore: each test body runs in the bridge, on the test's loop,
    so every request it makes (the contract's Applications' included) is awaited, not blocking."""

    bodies_in_bridge = True

    @pytest.fixture
    def store(self, async_local_store: EventStore, bridged: BridgedLoop) -> EventStore:
        return async_local_store


@pytest.mark.dynamodb_local
def test_the_async_store_runs_its_requests_on_aiobotocore_through_the_bridge(
    async_local_store: DynamoDBEventStore, bridged: BridgedLoop
) -> None:
    """Not a boto3 client in disguise: outside the bridge a request is refused, not blocking."""
    assert isinstance(async_local_store.client, BridgedClient)
    with pytest.raises(BridgeError):
        async_local_store.load_events("Account", "a1")
    assert bridged.call(async_local_store.load_events, "Account", "a1") == []


@pytest.mark.dynamodb_local
def test_the_async_store_decodes_query_answers_the_lean_way(
    dynamodb_settings: Settings, bridged: BridgedLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its aiobotocore client gets the store's own ``Query`` decoding, as a client the sync store
    makes does: the items come from the JSON, not from botocore's shape-driven parser."""
    decoded: list[int] = []
    original = dynamodb_module.fast_query_items

    def counting(**hook: Any) -> None:  # botocore passes a hook's arguments by name
        original(**hook)
        decoded.append(len(hook["customized_response_dict"].get("Items", [])))

    monkeypatch.setattr(dynamodb_module, "fast_query_items", counting)

    async def scenario() -> list[StoredEvent]:
        async with open_async_store(DynamoDBEventStore.from_settings(dynamodb_settings)) as store:
            await run_in_greenlet(store.create_tables)
            try:
                await run_in_greenlet(store.commit, change_set([("a1", 0, 3)]))
                return await run_in_greenlet(store.load_events, "Account", "a1")
            finally:
                await run_in_greenlet(store.delete_tables)

    assert [event.version for event in bridged.run(scenario())] == [1, 2, 3]
    assert 3 in decoded


def test_a_store_with_a_client_cannot_be_opened_on_aiobotocore(bridged: BridgedLoop) -> None:
    store = DynamoDBEventStore(client=object(), endpoint_url="http://127.0.0.1:1")

    async def scenario() -> None:
        async with open_async_store(store):
            pass

    with pytest.raises(ConfigurationError, match="already has a client"):
        bridged.run(scenario())
