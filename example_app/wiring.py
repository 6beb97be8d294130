"""Builds the example application on any event store."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator

import attrs

from example_app.bank import UPCASTERS, Account, transfer_money
from example_app.users import User
from framework import Application, DynamoDBEventStore, EveryNEvents
from framework.config import Settings
from framework.encryption import (
    InMemoryKeyStorage,
    KeyRing,
    KeyWrapper,
    LocalKeyWrapper,
    WrappedKeyStorage,
)
from framework.errors import ConfigurationError
from framework.store import DynamoDBKeyStorage, EventStore, key_ring_for, open_store

SNAPSHOT_EVERY = 5
"""Small on purpose, so that the demo shows snapshots at work."""

_DEVELOPMENT_KEY = hashlib.sha256(
    b"example-app development master key: never in production"
).digest()


def example_settings() -> Settings:
    """The framework's settings (environment over ``FRAMEWORK_CONFIG``'s TOML file), with the
    embedded DynamoDB when they name no store: the example runs with no configuration at all."""
    return Settings.load(default_backend="embedded")


@contextlib.contextmanager
def open_example_store(embedded_prefix: str) -> Iterator[tuple[DynamoDBEventStore, Settings]]:
    """The DynamoDB store the settings describe, its tables created, and the settings.

    The embedded store's tables are named ``{embedded_prefix}-*`` unless a prefix is set. The
    example needs DynamoDB (its read models are tables): ``STORAGE_BACKEND=memory`` is refused.
    """
    settings = example_settings()
    if settings.backend == "memory":
        raise ConfigurationError(
            f"{settings.source_of('backend')}='memory': the example app keeps its read models "
            "in DynamoDB tables; use dynamo or embedded"
        )
    if settings.backend == "embedded" and "table_prefix" not in settings.sources:
        settings = attrs.evolve(settings, table_prefix=embedded_prefix)
    with open_store(settings) as store:
        assert isinstance(store, DynamoDBEventStore)
        if settings.backend == "dynamo":
            store.create_tables()
        yield store, settings


def key_ring(store: EventStore, settings: Settings | None = None) -> KeyRing:
    """The users' data keys, next to the store's items.

    Wrapped by the AWS KMS key of the settings (``KMS_KEY_ID``) when one is set; otherwise by a
    local development key (``EXAMPLE_MASTER_KEY``, 64 hex digits, or a fixed one that protects
    nothing: development only).
    """
    configured_ring = key_ring_for(settings or example_settings(), store)
    if configured_ring is not None:
        return configured_ring
    wrapper: KeyWrapper
    configured = os.environ.get("EXAMPLE_MASTER_KEY")
    wrapper = LocalKeyWrapper(bytes.fromhex(configured) if configured else _DEVELOPMENT_KEY)
    storage: WrappedKeyStorage = (
        DynamoDBKeyStorage(store) if isinstance(store, DynamoDBEventStore) else InMemoryKeyStorage()
    )
    return KeyRing(wrapper, storage)


def build_application(store: EventStore, keys: KeyRing | None = None) -> Application:
    """The bank application: accounts, transfers, users, a snapshot every few events."""
    return Application(
        store=store,
        aggregates=[Account, User],
        handlers=[transfer_money],
        snapshots={Account: EveryNEvents(SNAPSHOT_EVERY), User: EveryNEvents(SNAPSHOT_EVERY)},
        keys=keys or key_ring(store),
        upcasters=UPCASTERS,
    )
