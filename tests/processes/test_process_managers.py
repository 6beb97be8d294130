"""Process managers on the in-memory store: commands issued once, with derived ids, whatever the
delivery does; refusals, transient failures and reused ids each handled their own way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
import structlog.testing
from attrs import frozen

from framework import (
    Application,
    Command,
    InMemoryEventStore,
    UnitOfWork,
    command_handler,
    event_handler,
)
from framework.errors import (
    AggregateNotFound,
    DefinitionError,
    DeliverAgain,
    InvalidDeadline,
    Throttled,
)
from framework.projections import Envelope, ProjectionEngine
from framework.projections.deadlines import (
    CancelResult,
    DeadlineRunner,
    DeadlineStatus,
    InMemoryDeadlineStore,
)
from framework.projections.process_managers import (
    ProcessManager,
    derived_command_id,
    derived_id,
)
from framework.projections.publisher import event_id
from framework.store import InMemoryPositionStore, StoredEvent
from framework.store.positions import PositionStore
from tests.support.processes import (
    PAYMENT_WINDOW,
    Allocation,
    Allocator,
    ExpireOrder,
    Fulfilment,
    Order,
    OrderPaid,
    OrderPlaced,
    PayOrder,
    PlaceOrder,
    Reserve,
    Stock,
    order_application,
)
from tests.support.tracing import recording_spans


def feed(store: InMemoryEventStore) -> list[StoredEvent]:
    return list(store.read_feed())


def events_of(app: Application, aggregate_type: str, aggregate_id: str) -> list[str]:
    return [r.event_type for r in app.store.load_events(aggregate_type, aggregate_id, 0)]


class Setup:
    def __init__(self) -> None:
        self.store = InMemoryEventStore()
        self.app = order_application(self.store)
        self.deadlines = InMemoryDeadlineStore()
        self.manager = Fulfilment(self.app, deadlines=self.deadlines)
        self.positions: PositionStore = InMemoryPositionStore()

    def engine(self, positions: PositionStore | None = None) -> ProjectionEngine:
        return ProjectionEngine(
            self.manager, self.store, positions or self.positions, retry_delay=0
        )

    def follow(self, records: Iterable[StoredEvent] | None = None) -> None:
        self.engine().apply(feed(self.store) if records is None else records)


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_an_event_issues_its_command_once_with_derived_ids(setup: Setup) -> None:
    placed = setup.app.handle(PlaceOrder(order_id="o1", sku="apple", correlation_id="req-1"))
    setup.follow()
    setup.follow()  # redelivered: skipped by the position
    ProjectionEngine(setup.manager, setup.store, InMemoryPositionStore()).apply(feed(setup.store))
    # ... and with positions lost (a crash before they were written): a repeat, not a second one
    assert events_of(setup.app, "Stock", "apple") == ["Reserved"]
    stock_event = setup.store.load_events("Stock", "apple", 0)[0]
    trigger = event_id(str(placed.change_set_id), "Order#o1", 1)
    assert stock_event.command_id == derived_command_id("fulfilment", trigger, 0)
    assert stock_event.correlation_id == "req-1"
    assert stock_event.causation_id == trigger


def test_a_crash_before_the_position_moves_redelivers_and_applies_once(setup: Setup) -> None:
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))

    class Crashing(InMemoryPositionStore):
        def advance_many(self, projector: str, moves: Sequence[tuple[str, int, int]]) -> list[str]:
            raise RuntimeError("crash before the position was written")

    with pytest.raises(RuntimeError):
        setup.engine(Crashing()).apply(feed(setup.store))
    assert events_of(setup.app, "Stock", "apple") == ["Reserved"]  # sent before the position
    setup.follow()
    assert events_of(setup.app, "Stock", "apple") == ["Reserved"]
    assert setup.positions.get("fulfilment", "Order#o1").version == 1


def test_a_refused_command_goes_to_the_hook_and_the_manager_goes_on(setup: Setup) -> None:
    refusals: list[str] = []

    class Noting(Fulfilment, name="noting"):
        def refused(self, command: object, error: Exception, envelope: Envelope) -> None:
            refusals.append(f"{type(command).__name__}:{envelope.stream}")

    setup.manager = Noting(setup.app, deadlines=setup.deadlines)
    setup.app.handle(PlaceOrder(order_id="o1", sku="discontinued"))
    setup.app.handle(PlaceOrder(order_id="o2", sku="apple"))
    setup.follow()
    assert refusals == ["Reserve:Order#o1"]
    assert events_of(setup.app, "Stock", "apple") == ["Reserved"]
    assert setup.positions.get("noting", "Order#o1").version == 1


def test_a_transient_failure_propagates_and_the_position_stays(setup: Setup) -> None:
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))

    class Throttling(Application):
        def handle(self, command: object) -> object:  # type: ignore[override]
            raise Throttled("slow down")

    setup.manager.application = Throttling(store=setup.store, aggregates=[Order, Stock])
    with pytest.raises(DeliverAgain) as stopped:
        setup.follow()  # neither retried nor parked: the delivery stops, nothing moves
    assert isinstance(stopped.value.__cause__, Throttled)
    assert setup.positions.get("fulfilment", "Order#o1").version == 0
    setup.manager.application = setup.app
    setup.follow()
    assert events_of(setup.app, "Stock", "apple") == ["Reserved"]


def test_a_reused_command_id_is_loud(setup: Setup) -> None:
    placed = setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
    taken = derived_command_id("fulfilment", event_id(str(placed.change_set_id), "Order#o1", 1), 0)
    setup.app.handle(Reserve(sku="pear", order_id="x", command_id=taken))
    report = setup.engine().apply(feed(setup.store))
    # A bug no redelivery can cure: the event is parked with it, its stream waits, others go on.
    assert report.parked == ["fulfilment:Order#o1@1"]
    parked = setup.positions.get("fulfilment", "Order#o1").parked
    assert parked is not None and "CommandIdReused" in parked.error
    assert events_of(setup.app, "Stock", "apple") == []


def test_a_failed_handler_attempt_asks_for_nothing(setup: Setup) -> None:
    attempts: list[int] = []

    class Flaky(ProcessManager, name="flaky"):
        @event_handler(OrderPlaced)
        def _placed(self, event: OrderPlaced, envelope: Envelope) -> None:
            self.issue(Reserve(sku=event.sku, order_id=envelope.aggregate_id))
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("first attempt fails after issuing")

    manager = Flaky(setup.app)
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
    ProjectionEngine(manager, setup.store, setup.positions, retry_delay=0).apply(feed(setup.store))
    assert len(attempts) == 2
    stock = setup.app.get(Stock, "apple")
    assert stock.reserved == ["o1"] and stock.version == 1


def test_scheduling_twice_stores_one_deadline_and_payment_cancels_it(setup: Setup) -> None:
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
    setup.follow()
    ProjectionEngine(setup.manager, setup.store, InMemoryPositionStore()).apply(feed(setup.store))
    assert len(setup.deadlines.list()) == 1
    deadline = setup.deadlines.list()[0]
    assert deadline.deadline_id == Fulfilment.deadline_id("o1")
    assert deadline.command_type == "ExpireOrder"
    setup.app.handle(PayOrder(order_id="o1"))
    setup.follow()
    assert setup.deadlines.list()[0].status is DeadlineStatus.CANCELLED
    runner = DeadlineRunner(setup.app, setup.deadlines)
    report = runner.run_due(deadline.due_at + dt.timedelta(hours=1))
    assert report.fired == 0
    assert setup.app.get(Order, "o1").state == "paid"


def test_an_unpaid_order_expires_and_releases_its_stock(setup: Setup) -> None:
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple", correlation_id="req-9"))
    setup.follow()
    placed_at = setup.store.load_events("Order", "o1", 0)[0].occurred_at
    runner = DeadlineRunner(setup.app, setup.deadlines)
    assert runner.run_due(placed_at + PAYMENT_WINDOW - dt.timedelta(seconds=1)).fired == 0
    assert runner.run_due(placed_at + PAYMENT_WINDOW).fired == 1
    assert runner.run_due(placed_at + PAYMENT_WINDOW * 2).fired == 0  # fired once
    expired = setup.store.load_events("Order", "o1", 0)[-1]
    assert expired.event_type == "OrderExpired"
    assert expired.command_id == Fulfilment.deadline_id("o1")
    assert expired.correlation_id == "req-9"
    setup.follow()
    assert setup.app.get(Stock, "apple").reserved == []
    outcomes: list[CancelResult] = []

    class Noting(Fulfilment, name="fulfilment"):
        def cancelled(self, deadline_id: str, result: CancelResult, envelope: Envelope) -> None:
            outcomes.append(result)

    late = Noting(setup.app, deadlines=setup.deadlines)
    with late_payment(late) as asking:
        asking.cancel("o1")
    assert outcomes == [CancelResult.ALREADY_FIRED]


class late_payment:
    """Runs a manager's requests as if an OrderPaid had just been handled."""

    def __init__(self, manager: ProcessManager) -> None:
        self.manager = manager

    def __enter__(self) -> ProcessManager:
        self.manager._begin(
            Envelope(
                aggregate_type="Order",
                aggregate_id="o1",
                version=3,
                event_type="OrderPaid",
                occurred_at=dt.datetime.now(dt.UTC),
                change_set_id="cs",
                command_id="c",
                correlation_id="r",
                causation_id="c",
            )
        )
        return self.manager

    def __exit__(self, *exc: object) -> None:
        asking = self.manager._end()
        assert asking is not None
        self.manager._perform_asked(asking.actions)


