"""Whose personal data a field is, and that forgetting it is exact, permanent and complete.

Each test runs on the in-memory store, moto and DynamoDB Local, with a domain that is not the
example's: customers and employees sharing ids, and orders holding their customer's name.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import pytest
from attrs import frozen

from framework import (
    Aggregate,
    Application,
    Command,
    DynamoDBEventStore,
    Event,
    EveryNEvents,
    Projector,
    command_handler,
    event_handler,
    subject_of,
)
from framework.application import AggregateCache
from framework.encryption import (
    ERASED,
    FORGOTTEN,
    InMemoryKeyStorage,
    KeyRing,
    LocalKeyWrapper,
    WrappedKeyStorage,
)
from framework.errors import InvalidIdentifier, SubjectForgotten
from framework.mapping import EventMapper
from framework.projections import CatchUpRunner, Envelope
from framework.store import EventStore, InMemoryPositionStore
from framework.store.dynamodb.key_storage import DynamoDBKeyStorage


@frozen
class Register(Command, target="person_id", personal=("name",)):
    person_id: str
    name: str


@frozen
class Touch(Command, target="person_id"):
    """Changes nothing personal: lets a stream grow until a snapshot falls due."""

    person_id: str


@frozen
class Forget(Command, target="person_id"):
    person_id: str


@frozen
class Rename(Command, target="person_id", personal=("name",)):
    person_id: str
    name: str


@frozen
class Registered(Event, personal=("name",)):
    name: str


@frozen
class Touched(Event):
    pass


@frozen
class Renamed(Event, personal=("name",)):
    name: str


@frozen
class Forgotten(Event, forgets_subject=True):
    """Marks the person forgotten but, unlike the example's users, keeps the state's fields:
    what the state holds must be erased by the framework, not by the domain's good manners."""


class _Person(Aggregate):
    name: str = ""
    touches: int = 0
    forgotten: bool = False

    @command_handler(Register, creates=True)
    def register(self, command: Register) -> None:
        self.emit(Registered(name=command.name))

    @command_handler(Touch)
    def touch(self, command: Touch) -> None:
        self.emit(Touched())

    @command_handler(Rename)
    def rename(self, command: Rename) -> None:
        self.emit(Renamed(name=command.name))

    @command_handler(Forget)
    def forget(self, command: Forget) -> None:
        self.emit(Forgotten())

    @event_handler(Registered)
    def _registered(self, event: Registered) -> None:
        self.name = event.name

    @event_handler(Touched)
    def _touched(self, event: Touched) -> None:
        self.touches += 1

    @event_handler(Renamed)
    def _renamed(self, event: Renamed) -> None:
        self.name = event.name

    @event_handler(Forgotten)
    def _forgotten(self, event: Forgotten) -> None:
        self.forgotten = True


class Customer(_Person):
    pass


class Employee(_Person):
    pass


@frozen
class PlaceOrder(Command, target="order_id", personal=("customer_name",)):
    order_id: str
    customer_id: str
    customer_name: str
    amount: Decimal


@frozen
class AddToOrder(Command, target="order_id"):
    order_id: str
    amount: Decimal


@frozen
class OrderPlaced(Event, personal={"customer_name": subject_of("Customer", field="customer_id")}):
    customer_id: str
    customer_name: str
    amount: Decimal


@frozen
class OrderGrew(Event):
    amount: Decimal


class Order(Aggregate):
    """Holds its customer's name: personal data of the customer, not of the order."""

    customer_id: str = ""
    customer_name: str = ""
    total: Decimal = Decimal(0)

    @command_handler(PlaceOrder, creates=True)
    def place(self, command: PlaceOrder) -> None:
        self.emit(
            OrderPlaced(
                customer_id=command.customer_id,
                customer_name=command.customer_name,
                amount=command.amount,
            )
        )

    @command_handler(AddToOrder)
    def add(self, command: AddToOrder) -> None:
        self.emit(OrderGrew(amount=command.amount))

    @event_handler(OrderPlaced)
    def _placed(self, event: OrderPlaced) -> None:
        self.customer_id, self.customer_name = event.customer_id, event.customer_name
        self.total = event.amount

    @event_handler(OrderGrew)
    def _grew(self, event: OrderGrew) -> None:
        self.total += event.amount


