"""Exactly-once, in-order application per stream, whatever the delivery does (in memory)."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from framework import Application, InMemoryEventStore, Projector, event_handler
from framework.errors import DefinitionError
from framework.projections import Envelope, ProjectionEngine
from framework.store import InMemoryPositionStore, StoredEvent
from framework.store.positions import ParkedEvent
from framework.testing.bank import Account, ClaimHandle, Deposit, Deposited, OpenAccount, Withdraw
from tests.support.projectors import Balances


@pytest.fixture
def store() -> InMemoryEventStore:
    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[Account])
    for account_id in ("a", "b"):
        app.handle(OpenAccount(account_id=account_id, owner=account_id))
        for amount in (10, 20, 30):
            app.handle(Deposit(account_id=account_id, amount=Decimal(amount)))
    app.handle(Withdraw(account_id="a", amount=Decimal(5)))
    return store


def all_events(store: InMemoryEventStore) -> list[StoredEvent]:
    return list(store.read_feed())


def engine_for(store: InMemoryEventStore) -> tuple[ProjectionEngine, Balances]:
    projector = Balances()
    return ProjectionEngine(projector, store, InMemoryPositionStore(), retry_delay=0), projector


def expected(projector: Balances) -> None:
    assert projector.balances == {"a": Decimal(55), "b": Decimal(60)}
    assert sorted(projector.applied) == sorted(set(projector.applied))  # nothing twice
    assert len(projector.applied) == 9


def test_in_order_delivery(store: InMemoryEventStore) -> None:
    engine, projector = engine_for(store)
    report = engine.apply(all_events(store))
    assert report.applied == 9 and report.skipped == 0
    expected(projector)


def test_redelivery_and_duplicates_are_skipped(store: InMemoryEventStore) -> None:
    engine, projector = engine_for(store)
    events = all_events(store)
    engine.apply(events[:4])
    report = engine.apply(events + events[2:6])
    assert report.skipped == 4 + 4  # two already applied, and the duplicates in this delivery
    expected(projector)


def test_reordering_within_a_stream_is_undone(store: InMemoryEventStore) -> None:
    engine, projector = engine_for(store)
    events = all_events(store)
    random.Random(7).shuffle(events)
    engine.apply(events)
    expected(projector)
    for stream in ("Account#a", "Account#b"):
        versions = [v for s, v in projector.applied if s == stream]
        assert versions == sorted(versions)


def test_a_gap_is_filled_from_the_store(store: InMemoryEventStore) -> None:
    engine, projector = engine_for(store)
    events = all_events(store)
    a_events = [e for e in events if e.aggregate_id == "a"]
    report = engine.apply([a_events[0], a_events[3]])  # versions 1 and 4: 2 and 3 are missing
    assert report.gaps_filled == 1
    assert [v for _, v in projector.applied] == [1, 2, 3, 4]
    engine.apply(events)
    expected(projector)


def test_a_failing_handler_parks_its_stream_and_others_go_on(
    store: InMemoryEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, projector = engine_for(store)
    calls = {"n": 0}

    def failing_withdrawn(self: Balances, event: object, envelope: object) -> None:
        calls["n"] += 1
        raise RuntimeError("read model down")

    broken = {**Balances._handlers_by_name, "Withdrawn": failing_withdrawn}
    monkeypatch.setattr(Balances, "_handlers_by_name", broken)
    report = engine.apply(all_events(store))
    assert calls["n"] == engine.max_attempts
    assert report.parked == ["balances:Account#a@5"]
    assert projector.balances == {"a": Decimal(60), "b": Decimal(60)}  # b complete, a up to 4
    position = engine.positions.get("balances", "Account#a")
    assert position.version == 4 and position.parked is not None
    assert position.parked.version == 5 and "read model down" in position.parked.error

    held = engine.apply(all_events(store))
    assert held.held == 5 and held.applied == 0  # the stream waits at the parked event

    monkeypatch.undo()  # the read model is back: a person retries the stream
    engine.positions.release("balances", "Account#a", skip=False)
    engine.catch_up_stream("Account", "a")
    expected(projector)


def test_a_parked_event_can_be_skipped(store: InMemoryEventStore) -> None:
    engine, projector = engine_for(store)
    positions = engine.positions
    engine.apply([e for e in all_events(store) if e.version <= 4])
    positions.park(
        "balances", "Account#a", 4, ParkedEvent(5, "bad", 3, all_events(store)[0].occurred_at)
    )
    positions.release("balances", "Account#a", skip=True)
    assert positions.get("balances", "Account#a").version == 5
    engine.catch_up_stream("Account", "a")
    assert projector.balances["a"] == Decimal(60)  # the withdrawal was stepped over


def test_events_a_projector_does_not_handle_still_move_its_position(
    store: InMemoryEventStore,
) -> None:
    app = Application(store=store, aggregates=[Account])
    app.handle(ClaimHandle(account_id="b", handle="bee"))
    engine, projector = engine_for(store)
    engine.apply(all_events(store))
    assert engine.positions.get("balances", "Account#b").version == 5
    assert projector.balances["b"] == Decimal(60)


@pytest.mark.parametrize("name", ["", "a#b", "p" * 256])
def test_projector_names_that_cannot_key_a_position_are_refused(name: str) -> None:
    with pytest.raises(DefinitionError):

        class Unkeyable(Projector, name=name):
            pass


def test_a_handler_may_leave_out_the_envelope() -> None:
    class Totals(Projector, name="totals-without-envelope"):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[Decimal] = []

        @event_handler(Deposited)
        def _deposited(self, event: Deposited) -> None:
            self.seen.append(event.amount)

    store = InMemoryEventStore()
    app = Application(store=store, aggregates=[Account])
    app.handle(OpenAccount(account_id="a", owner="Ann"))
    app.handle(Deposit(account_id="a", amount=Decimal(3)))
    projector = Totals()
    ProjectionEngine(projector, store, InMemoryPositionStore()).catch_up_stream("Account", "a")
    assert projector.seen == [Decimal(3)]


def test_a_handler_of_another_shape_is_refused_at_class_definition() -> None:
    with pytest.raises(DefinitionError, match=r"Odd\._deposited takes 4 positional parameters"):

        class Odd(Projector, name="odd"):
            @event_handler(Deposited)
            def _deposited(self, event: Deposited, envelope: Envelope, extra: int) -> None:
                pass
