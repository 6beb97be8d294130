"""Crypto-shredding end to end: personal data is stored encrypted, and forgetting erases it
everywhere (events, snapshots, replays, read models) while the streams stay replayable."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from attrs import frozen

from example_app.users import ChangeEmail, ForgetUser, RegisterUser, User, UserRegistered
from example_app.wiring import build_application
from framework import Application, DynamoDBEventStore, Event, Projector, event_handler
from framework.encryption import (
    ERASED,
    FORGOTTEN,
    InMemoryKeyStorage,
    KeyRing,
    KmsKeyWrapper,
    LocalKeyWrapper,
)
from framework.errors import DefinitionError, SubjectForgotten
from framework.mapping import EventMapper
from framework.projections import CatchUpRunner, Envelope
from framework.store import EventStore, InMemoryPositionStore
from framework.store.dynamodb.key_storage import DynamoDBKeyStorage


class Names(Projector, name="names"):
    """An in-memory directory, to replay the users' events into."""

    def __init__(self, keys: KeyRing) -> None:
        super().__init__()
        self.key_ring = keys
        self.names: dict[str, tuple[str, str]] = {}

    @event_handler(UserRegistered)
    def _registered(self, event: UserRegistered, envelope: Envelope) -> None:
        self.names[envelope.aggregate_id] = (event.name, event.email)


def keys_for(store: EventStore) -> KeyRing:
    storage = (
        DynamoDBKeyStorage(store) if isinstance(store, DynamoDBEventStore) else InMemoryKeyStorage()
    )
    return KeyRing(LocalKeyWrapper(os.urandom(32)), storage, cache_seconds=0)


def raw_payloads(store: EventStore, user_id: str) -> bytes:
    return b"".join(record.payload for record in store.load_events("User", user_id))


def test_forgetting_erases_one_user_everywhere_and_only_them(store: EventStore) -> None:
    keys = keys_for(store)
    app = build_application(store, keys)
    app.handle(RegisterUser(user_id="grace", name="Grace Hopper", email="grace@navy.example"))
    app.handle(ChangeEmail(user_id="grace", email="g.hopper@navy.example"))
    app.handle(RegisterUser(user_id="alan", name="Alan Turing", email="alan@bletchley.example"))
    for _ in range(4):  # enough changes for a snapshot of grace (one every 5 events)
        app.handle(ChangeEmail(user_id="grace", email="grace@navy.example"))
        app.handle(ChangeEmail(user_id="grace", email="g.hopper@navy.example"))

    stored = raw_payloads(store, "grace")
    assert b"Grace" not in stored and b"navy" not in stored  # encrypted at rest
    snapshot = store.load_snapshot("User", "grace")
    assert snapshot is not None and b"navy" not in snapshot.state
    assert app.get(User, "grace").email == "g.hopper@navy.example"

    app.handle(ForgetUser(user_id="grace"))
    assert keys.storage.load("User#grace") is FORGOTTEN
    assert isinstance(keys.storage.load("User#alan"), bytes)

    # Events: the stream replays, the personal fields read as erased.
    fresh = build_application(store, keys)
    grace = fresh.get(User, "grace")
    assert (grace.name, grace.email, grace.forgotten) == (None, None, True)
    mapper = EventMapper([UserRegistered], keys=keys)
    first = store.load_events("User", "grace")[0]
    event = mapper.decode(
        first.event_type, first.schema, first.payload, stream=first.stream, version=1
    )
    assert event == UserRegistered(name=ERASED, email=ERASED)
    # The snapshot taken before "forget me" can no longer be read: it is ignored, not misread.
    old_snapshot = store.load_snapshot("User", "grace")
    assert old_snapshot is not None and old_snapshot.version < grace.version
    with pytest.raises(ValueError, match="sealed with a key that is gone"):
        mapper.decode_state(User, old_snapshot.state)
    # Replays into read models show erased data for her, intact data for everyone else.
    names = Names(keys)
    CatchUpRunner(store, InMemoryPositionStore(), [names], safety_window=_zero()).run()
    assert names.names == {
        "grace": (ERASED, ERASED),
        "alan": ("Alan Turing", "alan@bletchley.example"),
    }
    assert fresh.get(User, "alan").email == "alan@bletchley.example"
    # Her address is free again; nothing in the claim items ever showed it.
    fresh.handle(RegisterUser(user_id="grace-2", name="G", email="grace@navy.example"))


def test_personal_fields_need_a_key_ring_and_text_types(memory_store: EventStore) -> None:
    with pytest.raises(DefinitionError, match="give the Application a KeyRing"):
        Application(store=memory_store, aggregates=[User])

    with pytest.raises(
        DefinitionError, match=re.escape("personal fields must be str or str | None")
    ):

        @frozen
        class Measured(Event, personal=("height",)):
            height: int


@pytest.fixture
def kms() -> Iterator[Any]:
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


def test_keys_wrapped_by_kms(kms: Any) -> None:
    key_id = kms.create_key(Description="users")["KeyMetadata"]["KeyId"]
    keys = KeyRing(KmsKeyWrapper(key_id, client=kms), cache_seconds=0)
    sealed = keys.encrypt_text("User#u1", "ada@example.org", "UserRegistered.email")
    assert "ada" not in str(sealed)
    assert keys.decrypt_text(sealed, "UserRegistered.email") == "ada@example.org"
    keys.forget("User#u1")
    assert keys.decrypt_text(sealed, "UserRegistered.email") is None
    with pytest.raises(SubjectForgotten):
        keys.encrypt_text("User#u1", "ada@example.org", "UserRegistered.email")


def _zero() -> dt.timedelta:
    return dt.timedelta(0)
