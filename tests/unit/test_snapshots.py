"""Snapshot policies, and loading from snapshots without ever misapplying one."""

from __future__ import annotations

import secrets
from decimal import Decimal

import pytest
import structlog
from attrs import frozen

from framework import (
    Aggregate,
    Application,
    Command,
    DefinitionError,
    Event,
    EveryNEvents,
    NoSnapshots,
    command_handler,
    event_handler,
    target_id,
)
from framework.serialization import SnapshotStateError
from framework.store import InMemoryEventStore, Snapshot
from tests.support.bank import Account, Deposit, DepositMany, OpenAccount
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
    assert spy.calls == [("load_snapshot", ("Account", "a")), ("load_events", ("Account", "a", 20))]


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
class StartBook(Command):
    book_id: str = target_id()


@frozen
class AddNote(Command):
    book_id: str = target_id()
    note: str


@frozen
class BookStarted(Event):
    pass


@frozen
class NoteAdded(Event):
    note: str


class Scrapbook(Aggregate):
    """State that grows with every event, and one attribute it forgot to declare."""

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
        if event.note == "careless":
            self.last_note = event.note  # not declared on the class: a snapshot would lose it


def scrapbook_app(store: InMemoryEventStore) -> Application:
    return Application(store=store, aggregates=[Scrapbook], snapshots={Scrapbook: EveryNEvents(1)})


def test_state_not_declared_on_the_class_fails_loudly_and_writes_nothing() -> None:
    store = InMemoryEventStore()
    app = scrapbook_app(store)
    app.handle(StartBook(book_id="b"))
    with pytest.raises(SnapshotStateError, match=r"not declared as annotated state \(last_note\)"):
        app.handle(AddNote(book_id="b", note="careless"))
    assert [e.version for e in store.load_events("Scrapbook", "b")] == [1]


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
