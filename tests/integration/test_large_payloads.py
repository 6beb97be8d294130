"""Events over the item limit go to S3 (moto) or an in-memory payload store, and come back."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from attrs import frozen

from framework import (
    Aggregate,
    Application,
    Command,
    DynamoDBEventStore,
    Event,
    InMemoryEventStore,
    command_handler,
    event_handler,
)
from framework.errors import CorruptEvent
from framework.store import EventStore
from framework.store.keys import max_id_bytes
from framework.store.large_payloads import InMemoryPayloadStore, PayloadStore, S3PayloadStore


@frozen
class Attach(Command, target="document_id"):
    document_id: str
    content: str


@frozen
class Attached(Event):
    content: str


class Document(Aggregate):
    sizes: tuple[int, ...] = ()

    @command_handler(Attach, creates=None)
    def attach(self, command: Attach) -> None:
        self.emit(Attached(content=command.content))

    @event_handler(Attached)
    def _attached(self, event: Attached) -> None:
        self.sizes = (*self.sizes, len(event.content))


@pytest.fixture(params=["memory", "moto"])
def stores(request: pytest.FixtureRequest) -> Iterator[tuple[EventStore, PayloadStore]]:
    if request.param == "memory":
        payloads: PayloadStore = InMemoryPayloadStore()
        yield InMemoryEventStore(large_payloads=payloads), payloads
        return
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="events-large")
        payloads = S3PayloadStore("events-large", client=s3)
        store = DynamoDBEventStore(table_prefix="large", large_payloads=payloads)
        store.create_tables()
        yield store, payloads


def big_text() -> str:
    return secrets.token_urlsafe(450_000)  # ~600 KB of text, ~450 KB even compressed


def test_a_large_event_round_trips_through_the_payload_store(
    stores: tuple[EventStore, PayloadStore],
) -> None:
    store, _ = stores
    app = Application(store=store, aggregates=[Document])
    content = big_text()
    app.handle(Attach(document_id="d", content=content))
    app.handle(Attach(document_id="d", content="small"))
    document = app.get(Document, "d")
    assert document.sizes == (len(content), 5)
    offloaded, small = store.load_events("Document", "d")
    assert len(offloaded.payload) > 300_000  # resolved: the real payload, not the reference
    assert small.payload.startswith(b"{")
    history = store.load_history("Document", "d")  # what the aggregate was loaded from
    assert [e.payload for e in history] == [offloaded.payload, small.payload]
    feed = list(store.read_feed())
    assert [len(e.payload) > 300_000 for e in feed] == [True, False]


def test_a_missing_or_altered_object_is_a_corrupt_event(
    stores: tuple[EventStore, PayloadStore],
) -> None:
    store, payloads = stores
    app = Application(store=store, aggregates=[Document])
    app.handle(Attach(document_id="d", content=big_text()))
    app.handle(Attach(document_id="e", content=big_text()))
    keys = _keys(payloads)
    payloads.put(keys[0], b"tampered")
    with pytest.raises(CorruptEvent, match="fails its checksum"):
        app.get(Document, keys[0].split("/")[0].split("#")[1])
    payloads.delete(keys[1])
    with pytest.raises(CorruptEvent, match="is missing"):
        app.get(Document, keys[1].split("/")[0].split("#")[1])


def test_a_failed_commit_leaves_no_object_behind(stores: tuple[EventStore, PayloadStore]) -> None:
    store, payloads = stores
    app = Application(store=store, aggregates=[Document])
    app.handle(Attach(document_id="d", content="first"))
    change = app.unit_of_work(Attach(document_id="d", content=big_text()))
    change.get(Document, "d").attach(Attach(document_id="d", content=big_text()))
    app.handle(Attach(document_id="d", content="meanwhile"))
    with pytest.raises(Exception, match="changed concurrently"):
        change.commit()
    assert _keys(payloads) == []


def _keys(payloads: PayloadStore) -> list[str]:
    if isinstance(payloads, InMemoryPayloadStore):
        return sorted(payloads._objects)
    client: Any = payloads.client  # type: ignore[attr-defined]
    listed = client.list_objects_v2(Bucket=payloads.bucket).get("Contents", [])
    return sorted(obj["Key"].removeprefix("events/") for obj in listed)


def test_an_event_of_the_longest_id_is_offloaded_under_a_short_object_key(
    stores: tuple[EventStore, PayloadStore],
) -> None:
    # S3 keys are limited to 1,024 bytes: a long stream is named by its digest in the key.
    store, payloads = stores
    longest = "é" * (max_id_bytes("Document") // 2)
    app = Application(store=store, aggregates=[Document])
    content = big_text()
    app.handle(Attach(document_id=longest, content=content))
    assert app.get(Document, longest).sizes == (len(content),)
    if isinstance(payloads, InMemoryPayloadStore):
        (key,) = payloads.keys()
        assert key.startswith("Document#sha256-") and len(key.encode()) < 200
