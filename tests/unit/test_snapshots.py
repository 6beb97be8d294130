"""Snapshot policies, and loading from snapshots without ever misapplying one."""

from __future__ import annotations

import enum
import hashlib
import secrets
import types
from decimal import Decimal
from typing import Any

import attrs
import pytest
import structlog
from attrs import frozen

from framework import (
    Aggregate,
    Application,
    Command,
    Event,
    EveryNEvents,
    NoSnapshots,
    command_handler,
    event_handler,
)
from framework.domain import unsnapshottable_state
from framework.errors import DefinitionError
from framework.mapping import SnapshotStateError
from framework.mapping.state import state_schema
from framework.store import InMemoryEventStore, Snapshot
from framework.testing.bank import Account, Deposit, DepositMany, OpenAccount
from tests.support.stores import SpyStore


def bank(store: object, every: int = 10) -> Application:
    return Application(store=store, aggregates=[Account], snapshots={Account: EveryNEvents(every)})  # type: ignore[arg-type]


def open_with_deposits(app: Application, count: int) -> None:
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    for _ in range(count):
        app.handle(Deposit(account_id="a", amount=Decimal(1)))


@pytest.mark.parametrize(
    ("n", "previous", "new", "due"),
    [(10, 9, 10, True), (10, 10, 11, False), (10, 8, 13, True), (10, 0, 9, False), (1, 4, 5, True)],
)
def test_every_n_events_snapshots_when_a_multiple_is_crossed(
    n: int, previous: int, new: int, due: bool
) -> None:
    account = Account("a")
    account.version = new
    assert EveryNEvents(n)(account, previous) is due


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_every_n_events_needs_a_positive_int(bad: object) -> None:
    with pytest.raises(DefinitionError):
        EveryNEvents(bad)  # type: ignore[arg-type]


def test_no_snapshots_never_writes_and_never_reads_one() -> None:
    spy = SpyStore()
    app = Application(store=spy, aggregates=[Account], snapshots={Account: NoSnapshots()})
    open_with_deposits(app, 12)
    assert spy.inner.load_snapshot("Account", "a") is None
    assert "load_snapshot" not in spy.names()


def test_load_starts_from_the_snapshot() -> None:
    spy = SpyStore()
    app = bank(spy)
    open_with_deposits(app, 24)  # versions 1..25, snapshots at 10 and 20
    spy.calls.clear()
    account = app.get(Account, "a")
    assert (account.version, account.balance, account.owner) == (25, Decimal(24), "Ann")
    assert spy.calls == [
        ("load_snapshot", ("Account", "a")),
        ("load_history", ("Account", "a", 20)),
    ]


class _UnwalkableStream(dict[int, Any]):
    """A stream's items that may be looked up by version but not walked."""

    def __iter__(self) -> Any:
        raise AssertionError("the whole stream was walked")

    def keys(self) -> Any:
        raise AssertionError("the whole stream was walked")

    def items(self) -> Any:
        raise AssertionError("the whole stream was walked")

    def values(self) -> Any:
        raise AssertionError("the whole stream was walked")


def test_the_in_memory_store_loads_after_a_snapshot_without_walking_the_stream() -> None:
    """However long the stream, a load reads the snapshot and the versions after it: the
    in-memory store finds the first of them without visiting (or sorting) the rest."""
    store = InMemoryEventStore()
    app = bank(store, every=100)
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    for _ in range(20):
        app.handle(DepositMany(account_id="a", amounts=(Decimal(1),) * 50))
    app.handle(DepositMany(account_id="a", amounts=(Decimal(1),) * 3))
    stream = store._events["Account#a"]
    store._events["Account#a"] = _UnwalkableStream(stream)
    account = app.get(Account, "a")
    assert (account.version, account.balance) == (1004, Decimal(1003))
    assert [e.version for e in store.load_history("Account", "a", 1000)] == [1001, 1002, 1003, 1004]
    assert [e.version for e in store.load_events("Account", "a", 1002)] == [1003, 1004]


def test_any_callable_is_a_policy() -> None:
    store = InMemoryEventStore()
    app = Application(
        store=store,
        aggregates=[Account],
        snapshots={Account: lambda aggregate, previous: aggregate.balance >= 3},
    )
    open_with_deposits(app, 3)
    snapshot = store.load_snapshot("Account", "a")
    assert snapshot is not None and snapshot.version == 4


def test_a_snapshot_of_another_state_shape_is_ignored() -> None:
    store = InMemoryEventStore()
    open_with_deposits(bank(store), 12)

    class ReshapedAccount(Account, name="Account"):
        nickname: str  # the state changed shape since the snapshot was written

    app = Application(
        store=store, aggregates=[ReshapedAccount], snapshots={ReshapedAccount: EveryNEvents(10)}
    )
    with structlog.testing.capture_logs() as logs:
        account = app.get(ReshapedAccount, "a")
    assert (account.version, account.balance) == (13, Decimal(12))
    assert not hasattr(account, "nickname")
    assert [entry["event"] for entry in logs] == ["snapshot.ignored_schema_changed"]


