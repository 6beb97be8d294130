"""Opening the store that ``framework.config.Settings`` describe, and the key ring beside it.

Every entry point (the CLI, the Lambda handler, an application's ``main``, a test fixture) opens
its store the same way, so that one set of settings means one store everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from framework.config import Settings
from framework.encryption import InMemoryKeyStorage, KeyRing, KmsKeyWrapper, WrappedKeyStorage
from framework.store.base import EventStore

__all__ = ["key_ring_for", "open_store"]


@contextmanager
def open_store(settings: Settings) -> Iterator[EventStore]:
    """The event store ``settings`` describe, for the length of the ``with`` block.

    ``dynamo``: a ``DynamoDBEventStore``, only described (nothing is contacted until it is used;
    its tables are not created). ``embedded``: DynamoDB on moto, in process, tables created, gone
    when the block ends. ``memory``: an empty ``InMemoryEventStore``.
    """
    if settings.backend == "memory":
        from framework.store.large_payloads import InMemoryPayloadStore
        from framework.store.memory import InMemoryEventStore

        payloads = InMemoryPayloadStore() if settings.payload_bucket else None
        yield InMemoryEventStore(table_prefix=settings.table_prefix, large_payloads=payloads)
        return
    if settings.backend == "embedded":
        from framework.store.dynamodb.embedded import embedded_dynamodb_store

        with embedded_dynamodb_store(
            table_prefix=settings.table_prefix, region_name=settings.region
        ) as store:
            yield store
        return
    from framework.store.dynamodb.event_store import DynamoDBEventStore

    yield DynamoDBEventStore.from_settings(settings)


def key_ring_for(settings: Settings, store: EventStore) -> KeyRing | None:
    """Personal-data keys wrapped by the configured KMS key and kept beside ``store``'s items.

    ``None`` when no KMS key is configured: an application then brings its own ``KeyRing``
    (a local wrapper in development, say).
    """
    if settings.kms_key_id is None:
        return None
    storage: WrappedKeyStorage
    from framework.store.dynamodb.event_store import DynamoDBEventStore

    if isinstance(store, DynamoDBEventStore):
        from framework.store.dynamodb.key_storage import DynamoDBKeyStorage

        storage = DynamoDBKeyStorage(store)
    else:
        storage = InMemoryKeyStorage()
    return KeyRing(KmsKeyWrapper(settings.kms_key_id, region_name=settings.region), storage)
