"""Old-version events written by hand are read through a chain of upcasters, on every store.

Upcasters belong to an application's mapper, never to the process: two applications in one
process read one stored type name each their own way, and a projector's engine reads old events
exactly as the application it is given (or the same upcasters) does."""

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
from framework.mapping import Upcaster
from framework.projections import Envelope, ProjectionEngine, Projector
from framework.projections.aws_lambda import load_upcasters, make_handler
from framework.store import EventStore, InMemoryPositionStore, StoredEvent
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


@upcaster("PiggyFed", from_version=2)
def add_swiss_currency(document: dict[str, object]) -> dict[str, object]:
    return {**document, "currency": "CHF"}


PIGGY_UPCASTERS: list[Upcaster] = [cents_to_amount, add_currency]


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


def piggy_app(store: EventStore, upcasters: list[Upcaster] = PIGGY_UPCASTERS) -> Application:
    return Application(store=store, aggregates=[PiggyBank], upcasters=upcasters)


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
    app = piggy_app(store)
    bank = app.get(PiggyBank, "p")
    assert (bank.total, bank.currencies, bank.version) == (Decimal("14.25"), frozenset({"EUR"}), 3)
    app.handle(Feed(bank_id="p", amount=Decimal(1)))  # new events are written at version 3
    newest = store.load_events("PiggyBank", "p")[-1]
    assert (newest.version, newest.schema) == (4, 3)
    assert [e.payload for e in store.load_events("PiggyBank", "p")][:1] == [b'{"cents": 1250}']


def test_an_upcaster_that_fails_is_a_corrupt_event_naming_the_stream(store: EventStore) -> None:
    plant_item(store, store.tables.events, old_event(1, 1, {"no_cents": True}))
    with pytest.raises(CorruptEvent, match="version 1 of stream 'PiggyBank#p'"):
        piggy_app(store).get(PiggyBank, "p")


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
        Application(store=memory_store, aggregates=[Holder], upcasters=[two_to_three])


def test_a_marked_upcaster_is_used_only_where_it_is_given(memory_store: EventStore) -> None:
    """``@upcaster`` registers nothing: PiggyFed's upcasters are defined in this module, yet an
    application not given them fails at start-up."""
    with pytest.raises(DefinitionError, match=r"add @upcaster\('PiggyFed', from_version=1\) and"):
        Application(store=memory_store, aggregates=[PiggyBank])
    with pytest.raises(DefinitionError, match="from_version=2"):
        Application(store=memory_store, aggregates=[PiggyBank], upcasters=[cents_to_amount])


def test_two_upcasters_for_one_step_are_refused(memory_store: EventStore) -> None:
    with pytest.raises(DefinitionError, match="two upcasters from version 2 of 'PiggyFed'"):
        piggy_app(memory_store, [cents_to_amount, add_currency, add_swiss_currency])
    piggy_app(memory_store, [cents_to_amount, add_currency, add_currency])  # the same one twice


def test_a_function_not_marked_is_refused(memory_store: EventStore) -> None:
    def unmarked(document: dict[str, object]) -> dict[str, object]:
        return document

    with pytest.raises(DefinitionError, match="not marked @upcaster"):
        piggy_app(memory_store, [*PIGGY_UPCASTERS, unmarked])
    with pytest.raises(DefinitionError, match="already the upcaster from version 1"):
        upcaster("PiggyFed", from_version=2)(cents_to_amount)


def plant_old_history(store: EventStore) -> None:
    plant_item(store, store.tables.events, old_event(1, 1, {"cents": 1250}))
    plant_item(store, store.tables.events, old_event(2, 2, {"amount": "0.75"}))
    plant_item(
        store,
        store.tables.aggregates,
        {"pk": {"S": "PiggyBank#p"}, "version": {"N": "2"}, "aggregate_type": {"S": "PiggyBank"}},
    )


def test_two_applications_in_one_process_read_one_type_each_their_own_way(
    memory_store: EventStore,
) -> None:
    plant_old_history(memory_store)
    euro = piggy_app(memory_store, [cents_to_amount, add_currency])
    swiss = piggy_app(memory_store, [cents_to_amount, add_swiss_currency])
    assert euro.get(PiggyBank, "p").currencies == frozenset({"EUR"})
    assert swiss.get(PiggyBank, "p").currencies == frozenset({"CHF"})
    assert euro.get(PiggyBank, "p").currencies == frozenset({"EUR"})  # nothing leaked back


class Currencies(Projector, name="currencies"):
    """Keeps, per stream, the currencies it read."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, set[str]] = {}

    @event_handler(MoneyAdded)
    def _added(self, event: MoneyAdded, envelope: Envelope) -> None:
        self.seen.setdefault(envelope.stream, set()).add(event.currency)


def test_a_projector_reads_old_events_exactly_as_the_application(memory_store: EventStore) -> None:
    plant_old_history(memory_store)
    swiss = piggy_app(memory_store, [cents_to_amount, add_swiss_currency])
    records = memory_store.load_events("PiggyBank", "p")
    with_mapper = Currencies()
    ProjectionEngine(with_mapper, memory_store, InMemoryPositionStore(), mapper=swiss.mapper).apply(
        records
    )
    with_upcasters = Currencies()
    ProjectionEngine(
        with_upcasters,
        memory_store,
        InMemoryPositionStore(),
        upcasters=[cents_to_amount, add_swiss_currency],
    ).apply(records)
    assert with_mapper.seen == with_upcasters.seen == {"PiggyBank#p": {"CHF"}}


def test_a_projection_engine_finds_a_missing_upcaster_when_it_is_built(
    memory_store: EventStore,
) -> None:
    positions = InMemoryPositionStore()
    with pytest.raises(DefinitionError, match=r"add @upcaster\('PiggyFed', from_version=1\)"):
        ProjectionEngine(Currencies(), memory_store, positions)
    with pytest.raises(DefinitionError, match=r"add @upcaster\('PiggyFed', from_version=1\)"):
        make_handler([Currencies()], memory_store, positions)
    with pytest.raises(DefinitionError, match="either the application's mapper or upcasters"):
        ProjectionEngine(
            Currencies(),
            memory_store,
            positions,
            mapper=piggy_app(memory_store).mapper,
            upcasters=PIGGY_UPCASTERS,
        )


def test_the_lambda_and_the_cli_name_upcasters_by_module_and_name() -> None:
    here = __name__
    assert load_upcasters(f"{here}:PIGGY_UPCASTERS") == PIGGY_UPCASTERS
    assert load_upcasters(f"{here}:cents_to_amount, {here}:add_currency") == PIGGY_UPCASTERS
    assert load_upcasters("") == []
    with pytest.raises(DefinitionError, match="not an @upcaster function"):
        load_upcasters(f"{here}:piggy_app")
    with pytest.raises(DefinitionError, match="names no upcaster"):
        load_upcasters(f"{here}:nothing_here")