def test_a_refused_deadline_is_not_retried(setup: Setup) -> None:
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
    setup.follow()
    setup.manager.deadlines = None  # the payment's cancellation is lost: the deadline stays
    setup.app.handle(PayOrder(order_id="o1"))
    due = setup.deadlines.list()[0].due_at
    runner = DeadlineRunner(setup.app, setup.deadlines)
    report = runner.run_due(due)
    assert report.refused == 1
    assert setup.deadlines.list()[0].status is DeadlineStatus.REFUSED
    assert runner.run_due(due + dt.timedelta(hours=1)).refused == 0


def test_requests_outside_a_handler_and_naive_times_are_refused(setup: Setup) -> None:
    with pytest.raises(DefinitionError):
        setup.manager.issue(Reserve(sku="a", order_id="o"))
    with late_payment(setup.manager) as asking, pytest.raises(InvalidDeadline):
        asking.schedule(ExpireOrder(order_id="o1"), at=dt.datetime(2030, 1, 1))
    setup.manager.deadlines = None
    with pytest.raises(InvalidDeadline), late_payment(setup.manager) as asking:
        asking.cancel("o1")  # done when the handler returns: there is no store to do it in


def test_derived_ids_have_no_separator_ambiguity() -> None:
    assert derived_id("a:b", "c") != derived_id("a", "b:c")
    assert derived_id("1:a", "") != derived_id("1", ":a")
    assert derived_command_id("p", "e", 0) == derived_command_id("p", "e", 0)
    assert derived_command_id("p", "e", 0) != derived_command_id("p", "e", 1)


