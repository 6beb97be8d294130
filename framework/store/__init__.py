"""Event stores: the ports (events, positions, payloads, keys), their records and their adapters.

This is the public module of the storage side. Every name is imported on first use: the domain
layer imports the key scheme (``framework.store.keys``), which runs this package, and must not
pay for the adapters; and only the DynamoDB adapters load the AWS SDK.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framework.store.base import EventStore
    from framework.store.dynamodb.embedded import embedded_dynamodb_store
    from framework.store.dynamodb.event_store import DynamoDBEventStore, translated_errors
    from framework.store.dynamodb.key_storage import DynamoDBKeyStorage
    from framework.store.dynamodb.positions import DynamoDBPositionStore
    from framework.store.keys import max_id_bytes, stream_key
    from framework.store.large_payloads import (
        InMemoryPayloadStore,
        PayloadStore,
        S3PayloadStore,
    )
    from framework.store.memory import InMemoryEventStore
    from framework.store.opening import key_ring_for, open_store
    from framework.store.positions import InMemoryPositionStore, PositionStore
    from framework.store.records import (
        AggregateChange,
        ChangeSet,
        ProcessedCommand,
        Snapshot,
        StoredEvent,
        StreamEvent,
        UniqueClaim,
        VersionCheck,
    )
else:
    from framework._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "EventStore": "framework.store.base",
            "DynamoDBEventStore": "framework.store.dynamodb.event_store",
            "translated_errors": "framework.store.dynamodb.event_store",
            "DynamoDBKeyStorage": "framework.store.dynamodb.key_storage",
            "DynamoDBPositionStore": "framework.store.dynamodb.positions",
            "embedded_dynamodb_store": "framework.store.dynamodb.embedded",
            "max_id_bytes": "framework.store.keys",
            "stream_key": "framework.store.keys",
            "InMemoryPayloadStore": "framework.store.large_payloads",
            "PayloadStore": "framework.store.large_payloads",
            "S3PayloadStore": "framework.store.large_payloads",
            "InMemoryEventStore": "framework.store.memory",
            "key_ring_for": "framework.store.opening",
            "open_store": "framework.store.opening",
            "InMemoryPositionStore": "framework.store.positions",
            "PositionStore": "framework.store.positions",
            "AggregateChange": "framework.store.records",
            "ChangeSet": "framework.store.records",
            "ProcessedCommand": "framework.store.records",
            "Snapshot": "framework.store.records",
            "StoredEvent": "framework.store.records",
            "StreamEvent": "framework.store.records",
            "UniqueClaim": "framework.store.records",
            "VersionCheck": "framework.store.records",
        },
    )

__all__ = [
    "AggregateChange",
    "ChangeSet",
    "DynamoDBEventStore",
    "DynamoDBKeyStorage",
    "DynamoDBPositionStore",
    "EventStore",
    "InMemoryEventStore",
    "InMemoryPayloadStore",
    "InMemoryPositionStore",
    "PayloadStore",
    "PositionStore",
    "ProcessedCommand",
    "S3PayloadStore",
    "Snapshot",
    "StoredEvent",
    "StreamEvent",
    "UniqueClaim",
    "VersionCheck",
    "embedded_dynamodb_store",
    "key_ring_for",
    "max_id_bytes",
    "open_store",
    "stream_key",
    "translated_errors",
]
