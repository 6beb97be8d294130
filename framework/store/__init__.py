"""Event stores: the port (``EventStore``), its records, and the in-memory and DynamoDB adapters."""

from framework.store.base import EventStore
from framework.store.dynamodb import DynamoDBEventStore
from framework.store.keys import stream_key
from framework.store.memory import InMemoryEventStore
from framework.store.records import (
    AggregateChange,
    ChangeSet,
    ProcessedCommand,
    Snapshot,
    StoredEvent,
    UniqueClaim,
    VersionCheck,
)

__all__ = [
    "AggregateChange",
    "ChangeSet",
    "DynamoDBEventStore",
    "EventStore",
    "InMemoryEventStore",
    "ProcessedCommand",
    "Snapshot",
    "StoredEvent",
    "UniqueClaim",
    "VersionCheck",
    "stream_key",
]