def test_the_scenario_kit_records_what_the_manager_asks() -> None:
    from framework.testing import ProcessManagerScenario, ScenarioFailed
    from tests.support.processes import OrderPaid, Release

    start = dt.datetime(2031, 5, 1, 8, 0, tzinfo=dt.UTC)
    with ProcessManagerScenario(Fulfilment(), now=start) as orders:
        orders.given(Order, "o1", OrderPlaced(sku="apple"))
        with pytest.raises(ScenarioFailed):
            orders.then_issued(Release(sku="apple", order_id="o1"))
        orders.given(Order, "o2", OrderPlaced(sku="pear"))
        orders.then_issued(Reserve(sku="apple", order_id="o1"), Reserve(sku="pear", order_id="o2"))
        expiry = orders.then_scheduled(ExpireOrder(order_id="o1"), at=start + PAYMENT_WINDOW)
        assert expiry == Fulfilment.deadline_id("o1")
        orders.redeliver().then_nothing_issued()
        orders.advance(PAYMENT_WINDOW / 2).given(Order, "o1", OrderPaid())
        assert orders.then_cancelled(expiry) is CancelResult.CANCELLED
        assert [s.deadline_id for s in orders.due(start + PAYMENT_WINDOW)] == [
            Fulfilment.deadline_id("o2")
        ]
        with pytest.raises(ScenarioFailed):
            orders.then_cancelled(Fulfilment.deadline_id("o2"))