class Names(Projector, name="names"):
    def __init__(self, keys: KeyRing) -> None:
        super().__init__()
        self.key_ring = keys
        self.names: dict[str, str] = {}
        self.orders: dict[str, str] = {}

    @event_handler(Registered)
    def _registered(self, event: Registered, envelope: Envelope) -> None:
        self.names[envelope.stream] = event.name

    @event_handler(OrderPlaced)
    def _placed(self, event: OrderPlaced, envelope: Envelope) -> None:
        self.orders[envelope.aggregate_id] = event.customer_name


MASTER = os.urandom(32)


def keys_for(store: EventStore, cache_seconds: float = 0) -> KeyRing:
    storage: WrappedKeyStorage = (
        DynamoDBKeyStorage(store) if isinstance(store, DynamoDBEventStore) else _shared(store)
    )
    return KeyRing(LocalKeyWrapper(MASTER), storage, cache_seconds=cache_seconds)


_memory_storages: dict[int, InMemoryKeyStorage] = {}


def _shared(store: EventStore) -> InMemoryKeyStorage:
    """One key storage per in-memory store, as two processes would share one table."""
    return _memory_storages.setdefault(id(store), InMemoryKeyStorage())


def app_for(
    store: EventStore,
    *,
    cache: AggregateCache | None = None,
    keys: KeyRing | None = None,
    people: type[_Person] = Customer,
) -> Application:
    return Application(
        store=store,
        aggregates=[people, Order],
        snapshots={people: EveryNEvents(3), Order: EveryNEvents(3)},
        cache=cache,
        keys=keys or keys_for(store),
    )


def place(order_id: str, customer_id: str, name: str, amount: int) -> PlaceOrder:
    return PlaceOrder(
        order_id=order_id, customer_id=customer_id, customer_name=name, amount=Decimal(amount)
    )


def replayed(store: EventStore, keys: KeyRing) -> Names:
    names = Names(keys)
    CatchUpRunner(store, InMemoryPositionStore(), [names], safety_window=dt.timedelta(0)).run()
    return names


def test_two_types_sharing_an_id_are_two_subjects(store: EventStore) -> None:
    customers = app_for(store)
    employees = app_for(store, people=Employee)
    customers.handle(Register(person_id="42", name="Carla Customer"))
    employees.handle(Register(person_id="42", name="Emil Employee"))
    customers.handle(Forget(person_id="42"))

    assert app_for(store).get(Customer, "42").name == ERASED
    assert app_for(store, people=Employee).get(Employee, "42").name == "Emil Employee"
    assert replayed(store, keys_for(store)).names == {
        "Customer#42": ERASED,
        "Employee#42": "Emil Employee",
    }


def test_a_field_belongs_to_the_subject_it_declares(store: EventStore) -> None:
    app = app_for(store)
    app.handle(Register(person_id="u-7", name="Ursula"))
    app.handle(Register(person_id="u-8", name="Viktor"))
    app.handle(
        PlaceOrder(order_id="o1", customer_id="u-7", customer_name="Ursula", amount=Decimal(5))
    )
    app.handle(
        PlaceOrder(order_id="o2", customer_id="u-8", customer_name="Viktor", amount=Decimal(6))
    )
    for _ in range(3):  # a snapshot of o1, sealed with u-7's key
        app.handle(AddToOrder(order_id="o1", amount=Decimal(1)))
    raw = b"".join(r.payload for r in store.load_events("Order", "o1"))
    assert b"Ursula" not in raw  # encrypted at rest, with the customer's key
    snapshot = store.load_snapshot("Order", "o1")
    assert snapshot is not None and b"Ursula" not in snapshot.state

    app.handle(Forget(person_id="u-7"))

    fresh = app_for(store)
    order = fresh.get(Order, "o1")
    assert (order.customer_name, order.total) == (ERASED, Decimal(8))
    assert fresh.get(Order, "o2").customer_name == "Viktor"
    with pytest.raises(ValueError, match="key that is gone"):
        EventMapper(keys=keys_for(store)).decode_state(Order, snapshot.state)
    assert replayed(store, keys_for(store)).orders == {"o1": ERASED, "o2": "Viktor"}