def test_an_undecodable_snapshot_is_ignored() -> None:
    store = InMemoryEventStore()
    app = bank(store)
    open_with_deposits(app, 12)
    good = store.load_snapshot("Account", "a")
    assert good is not None
    # Overwrite it with garbage under the right schema, as a bug or a bad manual edit would.
    from framework.store.items import snapshot_item

    store.put_raw_item(
        store.tables.snapshots,
        snapshot_item(
            Snapshot(
                "Account", "a", good.version, b'{"balance":"many"}', good.schema, good.created_at
            )
        ),
    )
    with structlog.testing.capture_logs() as logs:
        account = app.get(Account, "a")
    assert (account.version, account.balance) == (13, Decimal(12))
    assert logs[0]["event"] == "snapshot.ignored_undecodable"


@frozen
class StartBook(Command, target="book_id"):
    book_id: str


@frozen
class AddNote(Command, target="book_id"):
    book_id: str
    note: str


@frozen
class BookStarted(Event):
    pass


@frozen
class NoteAdded(Event):
    note: str


class Scrapbook(Aggregate):
    """State that grows with every event."""

    notes: list[str]

    @command_handler(StartBook, creates=True)
    def start(self, command: StartBook) -> None:
        self.emit(BookStarted())

    @command_handler(AddNote)
    def add(self, command: AddNote) -> None:
        self.emit(NoteAdded(note=command.note))

    @event_handler(BookStarted)
    def _started(self, event: BookStarted) -> None:
        self.notes = []

    @event_handler(NoteAdded)
    def _added(self, event: NoteAdded) -> None:
        self.notes.append(event.note)


class CarelessScrapbook(Scrapbook, name="CarelessScrapbook"):
    """Sets an attribute it does not declare: a snapshot would lose it."""

    @event_handler(NoteAdded)
    def _added(self, event: NoteAdded) -> None:
        self.notes.append(event.note)
        self.last_note = event.note


def scrapbook_app(store: InMemoryEventStore) -> Application:
    return Application(store=store, aggregates=[Scrapbook], snapshots={Scrapbook: EveryNEvents(1)})


def test_state_not_declared_on_the_class_is_refused_when_the_application_is_built() -> None:
    store = InMemoryEventStore()
    with pytest.raises(
        SnapshotStateError, match=r"self\.last_note in CarelessScrapbook\._added\(\)"
    ):
        Application(
            store=store,
            aggregates=[CarelessScrapbook],
            snapshots={CarelessScrapbook: EveryNEvents(1)},
        )
    # Without a snapshot policy nothing is lost, so nothing is refused.
    Application(store=store, aggregates=[CarelessScrapbook])
    Application(
        store=store, aggregates=[CarelessScrapbook], snapshots={CarelessScrapbook: NoSnapshots()}
    )


def test_every_kind_of_assignment_to_self_is_seen() -> None:
    class Assigning(Scrapbook, name="Assigning"):
        declared: int

        def _helper(this: Any) -> None:  # the receiver need not be called self
            this.a, (this.b, *this.c) = 1, (2, 3)
            this.d += 1
            this.e: int = 0
            this.declared = 1
            this.notes = []

    assert sorted(unsnapshottable_state(Assigning)) == ["a", "b", "c", "d", "e"]
    assert unsnapshottable_state(Scrapbook) == {}


def test_a_snapshot_that_cannot_be_encoded_is_skipped_not_fatal() -> None:
    # A class without source (built at run time) escapes the start-up check; at run time the
    # undeclared attribute makes the snapshot unencodable, and the command still commits.
    namespace: dict[str, object] = {"Scrapbook": Scrapbook, "NoteAdded": NoteAdded}
    namespace["event_handler"] = event_handler
    exec(
        "class Hidden(Scrapbook, name='Hidden'):\n"
        "    @event_handler(NoteAdded)\n"
        "    def _added(self, event):\n"
        "        self.notes.append(event.note)\n"
        "        self.last_note = event.note\n",
        namespace,
    )
    hidden = namespace["Hidden"]
    assert isinstance(hidden, type) and issubclass(hidden, Scrapbook)
    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[hidden], snapshots={hidden: EveryNEvents(1)})
    app.handle(StartBook(book_id="b"))
    with structlog.testing.capture_logs() as logs:
        app.handle(AddNote(book_id="b", note="careless"))
    assert [e.version for e in store.load_events("Hidden", "b")] == [1, 2]
    snapshot = store.load_snapshot("Hidden", "b")
    assert snapshot is not None and snapshot.version == 1  # the older one stays
    skipped = [entry for entry in logs if entry["event"] == "snapshot.skipped_unencodable"]
    assert skipped and skipped[0]["log_level"] == "error" and "last_note" in skipped[0]["error"]