def test_a_command_the_application_does_not_handle_parks_the_event(setup: Setup) -> None:
    lone = Application(store=setup.store, aggregates=[Order])  # no Stock: Reserve is unknown
    manager = Fulfilment(lone, deadlines=setup.deadlines)
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
    report = ProjectionEngine(manager, setup.store, setup.positions, retry_delay=0).apply(
        feed(setup.store)
    )
    assert report.parked == ["fulfilment:Order#o1@1"]
    (parked,) = setup.positions.parked("fulfilment")
    assert parked.parked is not None and "does not handle" in parked.parked.error
    assert setup.deadlines.list() == []  # nothing of the failed handler was done


def test_a_deadline_without_a_key_is_named_by_its_event_and_cancelled_by_id(setup: Setup) -> None:
    with late_payment(setup.manager) as asking:
        first = asking.schedule(
            ExpireOrder(order_id="o1"), at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        )
        second = asking.schedule(
            ExpireOrder(order_id="o1"), at=dt.datetime(2030, 1, 2, tzinfo=dt.UTC)
        )
    assert first != second
    setup.manager.before_advance()
    assert len(setup.deadlines.list()) == 2
    with late_payment(setup.manager) as asking:
        assert asking.cancel(first, by_id=True) == first
        with pytest.raises(DefinitionError):
            asking.cancel(("o1", "x"), by_id=True)
    setup.manager.before_advance()
    assert [d.deadline_id for d in setup.deadlines.list(DeadlineStatus.CANCELLED)] == [first]


def test_an_issued_command_continues_the_trace_of_its_event(setup: Setup) -> None:
    with recording_spans() as exported:
        setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
        (placing,) = [s for s in exported.get_finished_spans() if s.name == "handle"]
        exported.clear()
        setup.follow()
    assert placing.context is not None
    spans = exported.get_finished_spans()
    (issue,) = [s for s in spans if s.name == "issue"]
    (reserving,) = [s for s in spans if s.name == "handle"]
    assert issue.context is not None and reserving.parent is not None
    assert issue.context.trace_id == placing.context.trace_id
    assert reserving.parent.span_id == issue.context.span_id
    assert issue.attributes is not None and issue.attributes["framework.process"] == "fulfilment"
    (reserved,) = setup.store.load_events("Stock", "apple", 0)
    assert reserved.traceparent is not None
    assert reserved.traceparent.split("-")[1] == f"{placing.context.trace_id:032x}"


def test_a_handler_sees_what_the_commands_of_earlier_events_changed(setup: Setup) -> None:
    """Three orders in one delivery, two units to give: the third handler must see the first
    two reservations, so each command is done before the next event is handled."""

    class Allocation(ProcessManager, name="allocation"):
        @event_handler(OrderPlaced)
        def _placed(self, event: OrderPlaced, envelope: Envelope) -> None:
            try:
                reserved = len(self.application.get(Stock, event.sku).reserved)
            except AggregateNotFound:
                reserved = 0
            if reserved < 2:
                self.issue(Reserve(sku=event.sku, order_id=envelope.aggregate_id))
            else:
                self.issue(ExpireOrder(order_id=envelope.aggregate_id))  # sold out

    for order_id in ("o1", "o2", "o3"):
        setup.app.handle(PlaceOrder(order_id=order_id, sku="apple"))
    manager = Allocation(setup.app)
    report = ProjectionEngine(manager, setup.store, setup.positions).apply(feed(setup.store))
    assert report.applied == 3
    assert setup.app.get(Stock, "apple").reserved == ["o1", "o2"]
    assert setup.app.get(Order, "o3").state == "expired"


