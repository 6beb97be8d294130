"""Builds the example application on any event store."""

from __future__ import annotations

import hashlib
import os

from example_app.bank import UPCASTERS, Account, transfer_money
from example_app.users import User
from framework import Application, DynamoDBEventStore, EveryNEvents
from framework.encryption import (
    InMemoryKeyStorage,
    KeyRing,
    KeyWrapper,
    KmsKeyWrapper,
    LocalKeyWrapper,
    WrappedKeyStorage,
)
from framework.store import DynamoDBKeyStorage, EventStore

SNAPSHOT_EVERY = 5
"""Small on purpose, so that the demo shows snapshots at work."""

_DEVELOPMENT_KEY = hashlib.sha256(
    b"example-app development master key: never in production"
).digest()


def key_ring(store: EventStore) -> KeyRing:
    """The users' data keys, next to the store's items.

    Wrapped by the AWS KMS key ``KMS_KEY_ID`` when set; otherwise by a local development key
    (``EXAMPLE_MASTER_KEY``, 64 hex digits, or a fixed one that protects nothing: development
    only).
    """
    wrapper: KeyWrapper
    if os.environ.get("KMS_KEY_ID"):
        wrapper = KmsKeyWrapper(os.environ["KMS_KEY_ID"])
    else:
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
