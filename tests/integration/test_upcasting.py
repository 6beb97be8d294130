"""Old-version events written by hand are read through a chain of upcasters, on every store."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from attrs import frozen

from framework import (
    Aggregate,
    Application,
    Command,
    Event,
    command_handler,
    event_handler,
    upcaster,
)
from framework.errors import CorruptEvent, DefinitionError
from framework.store import EventStore, StoredEvent
from framework.store.items import Item, event_item
from framework.testing.records import plant_item


# Version history of one event: v1 {"cents": 1250}; v2 {"amount": "12.50"};
# v3 {"amount": "12.50", "currency": "EUR"}. The class was also renamed along the way.
@frozen
class MoneyAdded(Event, name="PiggyFed", version=3):
    amount: Decimal
    currency: str


@upcaster("PiggyFed", from_version=1)
def cents_to_amount(document: dict[str, object]) -> dict[str, object]:
    cents = int(str(document["cents"]))
    return {"amount": str(Decimal(cents) / 100)}


@upcaster("PiggyFed", from_version=2)
def add_currency(document: dict[str, object]) -> dict[str, object]:
    return {**document, "currency": "EUR"}


@frozen
class Feed(Command, target="bank_id"):
    bank_id: str
    amount: Decimal


class PiggyBank(Aggregate):
    total: Decimal = Decimal(0)
    currencies: frozenset[str] = frozenset()

    @command_handler(Feed, creates=None)
    def feed(self, command: Feed) -> None:
        self.emit(MoneyAdded(amount=command.amount, currency="EUR"))

    @event_handler(MoneyAdded)
    def _added(self, event: MoneyAdded) -> None:
        self.total += event.amount
        self.currencies = self.currencies | {event.currency}


def old_event(version: int, schema: int, document: dict[str, object]) -> Item:
    return event_item(
        StoredEvent(
            aggregate_type="PiggyBank",
            aggregate_id="p",
            version=version,
            event_type="PiggyFed",
            schema=schema,
            payload=json.dumps(document).encode(),
            occurred_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
            change_set_id=f"old-{version}",
            command_id=f"old-{version}",
            correlation_id="old",
            causation_id="old",
        )
    )


def test_every_old_version_is_read_through_the_chain(store: EventStore) -> None:
    plant_item(store, store.tables.events, old_event(1, 1, {"cents": 1250}))
    plant_item(store, store.tables.events, old_event(2, 2, {"amount": "0.75"}))
    plant_item(store, store.tables.events, old_event(3, 3, {"amount": "1", "currency": "EUR"}))
    plant_item(
        store,
        store.tables.aggregates,
        {"pk": {"S": "PiggyBank#p"}, "version": {"N": "3"}, "aggregate_type": {"S": "PiggyBank"}},
    )
    app = Application(store=store, aggregates=[PiggyBank])
    bank = app.get(PiggyBank, "p")
    assert (bank.total, bank.currencies, bank.version) == (Decimal("14.25"), frozenset({"EUR"}), 3)
    app.handle(Feed(bank_id="p", amount=Decimal(1)))  # new events are written at version 3
    newest = store.load_events("PiggyBank", "p")[-1]
    assert (newest.version, newest.schema) == (4, 3)
    assert [e.payload for e in store.load_events("PiggyBank", "p")][:1] == [b'{"cents": 1250}']


def test_an_upcaster_that_fails_is_a_corrupt_event_naming_the_stream(store: EventStore) -> None:
    plant_item(store, store.tables.events, old_event(1, 1, {"no_cents": True}))
    with pytest.raises(CorruptEvent, match="version 1 of stream 'PiggyBank#p'"):
        Application(store=store, aggregates=[PiggyBank]).get(PiggyBank, "p")


def test_a_missing_upcaster_fails_at_start_up(memory_store: EventStore) -> None:
    @frozen
    class Reshaped(Event, name="ReshapedTwice", version=3):
        value: int

    @upcaster("ReshapedTwice", from_version=2)
    def two_to_three(document: dict[str, object]) -> dict[str, object]:
        return document

    class Holder(Aggregate):
        @event_handler(Reshaped)
        def _reshaped(self, event: Reshaped) -> None:
            pass

    with pytest.raises(DefinitionError, match=r"add @upcaster\('ReshapedTwice', from_version=1\)"):
        Application(store=memory_store, aggregates=[Holder])


def test_two_upcasters_for_one_step_are_refused() -> None:
    def other(document: dict[str, object]) -> dict[str, object]:
        return document

    with pytest.raises(DefinitionError, match="two upcasters from version 1 of 'PiggyFed'"):
        upcaster("PiggyFed", from_version=1)(other)