def test_a_deadline_never_stores_personal_data(setup: Setup) -> None:
    """A deadline is stored in clear: a command with personal fields would outlive the
    subject's forgetting there, so scheduling one is refused before anything is stored."""

    @frozen
    class RemindByEmail(Command, target="order_id", personal=("email",)):
        order_id: str
        email: str

    class Reminders(ProcessManager, name="reminders"):
        @event_handler(OrderPlaced)
        def _placed(self, event: OrderPlaced, envelope: Envelope) -> None:
            self.schedule(
                RemindByEmail(order_id=envelope.aggregate_id, email="ann@example.com"),
                at=envelope.occurred_at + dt.timedelta(days=1),
            )

    @command_handler(RemindByEmail)
    def remind(uow: UnitOfWork, command: RemindByEmail) -> None:
        """Would send the reminder."""

    app = Application(store=setup.store, aggregates=[Order, Stock], handlers=[remind])
    app.handle(PlaceOrder(order_id="o1", sku="apple"))
    manager = Reminders(app, deadlines=setup.deadlines)
    report = ProjectionEngine(manager, setup.store, setup.positions, retry_delay=0).apply(
        feed(setup.store)
    )
    assert report.parked == ["reminders:Order#o1@1"]
    parked = setup.positions.get("reminders", "Order#o1").parked
    assert parked is not None and "InvalidDeadline" in parked.error and "email" in parked.error
    assert setup.deadlines.list() == []


class CrashOnAdvance(InMemoryPositionStore):
    """Crashes when a position would move: everything before it is done, nothing after."""

    def advance_many(self, projector: str, moves: Sequence[tuple[str, int, int]]) -> list[str]:
        raise RuntimeError("crash before the position was written")


def test_a_state_is_committed_with_the_event_it_handled(setup: Setup) -> None:
    """The event comes again after its state was committed: the handler is not run on the
    state its first run changed (it would expire the order under the id of its reservation)."""
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
    allocator = Allocator(setup.app)
    with pytest.raises(RuntimeError):
        ProjectionEngine(allocator, setup.store, CrashOnAdvance()).apply(feed(setup.store))
    assert setup.app.get(Allocation, "apple").handled == {"Order#o1": 1}
    report = ProjectionEngine(allocator, setup.store, setup.positions).apply(feed(setup.store))
    assert report.parked == []
    assert setup.app.get(Stock, "apple").reserved == ["o1"]
    assert setup.app.get(Order, "o1").state == "placed"
    assert setup.app.get(Allocation, "apple").given == 1


