"""Aggregates, commands, events and handler declarations."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import ClassVar

import pytest
from attrs import frozen

from framework import (
    Aggregate,
    Application,
    Command,
    Event,
    InMemoryEventStore,
    command_handler,
    event_handler,
)
from framework.domain import event_schema_version, event_type_name
from framework.errors import (
    DefinitionError,
    InvalidCommand,
    InvalidEvent,
    InvalidIdentifier,
    MissingEventHandler,
)
from framework.testing.bank import Account, AccountOpened, Deposit, Deposited, OpenAccount


@frozen
class Ping(Command, target="thing_id"):
    thing_id: str


@frozen
class Pinged(Event):
    pass


@frozen
class Other(Event):
    note: str


@frozen
class Note:
    text: str


@frozen
class Rich(Command, target="thing_id"):
    thing_id: str
    count: int
    when: dt.datetime
    notes: tuple[Note, ...] = ()
    label: str | None = None


class Thing(Aggregate):
    pings: int

    @command_handler(Ping, creates=True)
    def ping(self, command: Ping) -> None:
        self.emit(Pinged())

    @event_handler(Pinged)
    def _pinged(self, event: Pinged) -> None:
        self.pings = getattr(self, "pings", 0) + 1


def test_emit_applies_the_event_and_records_it() -> None:
    thing = Thing("t1")
    thing.handle_command(Ping(thing_id="t1"))
    assert (thing.pings, thing.version, thing.has_pending_changes) == (1, 1, True)


def test_emitting_an_event_without_handler_fails_and_records_nothing() -> None:
    thing = Thing("t1")
    with pytest.raises(MissingEventHandler, match="Thing has no @event_handler for Other"):
        thing.emit(Other(note="x"))
    assert (thing.version, thing.has_pending_changes) == (0, False)


def test_handlers_are_inherited_and_can_be_overridden_by_name() -> None:
    class LoudThing(Thing):
        @event_handler(Pinged)
        def _pinged(self, event: Pinged) -> None:
            self.pings = getattr(self, "pings", 0) + 10

        @event_handler(Other)
        def _other(self, event: Other) -> None:
            pass

    loud = LoudThing("t")
    loud.handle_command(Ping(thing_id="t"))
    loud.emit(Other(note="n"))
    assert (loud.pings, loud.version) == (10, 2)
    assert set(LoudThing.handled_event_types()) == {Pinged, Other}
    assert set(Thing.handled_event_types()) == {Pinged}


def test_two_handlers_for_one_event_type_fail_at_class_definition() -> None:
    with pytest.raises(DefinitionError, match="two handlers for Pinged: _pinged\\(\\) and again"):

        class Twice(Thing):
            @event_handler(Pinged)
            def again(self, event: Pinged) -> None:
                pass


def test_two_handlers_for_one_command_type_fail_at_class_definition() -> None:
    with pytest.raises(DefinitionError, match="two handlers for Ping"):

        class Twice(Aggregate):
            @command_handler(Ping)
            def one(self, command: Ping) -> None:
                pass

            @command_handler(Ping)
            def two(self, command: Ping) -> None:
                pass


def test_handler_for_a_class_that_is_not_an_event_fails_at_decoration() -> None:
    with pytest.raises(DefinitionError, match="needs a subclass of Event"):
        event_handler(Ping)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="needs a subclass of Command"):
        command_handler(Pinged)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="needs a subclass of Event"):
        event_handler(dict)  # type: ignore[arg-type]


def test_handler_for_an_event_class_without_its_own_attrs_decorator_fails() -> None:
    class Plain(Event):  # forgot @frozen: its fields would silently not exist
        amount: Decimal

    with pytest.raises(DefinitionError, match="Plain must be an attrs class"):
        event_handler(Plain)


def test_aggregate_handling_a_command_without_target_fails_at_definition() -> None:
    @frozen
    class Untargeted(Command):
        value: int

    with pytest.raises(DefinitionError, match="Untargeted, which names no target"):

        class Bad(Aggregate):
            @command_handler(Untargeted)
            def handle_it(self, command: Untargeted) -> None:
                pass


def test_aggregate_type_name_defaults_to_class_name_and_can_be_set() -> None:
    class Named(Aggregate, name="BankAccount"):
        pass

    assert Account.aggregate_type() == "Account"
    assert Named.aggregate_type() == "BankAccount"
    with pytest.raises(DefinitionError, match="contains '#'"):

        class Hashed(Aggregate, name="a#b"):
            pass


@pytest.mark.parametrize("name", ["command", "unique", "key", "feed"])
def test_type_names_of_the_frameworks_own_items_are_refused(name: str) -> None:
    # A "command" aggregate's metadata would be read as a processed command; forgetting subject
    # "u1" would delete the metadata of the "key" aggregate "u1".
    with pytest.raises(DefinitionError, match=f"{name!r} is reserved"):

        class Colliding(Aggregate, name=name):
            pass


def test_empty_and_oversized_type_names_are_refused() -> None:
    with pytest.raises(DefinitionError, match="non-empty string"):

        class Empty(Aggregate, name=""):
            pass

    with pytest.raises(DefinitionError, match="at most 255"):

        class Huge(Aggregate, name="n" * 256):
            pass

    class Command_(Aggregate):  # a class named like a prefix, but not equal to one, is fine
        pass

    assert Command_.aggregate_type() == "Command_"


def test_event_names_and_versions() -> None:
    @frozen
    class Renamed(Event, name="MoneyDeposited", version=3):
        amount: Decimal

    assert (event_type_name(Deposited), event_schema_version(Deposited)) == ("Deposited", 1)
    assert (event_type_name(Renamed), event_schema_version(Renamed)) == ("MoneyDeposited", 3)
    with pytest.raises(DefinitionError, match="version must be an int >= 1"):

        @frozen
        class Bad(Event, version=0):
            pass


class TestCommandValidation:
    def test_a_wrongly_typed_field_names_the_field(self) -> None:
        with pytest.raises(InvalidCommand, match=r"Deposit: amount: expected Decimal, got str '5'"):
            Deposit(account_id="a", amount="5")  # type: ignore[arg-type]

    def test_floats_are_not_accepted_for_decimals(self) -> None:
        with pytest.raises(InvalidCommand, match="amount: expected Decimal, got float"):
            Deposit(account_id="a", amount=0.1)  # type: ignore[arg-type]

    def test_missing_fields_are_a_type_error(self) -> None:
        with pytest.raises(TypeError, match="amount"):
            Deposit(account_id="a")  # type: ignore[call-arg]

    def test_every_problem_is_reported_at_once(self) -> None:
        with pytest.raises(InvalidCommand) as raised:
            Deposit(account_id=7, amount=None)  # type: ignore[arg-type]
        assert "account_id: expected str" in str(raised.value)
        assert "amount: expected Decimal" in str(raised.value)

    def test_optional_nested_and_collection_fields(self) -> None:
        now = dt.datetime.now(dt.UTC)
        Rich(thing_id="t", count=1, when=now, notes=(Note("a"),), label=None)
        with pytest.raises(InvalidCommand, match="count: expected int, got bool"):
            Rich(thing_id="t", count=True, when=now)
        with pytest.raises(InvalidCommand, match="timezone-aware"):
            Rich(thing_id="t", count=1, when=dt.datetime(2026, 1, 1))
        with pytest.raises(InvalidCommand, match="notes: item 0: expected Note"):
            Rich(thing_id="t", count=1, when=now, notes=("a",))  # type: ignore[arg-type]
        with pytest.raises(
            InvalidCommand, match=re.escape("label: expected str | NoneType, got int 3")
        ):
            Rich(thing_id="t", count=1, when=now, label=3)  # type: ignore[arg-type]

    def test_fields_of_function_local_classes_are_checked_where_resolvable(self) -> None:
        @frozen
        class Local(Command, target="thing_id"):
            thing_id: str
            amount: Decimal

        with pytest.raises(InvalidCommand, match="amount: expected Decimal"):
            Local(thing_id="t", amount="1")  # type: ignore[arg-type]

    def test_empty_command_id_is_refused(self) -> None:
        with pytest.raises(InvalidCommand, match="command_id"):
            OpenAccount(account_id="a", owner="x", command_id="")

    def test_events_are_checked_too(self) -> None:
        with pytest.raises(InvalidEvent, match="AccountOpened: owner: expected str"):
            AccountOpened(owner=3, currency=None, opened_at=None, reference=None)  # type: ignore[arg-type]


def test_empty_unique_scopes_and_values_are_refused_in_the_handler() -> None:
    account = Account("a")
    for scope, value in (("", "x"), ("handle", ""), ("handle", "v" * 2100)):
        with pytest.raises(InvalidIdentifier):
            account.claim_unique(scope, value)
        with pytest.raises(InvalidIdentifier):
            account.release_unique(scope, value)
    assert not account.has_pending_changes


@frozen
class AddItem(Command, target="cart_id"):
    cart_id: str
    item: str


@frozen
class ItemAdded(Event):
    item: str


@frozen
class Tag:
    labels: list[str]


class Cart(Aggregate):
    items: list[str] = []  # noqa: RUF012 - the framework copies it for every instance
    tags: dict[str, Tag] = {"default": Tag(labels=[])}  # noqa: RUF012
    note: str = "empty"
    _seen: ClassVar[list[str]] = []

    @command_handler(AddItem, creates=None)
    def add(self, command: AddItem) -> None:
        self.emit(ItemAdded(item=command.item))

    @event_handler(ItemAdded)
    def _added(self, event: ItemAdded) -> None:
        self.items.append(event.item)
        self.tags["default"].labels.append(event.item)


def test_mutable_class_defaults_are_copied_for_every_instance() -> None:
    app = Application(store=InMemoryEventStore(), aggregates=[Cart])
    app.handle(AddItem(cart_id="c1", item="apple"))
    app.handle(AddItem(cart_id="c2", item="pear"))
    assert app.get(Cart, "c1").items == ["apple"]
    assert app.get(Cart, "c2").items == ["pear"]
    assert app.get(Cart, "c2").tags["default"].labels == ["pear"]
    assert Cart.items == [] and Cart.tags["default"].labels == []
    # Immutable defaults and class variables stay shared: nothing to copy.
    assert "note" not in vars(Cart("c3")) and "_seen" not in vars(Cart("c3"))


@pytest.mark.parametrize("reserved", ["feed", "shard", "lease"])
def test_projector_names_of_the_runners_own_items_are_refused(reserved: str) -> None:
    from framework import Projector

    with pytest.raises(DefinitionError, match="reserved for the runners"):

        class Clash(Projector, name=reserved):
            pass
