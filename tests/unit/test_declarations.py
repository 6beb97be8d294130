"""What commands and events declare with class keywords, and handlers' message parameters.

``target=`` and ``personal=`` name fields in strings: a name that matches no field must fail when
the class is defined, wherever the class is defined (module level, inside a function, under
``from __future__ import annotations``, which this module uses). A handler whose message
parameter is annotated with another class is refused at definition too, and a correct one never.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
import pytest
from attrs import frozen

from framework import (
    Aggregate,
    Application,
    Command,
    Event,
    InMemoryEventStore,
    Projector,
    UnitOfWork,
    command_handler,
    event_handler,
    subject_of,
)
from framework.domain import command_target_field, personal_fields, personal_specs
from framework.errors import DefinitionError
from framework.mapping import EventMapper
from framework.projections import Envelope

if TYPE_CHECKING:  # never imported at run time: the handler check must compare by name
    from framework.testing.bank import Withdrawn


@frozen
class Pay(Command, target="account_id", personal=("note",)):
    account_id: str
    amount: Decimal
    note: str = ""


@frozen
class Refund(Command, target="account_id"):
    account_id: str
    amount: Decimal


@frozen
class Paid(Event, personal={"payer": subject_of("Payer", field="payer_id"), "note": None}):
    amount: Decimal
    payer: str
    payer_id: str | None = None
    note: str | None = None


@frozen
class Refunded(Event):
    amount: Decimal


# -- the keywords at run time ---------------------------------------------------------------


def test_the_keywords_are_read_back_by_the_framework() -> None:
    assert command_target_field(Pay) == "account_id"
    assert personal_fields(Pay) == ("note",)
    assert [(s.name, s.subject_field, s.subject_type) for s in personal_specs(Paid)] == [
        ("payer", "payer_id", "Payer"),
        ("note", None, None),
    ]
    # The fields stay plain required fields: nothing gave them a default.
    assert attrs.fields_dict(Pay)["account_id"].default is attrs.NOTHING
    with pytest.raises(TypeError, match="amount"):
        Pay(account_id="a")  # type: ignore[call-arg]  # the missing argument is the test


def test_classes_defined_inside_a_function_work_end_to_end() -> None:
    @frozen
    class Open(Command, target="wallet_id", personal="holder"):
        wallet_id: str
        holder: str

    @frozen
    class Opened(Event, personal=["holder"]):
        holder: str

    class Wallet(Aggregate):
        holder: str

        @command_handler(Open, creates=True)
        def open(self, command: Open) -> None:
            self.emit(Opened(holder=command.holder))

        @event_handler(Opened)
        def _opened(self, event: Opened) -> None:
            self.holder = event.holder

    from framework.encryption import KeyRing, LocalKeyWrapper

    app = Application(
        store=InMemoryEventStore(),
        aggregates=[Wallet],
        keys=KeyRing(LocalKeyWrapper(bytes(32))),
    )
    app.handle(Open(wallet_id="w-1", holder="Ada"))
    assert app.get(Wallet, "w-1").holder == "Ada"
    assert personal_fields(Open) == ("holder",)
    assert personal_fields(Opened) == ("holder",)


def test_subclasses_inherit_the_keywords_and_may_add_personal_fields() -> None:
    @frozen
    class PayWithReference(Pay, personal=("reference",)):
        reference: str = ""

    assert command_target_field(PayWithReference) == "account_id"
    assert personal_fields(PayWithReference) == ("note", "reference")


# -- refusals when the class is defined -----------------------------------------------------


def test_a_target_naming_no_field_is_refused_at_definition() -> None:
    with pytest.raises(DefinitionError, match="names 'acount_id' as its target, but has no field"):

        @frozen
        class Typo(Command, target="acount_id"):
            account_id: str


def test_a_target_that_is_not_a_field_name_is_refused() -> None:
    with pytest.raises(DefinitionError, match="target= takes the name of a field"):

        @frozen
        class Odd(Command, target="account id"):
            account_id: str


def test_a_personal_name_matching_no_field_is_refused_on_events_and_commands() -> None:
    with pytest.raises(DefinitionError, match="declares 'emial' personal, but has no field"):

        @frozen
        class Registered(Event, personal=("name", "emial")):
            name: str
            email: str

    with pytest.raises(DefinitionError, match="declares 'nick' personal, but has no field"):

        @frozen
        class Rename(Command, target="user_id", personal=("nick",)):
            user_id: str
            name: str


def test_a_personal_event_field_must_be_text() -> None:
    with pytest.raises(DefinitionError, match=re.escape("must be str or str | None")):

        @frozen
        class Measured(Event, personal=("height",)):
            height: int


def test_a_subject_field_must_exist_be_text_and_not_itself_personal() -> None:
    with pytest.raises(DefinitionError, match="names 'owner_id' as the id of its subject"):

        @frozen
        class NoOwnerField(Event, personal={"owner": subject_of("User", field="owner_id")}):
            owner: str

    with pytest.raises(DefinitionError, match="names 'owner_id' as the id of its subject"):

        @frozen
        class NumericOwner(Event, personal={"owner": subject_of("User", field="owner_id")}):
            owner: str
            owner_id: int

    with pytest.raises(DefinitionError, match="names 'owner_id' as the id of its subject"):

        @frozen
        class PersonalOwner(
            Event, personal={"owner": subject_of("User", field="owner_id"), "owner_id": None}
        ):
            owner: str
            owner_id: str


def test_subject_of_takes_an_aggregate_class_or_a_type_name() -> None:
    class User(Aggregate):
        pass

    assert subject_of(User, field="user_id").aggregate is User
    with pytest.raises(DefinitionError, match="an Aggregate class or its type name"):
        subject_of(int, field="user_id")  # type: ignore[arg-type]  # the wrong type is the test
    with pytest.raises(DefinitionError, match="needs field="):
        subject_of("User", field="")


def test_a_personal_mapping_takes_subject_of_or_none() -> None:
    with pytest.raises(DefinitionError, match="use subject_of"):

        @frozen
        class Wrong(Event, personal={"name": "User"}):
            name: str


def test_an_unknown_class_keyword_is_refused() -> None:
    with pytest.raises(TypeError):

        @frozen
        class Misspelt(Command, targt="account_id"):  # type: ignore[call-arg]  # the test
            account_id: str


def test_a_class_attrs_did_not_rebuild_is_checked_on_first_use() -> None:
    @attrs.define(frozen=True, slots=False)
    class Loose(Command, target="acount_id"):
        account_id: str

    with pytest.raises(DefinitionError, match="names 'acount_id' as its target"):
        command_target_field(Loose)


def test_a_personal_annotation_unresolvable_at_definition_is_checked_at_registration() -> None:
    @frozen
    class Later(Event, personal=("code",)):
        code: Code  # defined below: cannot be resolved when the class is built

    class Code:
        pass

    with pytest.raises(DefinitionError, match="annotation 'Code' cannot be resolved"):
        EventMapper([Later])


# -- handlers' message parameters -----------------------------------------------------------


def test_a_command_handler_typed_with_another_command_is_refused() -> None:
    with pytest.raises(DefinitionError) as refused:

        class Account(Aggregate):
            @command_handler(Pay)
            def refund(self, command: Refund) -> None:
                pass

    assert "@command_handler(Pay)" in str(refused.value)
    assert "annotated Refund" in str(refused.value)


def test_an_event_handler_typed_with_another_event_is_refused() -> None:
    with pytest.raises(DefinitionError, match=r"@event_handler\(Paid\).*annotated Refunded"):

        class Account(Aggregate):
            @event_handler(Paid)
            def _refunded(self, event: Refunded) -> None:
                pass

    with pytest.raises(DefinitionError, match=r"@event_handler\(Paid\).*annotated Refunded"):

        class Ledger(Projector):
            @event_handler(Paid)
            def _refunded(self, event: Refunded, envelope: Envelope) -> None:
                pass


def test_a_function_handler_typed_with_another_command_is_refused() -> None:
    with pytest.raises(DefinitionError, match="annotated Refund"):

        @command_handler(Pay)
        def refund(uow: UnitOfWork, command: Refund) -> None:
            pass


def test_classes_local_to_a_function_are_resolved() -> None:
    @frozen
    class Ping(Command, target="thing_id"):
        thing_id: str

    @frozen
    class Pong(Command, target="thing_id"):
        thing_id: str

    with pytest.raises(DefinitionError, match=r"@command_handler\(Ping\).*annotated Pong"):

        class Thing(Aggregate):
            @command_handler(Ping)
            def pong(self, command: Pong) -> None:
                pass

    class Fine(Aggregate):
        @command_handler(Ping)
        def ping(self, command: Ping) -> None:
            pass

        @command_handler(Pong)
        def pong(self, command: Pong) -> None:
            pass

    assert set(Fine.handled_command_types()) == {Ping, Pong}


def test_an_unresolvable_annotation_is_compared_by_name() -> None:
    from framework.testing import bank  # the class exists, but its name is not in this module

    assert "Withdrawn" not in globals() and issubclass(bank.Withdrawn, Event)
    with pytest.raises(DefinitionError, match=r"@event_handler\(Paid\).*annotated Withdrawn"):

        class Account(Aggregate):
            @event_handler(Paid)
            def _withdrawn(self, event: Withdrawn) -> None:  # imported for type checkers only
                pass

    class Fine(Aggregate):
        @command_handler(Pay)
        def pay(self, command: Pay) -> None:
            pass

        @event_handler(Paid)
        def _paid(self, event: Paid) -> None:
            pass

    assert Fine.handled_command_types()


def test_correct_handlers_are_never_refused() -> None:
    class Nameless:
        """Not a message class: a name the check cannot tell anything about."""

    class Broad(Aggregate):
        @command_handler(Pay)
        def by_base(self, command: Command) -> None:
            pass

        @command_handler(Refund)
        def by_union(self, command: Pay | Refund) -> None:
            pass

        @event_handler(Paid)
        def by_any(self, event: Any) -> None:
            pass

        @event_handler(Refunded)
        def unannotated(self, event) -> None:  # type: ignore[no-untyped-def]  # the test
            pass

    class Forward(Aggregate):
        @command_handler(Pay)
        def later(self, command: PayAlias) -> None:  # defined below: cannot be resolved yet
            pass

        @event_handler(Paid)
        def _paid(self, event: Paid, envelope: Nameless) -> None:  # a third parameter
            pass

    PayAlias: TypeAlias = Pay

    assert set(Broad.handled_command_types()) == {Pay, Refund}
    assert Forward.handled_command_types() and PayAlias is Pay