def test_a_snapshot_too_large_for_an_item_is_skipped_not_fatal() -> None:
    store = InMemoryEventStore()
    app = scrapbook_app(store)
    app.handle(StartBook(book_id="b"))
    app.handle(AddNote(book_id="b", note=secrets.token_urlsafe(300_000)))
    assert store.load_snapshot("Scrapbook", "b") is not None
    with structlog.testing.capture_logs() as logs:
        app.handle(AddNote(book_id="b", note=secrets.token_urlsafe(300_000)))
    snapshot = store.load_snapshot("Scrapbook", "b")
    assert snapshot is not None and snapshot.version == 2  # the older one stays
    assert app.get(Scrapbook, "b").version == 3
    assert [entry["event"] for entry in logs] == ["snapshot.skipped_too_large", "command.handled"]


def test_snapshot_and_events_load_many_events_quickly_with_multi_event_commands() -> None:
    store = InMemoryEventStore()
    app = bank(store, every=100)
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    for _ in range(10):
        app.handle(DepositMany(account_id="a", amounts=tuple(Decimal(1) for _ in range(50))))
    snapshot = store.load_snapshot("Account", "a")
    assert snapshot is not None and snapshot.version == 501
    assert app.get(Account, "a").balance == Decimal(500)


@frozen
class Relocate(Command, target="home_id"):
    home_id: str
    street: str


def _home_classes(field: str, kind_value: str) -> type[Aggregate]:
    """One model in two versions: the nested class's field name and an enum value vary."""

    class Kind(enum.Enum):
        FLAT = kind_value

    Street = attrs.make_class("Street", {field: attrs.field(type=str, default="")}, frozen=True)

    @frozen
    class Moved(Event, name="Moved"):
        street: str

    class Home(Aggregate, name="Home"):
        address: object = None
        history: list[object] = []  # noqa: RUF012
        kind: Kind = Kind.FLAT

        @command_handler(Relocate, creates=None)
        def relocate(self, command: Relocate) -> None:
            self.emit(Moved(street=command.street))

        @event_handler(Moved)
        def _moved(self, event: Moved) -> None:
            self.address = Street(**{field: event.street})
            self.history.append(self.address)

    # Real types instead of strings: these classes are local to this function.
    # (built as values: Street is a variable, which a type checker does not read as a type)
    history = types.GenericAlias(list, (Street,))
    Home.__annotations__.update(address=Street | type(None), history=history, kind=Kind)
    return Home


def test_the_fingerprint_covers_nested_classes_and_enum_values() -> None:
    original = _home_classes("street", "flat")
    assert state_schema(original) == state_schema(_home_classes("street", "flat"))
    assert state_schema(_home_classes("road", "flat")) != state_schema(original)
    assert state_schema(_home_classes("street", "apartment")) != state_schema(original)


def test_plain_states_keep_the_fingerprint_they_had() -> None:
    # Snapshots stored before nested classes were described stay usable.
    before = hashlib.sha256(b"Scrapbook|1|notes:list[str]").hexdigest()[:16]
    assert state_schema(Scrapbook) == before


def test_a_snapshot_of_a_renamed_nested_field_is_ignored_not_misapplied() -> None:
    store = InMemoryEventStore()
    old = _home_classes("street", "flat")
    app = Application(store=store, aggregates=[old], snapshots={old: EveryNEvents(1)})
    app.handle(Relocate(home_id="h", street="Main St"))
    app.handle(Relocate(home_id="h", street="High St"))
    snapshot = store.load_snapshot("Home", "h")
    assert snapshot is not None and snapshot.version == 2
    new = _home_classes("road", "flat")
    reader = Application(store=store, aggregates=[new], snapshots={new: EveryNEvents(1)})
    with structlog.testing.capture_logs() as logs:
        home = reader.get(new, "h")
    assert "snapshot.ignored_schema_changed" in [entry["event"] for entry in logs]
    assert [street.road for street in home.history] == ["Main St", "High St"]  # type: ignore[attr-defined]


def test_a_self_referencing_state_class_has_a_fingerprint() -> None:
    @frozen
    class Node:
        name: str
        children: list[object]

    Node.__annotations__["children"] = list[Node]

    class Tree(Aggregate, name="Tree"):
        root: object = None

    Tree.__annotations__["root"] = Node | None
    assert len(state_schema(Tree)) == 16
