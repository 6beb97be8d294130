"""A small order domain with a process manager, for the framework's own process-manager tests.

An order reserves stock when placed; unpaid after ``PAYMENT_WINDOW`` it expires (a deadline),
and an expired order releases its stock. Another domain than the example's bank, on purpose.
"""

from __future__ import annotations

import datetime as dt

from attrs import frozen

from framework import (
    Aggregate,
    Application,
    Command,
    DomainError,
    Event,
    InMemoryEventStore,
    command_handler,
    event_handler,
)
from framework.projections import Envelope
from framework.projections.process_managers import ProcessManager
from framework.projections.process_state import ProcessState
from framework.store import EventStore

PAYMENT_WINDOW = dt.timedelta(minutes=30)


@frozen
class PlaceOrder(Command, target="order_id"):
    order_id: str
    sku: str


@frozen
class PayOrder(Command, target="order_id"):
    order_id: str


@frozen
class ExpireOrder(Command, target="order_id"):
    order_id: str


@frozen
class Reserve(Command, target="sku"):
    sku: str
    order_id: str


@frozen
class Release(Command, target="sku"):
    sku: str
    order_id: str


@frozen
class OrderPlaced(Event):
    sku: str


@frozen
class OrderPaid(Event):
    pass


@frozen
class OrderExpired(Event):
    sku: str


@frozen
class Reserved(Event):
    order_id: str


@frozen
class Released(Event):
    order_id: str


class OrderClosed(DomainError):
    """An order that was paid cannot expire, nor an expired one be paid."""


class Order(Aggregate):
    sku: str
    state: str

    @command_handler(PlaceOrder, creates=True)
    def place(self, command: PlaceOrder) -> None:
        self.emit(OrderPlaced(sku=command.sku))

    @command_handler(PayOrder)
    def pay(self, command: PayOrder) -> None:
        if self.state != "placed":
            raise OrderClosed(f"order {self.id} is {self.state}")
        self.emit(OrderPaid())

    @command_handler(ExpireOrder)
    def expire(self, command: ExpireOrder) -> None:
        if self.state != "placed":
            raise OrderClosed(f"order {self.id} is {self.state}")
        self.emit(OrderExpired(sku=self.sku))

    @event_handler(OrderPlaced)
    def _placed(self, event: OrderPlaced) -> None:
        self.sku, self.state = event.sku, "placed"

    @event_handler(OrderPaid)
    def _paid(self, event: OrderPaid) -> None:
        self.state = "paid"

    @event_handler(OrderExpired)
    def _expired(self, event: OrderExpired) -> None:
        self.state = "expired"


class Stock(Aggregate):
    """Reservations per SKU; a SKU named ``discontinued`` refuses them."""

    reserved: list[str]

    @command_handler(Reserve, creates=None)
    def reserve(self, command: Reserve) -> None:
        if command.sku == "discontinued":
            raise DomainError("discontinued")
        self.emit(Reserved(order_id=command.order_id))

    @command_handler(Release, creates=None)
    def release(self, command: Release) -> None:
        self.emit(Released(order_id=command.order_id))

    @event_handler(Reserved)
    def _reserved(self, event: Reserved) -> None:
        self.reserved = [*getattr(self, "reserved", []), event.order_id]

    @event_handler(Released)
    def _released(self, event: Released) -> None:
        self.reserved = [o for o in self.reserved if o != event.order_id]


class Fulfilment(ProcessManager, name="fulfilment"):
    """Reserve on placing, expire unpaid orders, release what expired ones reserved."""

    @event_handler(OrderPlaced)
    def _placed(self, event: OrderPlaced, envelope: Envelope) -> None:
        self.issue(Reserve(sku=event.sku, order_id=envelope.aggregate_id))
        self.schedule(
            ExpireOrder(order_id=envelope.aggregate_id),
            at=envelope.occurred_at + PAYMENT_WINDOW,
            key=envelope.aggregate_id,
        )

    @event_handler(OrderPaid)
    def _paid(self, event: OrderPaid, envelope: Envelope) -> None:
        self.cancel(envelope.aggregate_id)

    @event_handler(OrderExpired)
    def _expired(self, event: OrderExpired, envelope: Envelope) -> None:
        self.issue(Release(sku=event.sku, order_id=envelope.aggregate_id))


@frozen
class UnitGiven(Event):
    order_id: str


class Allocation(ProcessState):
    """The allocator's own state: how many units of a SKU it gave out."""

    given: int = 0

    def give(self, order_id: str) -> None:
        self.emit(UnitGiven(order_id=order_id))

    @event_handler(UnitGiven)
    def _given(self, event: UnitGiven) -> None:
        self.given += 1


class Allocator(ProcessManager, name="allocator"):
    """One unit per SKU: the first order placed reserves it, the later ones expire (sold out).

    Its decision depends on its state, so a handler run again on a state its first run already
    changed would decide otherwise: the state and the event it handled are committed together.
    """

    @event_handler(OrderPlaced)
    def _placed(self, event: OrderPlaced, envelope: Envelope) -> None:
        allocation = self.state(Allocation, event.sku)
        if allocation.given < 1:
            allocation.give(envelope.aggregate_id)
            self.issue(Reserve(sku=event.sku, order_id=envelope.aggregate_id))
        else:
            self.issue(ExpireOrder(order_id=envelope.aggregate_id))


def order_application(store: EventStore | None = None) -> Application:
    """The orders application on ``store`` (a fresh in-memory one by default), with the
    allocator's state."""
    return Application(store=store or InMemoryEventStore(), aggregates=[Order, Stock, Allocation])