def test_a_declared_owner_id_is_checked_like_any_id(store: EventStore) -> None:
    app = app_for(store)
    for bad in ("", "x" * 2000):
        with pytest.raises(InvalidIdentifier):
            app.handle(place("o1", bad, "Nobody", 1))
    assert store.load_events("Order", "o1") == []


def test_forgotten_is_permanent_and_the_stream_stays_replayable(store: EventStore) -> None:
    keys = keys_for(store)
    app = app_for(store, keys=keys)
    app.handle(Register(person_id="c1", name="Clara"))
    app.handle(Forget(person_id="c1"))
    assert keys.storage.load("Customer#c1") is FORGOTTEN
    for _ in range(4):  # snapshots fall due: none may mint a fresh key
        app.handle(Touch(person_id="c1"))
    assert keys.storage.load("Customer#c1") is FORGOTTEN

    # New personal data of a forgotten subject is refused, and nothing is written.
    version = app.get(Customer, "c1").version
    with pytest.raises(SubjectForgotten) as refused:
        app.handle(Rename(person_id="c1", name="Clara Again"))
    assert refused.value.subject == "Customer#c1"
    with pytest.raises(SubjectForgotten):
        app.handle(
            PlaceOrder(order_id="o9", customer_id="c1", customer_name="C", amount=Decimal(1))
        )
    assert app.get(Customer, "c1").version == version
    assert store.load_events("Order", "o9") == []

    # Every read path reads her as erased, none fails: load (with and without snapshot), feed.
    fresh = app_for(store, keys=keys_for(store))
    customer = fresh.get(Customer, "c1")
    assert (customer.name, customer.forgotten, customer.touches) == (ERASED, True, 4)
    assert (
        Application(store=store, aggregates=[Customer], keys=keys_for(store))
        .get(Customer, "c1")
        .name
        == ERASED
    )
    assert replayed(store, keys_for(store)).names == {"Customer#c1": ERASED}
    # A second process, which never saw the forget, cannot bring her key back either.
    other = KeyRing(LocalKeyWrapper(MASTER), keys.storage, cache_seconds=0)
    with pytest.raises(SubjectForgotten):
        other.encrypt_text("Customer#c1", "Clara", "Renamed.name")


def test_the_cache_never_brings_forgotten_data_back(store: EventStore) -> None:
    cache = AggregateCache()
    app = app_for(store, cache=cache)
    app.handle(Register(person_id="c1", name="Clara"))
    app.handle(
        PlaceOrder(order_id="o1", customer_id="c1", customer_name="Clara", amount=Decimal(1))
    )
    app.handle(Register(person_id="c2", name="Dora"))
    assert len(cache) == 3

    app.handle(Forget(person_id="c1"))  # evicts c1 and o1, which holds her name
    assert len(cache) == 1
    for _ in range(4):  # snapshots of both fall due, from state loaded after the forget
        app.handle(Touch(person_id="c1"))
        app.handle(AddToOrder(order_id="o1", amount=Decimal(1)))
    for key in (("Customer", "c1"), ("Order", "o1")):
        snapshot = store.load_snapshot(*key)
        assert snapshot is not None and b"Clara" not in snapshot.state
    fresh = app_for(store)
    assert fresh.get(Customer, "c1").name == ERASED
    assert fresh.get(Order, "o1").customer_name == ERASED


def test_another_process_cache_cannot_snapshot_a_forgotten_subject(store: EventStore) -> None:
    """Process B cached an order before A forgot its customer: B's later snapshot is skipped
    (its key ring finds the tombstone), so no readable copy of the name is ever written."""
    a = app_for(store)
    b = app_for(store, cache=AggregateCache())
    a.handle(Register(person_id="c1", name="Clara"))
    b.handle(place("o1", "c1", "Clara", 1))
    a.handle(Forget(person_id="c1"))
    for _ in range(4):
        b.handle(AddToOrder(order_id="o1", amount=Decimal(1)))
    snapshot = store.load_snapshot("Order", "o1")
    assert snapshot is None or b"Clara" not in snapshot.state
    assert app_for(store).get(Order, "o1").customer_name == ERASED