def test_a_crash_before_the_state_commit_decides_again_on_the_same_state(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
    setup.app.handle(PlaceOrder(order_id="o2", sku="apple"))
    commit = Allocator._commit_states
    crashed: list[str] = []

    def crash_once(manager: Allocator, asking: Any) -> list[Any]:
        if not crashed:
            crashed.append(asking.envelope.stream)
            raise RuntimeError("crash before the state was committed")
        return commit(manager, asking)

    monkeypatch.setattr(Allocator, "_commit_states", crash_once)
    allocator = Allocator(setup.app)
    report = ProjectionEngine(allocator, setup.store, setup.positions, retry_delay=0).apply(
        feed(setup.store)
    )
    assert crashed == ["Order#o1"] and report.parked == []
    # The second attempt decided on the same state: the same reservation, a repeat.
    assert setup.app.get(Stock, "apple").reserved == ["o1"]
    assert setup.app.get(Order, "o2").state == "expired"  # sold out, seen in the same delivery
    allocation = setup.app.get(Allocation, "apple")
    assert allocation.given == 1 and allocation.handled == {"Order#o1": 1, "Order#o2": 1}


def test_state_must_be_a_registered_process_state(setup: Setup) -> None:
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
    unregistered = Application(store=setup.store, aggregates=[Order, Stock])
    report = ProjectionEngine(
        Allocator(unregistered), setup.store, setup.positions, retry_delay=0
    ).apply(feed(setup.store))
    parked = setup.positions.get("allocator", "Order#o1").parked
    assert report.parked and parked is not None and "not registered" in parked.error


def test_a_crash_after_the_state_commit_does_again_what_was_recorded(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
    perform = Allocator._perform_asked
    crashed: list[bool] = []

    def crash_once(manager: Allocator, actions: list[Any]) -> None:
        if not crashed:
            crashed.append(True)
            raise RuntimeError("crash after the state, before its commands")
        perform(manager, actions)

    monkeypatch.setattr(Allocator, "_perform_asked", crash_once)
    report = ProjectionEngine(
        Allocator(setup.app), setup.store, setup.positions, retry_delay=0
    ).apply(feed(setup.store))
    assert crashed and report.parked == []
    # The handler's second attempt found the event recorded on the state and did what the
    # state recorded (the reservation), instead of deciding again on the state it had changed.
    assert setup.app.get(Stock, "apple").reserved == ["o1"]
    assert setup.app.get(Order, "o1").state == "placed"
    assert setup.app.get(Allocation, "apple").given == 1


def test_a_state_commit_that_loses_a_race_has_done_nothing(setup: Setup) -> None:
    """Another runner changes the state between this handler's read and its commit: nothing the
    handler asked for was done, so the event is handled again, afresh, on the newer state."""
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
    interloper = Allocator(setup.app)

    class Racing(Allocator, name="allocator"):
        raced = False

        @event_handler(OrderPlaced)
        def _placed(self, event: OrderPlaced, envelope: Envelope) -> None:
            allocation = self.state(Allocation, event.sku)
            if not Racing.raced:  # another runner gives the last unit away meanwhile
                Racing.raced = True
                other = interloper.application.unit_of_work(PlaceOrder(order_id="x", sku="-"))
                other.get_or_create(Allocation, event.sku).give("o9")
                other.commit()
            if allocation.given < 1:
                allocation.give(envelope.aggregate_id)
                self.issue(Reserve(sku=event.sku, order_id=envelope.aggregate_id))
            else:
                self.issue(ExpireOrder(order_id=envelope.aggregate_id))

    engine = ProjectionEngine(Racing(setup.app), setup.store, setup.positions, retry_delay=0)
    with pytest.raises(DeliverAgain):
        engine.apply(feed(setup.store))
    with pytest.raises(AggregateNotFound):
        setup.app.get(Stock, "apple")  # the reservation was never sent
    report = engine.apply(feed(setup.store))
    assert report.parked == []
    assert setup.app.get(Order, "o1").state == "expired"  # decided on the newer state
    assert setup.app.get(Allocation, "apple").given == 1


def test_deadlines_recorded_on_a_state_are_scheduled_and_cancelled_again_after_a_crash(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Keeping(ProcessManager, name="keeping"):
        """Fulfilment with a state: a crash after each state commit must lose nothing."""

        @event_handler(OrderPlaced)
        def _placed(self, event: OrderPlaced, envelope: Envelope) -> None:
            self.state(Allocation, event.sku).give(envelope.aggregate_id)
            self.issue(Reserve(sku=event.sku, order_id=envelope.aggregate_id))
            self.schedule(
                ExpireOrder(order_id=envelope.aggregate_id),
                at=envelope.occurred_at + PAYMENT_WINDOW,
                key=envelope.aggregate_id,
            )

        @event_handler(OrderPaid)
        def _paid(self, event: OrderPaid, envelope: Envelope) -> None:
            self.state(Allocation, "apple")
            self.cancel(envelope.aggregate_id)

    perform = Keeping._perform_asked
    crashes: list[int] = []

    def crash_each_first_time(manager: Keeping, actions: list[Any]) -> None:
        if len(crashes) < 2 and actions and actions[0].envelope.version not in crashes:
            crashes.append(actions[0].envelope.version)
            raise RuntimeError("crash after the state, before what it asked for")
        perform(manager, actions)

    monkeypatch.setattr(Keeping, "_perform_asked", crash_each_first_time)
    manager = Keeping(setup.app, deadlines=setup.deadlines)
    engine = ProjectionEngine(manager, setup.store, setup.positions, retry_delay=0)
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))
    engine.apply(feed(setup.store))
    (deadline,) = setup.deadlines.list()
    placed = setup.store.load_events("Order", "o1", 0)[0]
    assert deadline.deadline_id == Keeping.deadline_id("o1")
    assert deadline.due_at == placed.occurred_at + PAYMENT_WINDOW
    assert setup.app.get(Stock, "apple").reserved == ["o1"]
    setup.app.handle(PayOrder(order_id="o1"))
    engine.apply(feed(setup.store))
    assert crashes == [1, 2]
    (cancelled,) = setup.deadlines.list()
    assert cancelled.status is DeadlineStatus.CANCELLED


def test_a_stateful_handler_cannot_issue_personal_data(setup: Setup) -> None:
    @frozen
    class Greet(Command, target="order_id", personal=("name",)):
        order_id: str
        name: str

    class Greeter(ProcessManager, name="greeter"):
        @event_handler(OrderPlaced)
        def _placed(self, event: OrderPlaced, envelope: Envelope) -> None:
            self.state(Allocation, event.sku)
            self.issue(Greet(order_id=envelope.aggregate_id, name="Ann"))

    @command_handler(Greet)
    def greet(uow: UnitOfWork, command: Greet) -> None:
        """Would greet."""

    app = Application(store=setup.store, aggregates=[Order, Stock, Allocation], handlers=[greet])
    app.handle(PlaceOrder(order_id="o1", sku="apple"))
    report = ProjectionEngine(Greeter(app), setup.store, setup.positions, retry_delay=0).apply(
        feed(setup.store)
    )
    parked = setup.positions.get("greeter", "Order#o1").parked
    assert report.parked and parked is not None and "personal fields (name)" in parked.error
    with pytest.raises(AggregateNotFound):
        app.get(Allocation, "apple")  # nothing committed


def test_a_runner_that_finds_the_event_committed_by_another_does_what_that_one_recorded(
    setup: Setup,
) -> None:
    """Runner B reads the state, then runner A (which read a newer state) handles the same event
    and commits first: B's commit is a duplicate, and B does what A recorded, not its own."""
    setup.app.handle(PlaceOrder(order_id="o1", sku="apple"))

    class Late(Allocator, name="allocator"):
        @event_handler(OrderPlaced)
        def _placed(self, event: OrderPlaced, envelope: Envelope) -> None:
            allocation = self.state(Allocation, event.sku)  # B reads: no unit given yet
            other = self.application.unit_of_work(PlaceOrder(order_id="x", sku="-"))
            other.get_or_create(Allocation, event.sku).give("o9")  # meanwhile: the last unit
            other.commit()
            ProjectionEngine(
                Allocator(self.application), setup.store, InMemoryPositionStore()
            ).apply(feed(setup.store))  # runner A: reads the newer state, expires o1
            if allocation.given < 1:  # B, on what it read: would reserve
                allocation.give(envelope.aggregate_id)
                self.issue(Reserve(sku=event.sku, order_id=envelope.aggregate_id))
            else:
                self.issue(ExpireOrder(order_id=envelope.aggregate_id))

    with structlog.testing.capture_logs() as logged:
        report = ProjectionEngine(Late(setup.app), setup.store, setup.positions).apply(
            feed(setup.store)
        )
    assert report.parked == []
    # Done right the first time: no second command under A's ids, no handler retried.
    assert [e["event"] for e in logged if e["log_level"] in ("warning", "error")] == []
    assert setup.app.get(Order, "o1").state == "expired"
    with pytest.raises(AggregateNotFound):
        setup.app.get(Stock, "apple")  # B's own decision was never sent
