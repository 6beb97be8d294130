"""Builders of store records, and raw item access, for tests that talk to a store directly.

The shipped event-store contract commits what these build; the framework's own tests use them
too. Records are stamped ``COMMITTED_AT``, a minute before the test run.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from framework.store import (
    AggregateChange,
    ChangeSet,
    EventStore,
    Snapshot,
    StoredEvent,
    UniqueClaim,
    VersionCheck,
)
from framework.store.items import Item

__all__ = [
    "COMMITTED_AT",
    "change_set",
    "new_events",
    "plant_event_item",
    "plant_item",
    "stored_item",
    "stream_dump",
]

COMMITTED_AT = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).replace(microsecond=123456)
"""When the planted change sets were committed: a minute ago, never a fixed date. Command records
expire a week after their commit, and DynamoDB Local's TTL sweep deletes expired ones: with a
fixed date, the idempotency tests began to fail, at random, a week after it."""


def new_events(
    aggregate_id: str,
    first_version: int,
    count: int,
    *,
    aggregate_type: str = "Account",
    payload: bytes = b'{"amount":"1"}',
    change_set_id: str = "cs",
    command_id: str = "cmd",
) -> tuple[StoredEvent, ...]:
    return tuple(
        StoredEvent(
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            version=first_version + offset,
            event_type="Deposited",
            schema=1,
            payload=payload,
            occurred_at=COMMITTED_AT,
            change_set_id=change_set_id,
            command_id=command_id,
            correlation_id="corr",
            causation_id=command_id,
        )
        for offset in range(count)
    )


def change_set(
    changes: Sequence[tuple[str, int, int]],
    *,
    command_id: str | None = None,
    claims: Sequence[UniqueClaim] = (),
    payload: bytes = b'{"amount":"1"}',
    snapshot_state: bytes | None = None,
    aggregate_type: str = "Account",
    checks: Sequence[tuple[str, int]] = (),
    fingerprint: str | None = None,
) -> ChangeSet:
    """A change set appending ``count`` events to each ``(aggregate_id, expected, count)``.

    ``checks`` are ``(aggregate_id, expected_version)`` of aggregates read but not changed.
    """
    change_set_id = str(uuid.uuid4())
    command_id = command_id or str(uuid.uuid4())
    aggregates = []
    for aggregate_id, expected, count in changes:
        events = new_events(
            aggregate_id,
            expected + 1,
            count,
            aggregate_type=aggregate_type,
            payload=payload,
            change_set_id=change_set_id,
            command_id=command_id,
        )
        snapshot = None
        if snapshot_state is not None:
            snapshot = Snapshot(
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                version=expected + count,
                state=snapshot_state,
                schema="s1",
                created_at=COMMITTED_AT,
            )
        aggregates.append(AggregateChange(aggregate_type, aggregate_id, expected, events, snapshot))
    return ChangeSet(
        change_set_id=change_set_id,
        command_id=command_id,
        committed_at=COMMITTED_AT,
        aggregates=tuple(aggregates),
        claims=tuple(claims),
        result=b'{"ok":true}',
        checks=tuple(VersionCheck(aggregate_type, i, v) for i, v in checks),
        command_fingerprint=fingerprint,
    )


def plant_item(store: EventStore, table: str, item: Item) -> None:
    """Write an item as is, bypassing the store's checks (to plant bad or old data)."""
    from framework import DynamoDBEventStore, InMemoryEventStore

    if isinstance(store, InMemoryEventStore):
        store.put_raw_item(table, item)
    elif isinstance(store, DynamoDBEventStore):
        store.client.put_item(TableName=table, Item=item)
    else:
        raise TypeError(
            f"cannot plant items in {type(store).__name__}: override the contract's plant_item"
        )


def stored_item(store: EventStore, table: str, key: str) -> Item | None:
    """The item of ``table`` under partition key ``key``, as stored, bypassing the store's reads."""
    from framework import DynamoDBEventStore, InMemoryEventStore

    if isinstance(store, InMemoryEventStore):
        if table != store.tables.aggregates:
            raise ValueError(
                f"the in-memory store reads raw items of {store.tables.aggregates} only"
            )
        return store.aggregate_item(key)
    if isinstance(store, DynamoDBEventStore):
        response = store.client.get_item(
            TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True
        )
        item: Item | None = response.get("Item")
        return item
    raise TypeError(
        f"cannot read raw items of {type(store).__name__}: override the contract's stored_item"
    )


def plant_event_item(store: EventStore, item: Item) -> None:
    """Write an events-table item as is."""
    plant_item(store, store.tables.events, item)


def stream_dump(store: EventStore, aggregate_ids: Sequence[str]) -> list[object]:
    """Everything readable about some streams, to show that a refused change wrote nothing."""
    dump: list[object] = []
    for aggregate_id in aggregate_ids:
        dump.append(store.load_events("Account", aggregate_id))
        dump.append(store.load_snapshot("Account", aggregate_id))
    return dump
