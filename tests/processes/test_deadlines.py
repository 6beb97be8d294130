"""The deadline runner on both stores (in memory and DynamoDB Local): claimed with a lease, fired
once when runners race or one crashes after sending. Time is passed in, never slept. The stores'
own rules are the contract in ``framework.testing.contracts`` (tests/contract/)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import attrs
import pytest

from framework import Application, InMemoryEventStore
from framework.application.results import CommandResult
from framework.domain import Command
from framework.errors import StoreUnavailable
from framework.projections.deadlines import (
    Deadline,
    DeadlineRunner,
    DeadlineStatus,
    DeadlineStore,
    InMemoryDeadlineStore,
    RunReport,
    encode_command,
)
from framework.projections.dynamodb_deadlines import DynamoDBDeadlineStore
from framework.store import EventStore
from tests.support.processes import ExpireOrder, Order, PayOrder, PlaceOrder, order_application

T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(minutes=2)


@pytest.fixture(params=["memory", "dynamodb"])
def backend(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[EventStore, DeadlineStore]]:
    if request.param == "memory":
        yield InMemoryEventStore(), InMemoryDeadlineStore()
        return
    deadlines: DynamoDBDeadlineStore = request.getfixturevalue("dynamodb_deadlines")
    yield deadlines.store, deadlines


def expiry(order_id: str, due: dt.datetime = T0) -> Deadline:
    command_type, document = encode_command(ExpireOrder(order_id=order_id))
    return Deadline(
        deadline_id=f"d-{order_id}",
        process="fulfilment",
        due_at=due,
        command_type=command_type,
        command=document,
        correlation_id=f"corr-{order_id}",
        causation_id=f"cause-{order_id}",
        created_at=T0 - dt.timedelta(minutes=30),
    )


def place(app: Application, count: int) -> list[str]:
    ids = [f"o{i}" for i in range(count)]
    for order_id in ids:
        app.handle(PlaceOrder(order_id=order_id, sku="apple"))
    return ids


def expired_events(app: Application, order_id: str) -> list[str]:
    return [
        r.command_id
        for r in app.store.load_events("Order", order_id, 0)
        if r.event_type == "OrderExpired"
    ]


def test_a_fired_command_carries_the_deadline_ids(
    backend: tuple[EventStore, DeadlineStore],
) -> None:
    store, deadlines = backend
    app = order_application(store)
    place(app, 1)
    deadlines.schedule(expiry("o0"))
    assert DeadlineRunner(app, deadlines).run_due(T0).fired == 1
    record = app.store.load_events("Order", "o0", 0)[-1]
    assert (record.command_id, record.correlation_id, record.causation_id) == (
        "d-o0",
        "corr-o0",
        "cause-o0",
    )
    fired = deadlines.get("d-o0")
    assert fired is not None and fired.status is DeadlineStatus.FIRED and fired.fired_at == T0


def test_two_runners_racing_fire_each_deadline_once(
    backend: tuple[EventStore, DeadlineStore],
) -> None:
    store, deadlines = backend
    app = order_application(store)
    ids = place(app, 12)
    for order_id in ids:
        deadlines.schedule(expiry(order_id, T0 - dt.timedelta(seconds=len(order_id))))
    runners = [DeadlineRunner(app, deadlines, owner=f"r{i}", batch=5) for i in range(2)]
    reports: list[RunReport] = []
    start = threading.Barrier(len(runners))

    def run(runner: DeadlineRunner) -> None:
        start.wait()
        reports.append(runner.run_due(T0))

    threads = [threading.Thread(target=run, args=(runner,)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(report.fired for report in reports) == len(ids)
    for order_id in ids:
        assert expired_events(app, order_id) == [f"d-{order_id}"]
    assert all(d.status is DeadlineStatus.FIRED for d in deadlines.list())


class Crash(BaseException):
    """The process dies: nothing after this runs (not an ``Exception``, so nothing catches it)."""


class CrashAfterSending(Application):
    """Sends the command, then dies before the runner can mark the deadline fired."""

    def handle(self, command: Command) -> CommandResult:
        super().handle(command)
        raise Crash


def test_a_runner_crashing_after_sending_is_taken_over_once_its_lease_expires(
    backend: tuple[EventStore, DeadlineStore],
) -> None:
    store, deadlines = backend
    app = order_application(store)
    place(app, 1)
    deadlines.schedule(expiry("o0"))
    crashing = DeadlineRunner(
        CrashAfterSending(store=store, aggregates=[Order]), deadlines, owner="a", lease=LEASE
    )
    with pytest.raises(Crash):
        crashing.run_due(T0)
    assert expired_events(app, "o0") == ["d-o0"]
    second = DeadlineRunner(app, deadlines, owner="b", lease=LEASE)
    assert second.run_due(T0 + LEASE / 2).lost == 1  # the lease still holds
    report = second.run_due(T0 + LEASE)
    assert report.fired == 1
    assert expired_events(app, "o0") == ["d-o0"]  # a repeat: applied once
    fired = deadlines.get("d-o0")
    assert fired is not None and fired.status is DeadlineStatus.FIRED and fired.attempts == 2


def test_a_refused_command_marks_the_deadline_refused(
    backend: tuple[EventStore, DeadlineStore],
) -> None:
    store, deadlines = backend
    app = order_application(store)
    place(app, 1)
    app.handle(PayOrder(order_id="o0"))
    deadlines.schedule(expiry("o0"))
    runner = DeadlineRunner(app, deadlines)
    assert runner.run_due(T0).refused == 1
    refused = deadlines.get("d-o0")
    assert refused is not None and refused.status is DeadlineStatus.REFUSED
    assert refused.last_error == "OrderClosed"
    assert runner.run_due(T0 + dt.timedelta(hours=1)) == RunReport()


class Unavailable(Application):
    """The store does not answer for one order's commands."""

    def handle(self, command: Command) -> CommandResult:
        if getattr(command, "order_id", None) == "o1":
            raise StoreUnavailable("DynamoDB did not answer")
        return super().handle(command)


def test_a_transient_failure_gives_the_deadline_back_for_a_later_run(
    backend: tuple[EventStore, DeadlineStore],
) -> None:
    store, deadlines = backend
    app = order_application(store)
    ids = place(app, 3)
    for order_id in ids:
        deadlines.schedule(expiry(order_id))
    flaky = DeadlineRunner(Unavailable(store=store, aggregates=[Order]), deadlines, batch=1)
    report = flaky.run_due(T0)  # tries each deadline once, then stops
    assert (report.fired, report.failed) == (2, 1)
    failed = deadlines.get("d-o1")
    assert failed is not None and failed.status is DeadlineStatus.PENDING
    assert failed.lease_owner is None and "StoreUnavailable" in (failed.last_error or "")
    assert DeadlineRunner(app, deadlines).run_due(T0 + dt.timedelta(seconds=1)).fired == 1
    assert expired_events(app, "o1") == ["d-o1"]


def test_a_deadline_no_run_can_fire_ends_refused_and_the_others_fire(
    backend: tuple[EventStore, DeadlineStore],
) -> None:
    """A command type the application lost, a document its class no longer reads, a command id
    taken by another command: each is refused with its reason, never retried, never blocking."""
    store, deadlines = backend
    app = order_application(store)
    ids = place(app, 4)
    deadlines.schedule(attrs.evolve(expiry(ids[0]), command_type="VanishedCommand"))
    deadlines.schedule(attrs.evolve(expiry(ids[1]), command='{"order": 1}'))
    app.handle(PayOrder(order_id=ids[2], command_id=f"d-{ids[2]}"))  # takes the deadline's id
    for order_id in ids[2:]:
        deadlines.schedule(expiry(order_id))
    report = DeadlineRunner(app, deadlines).run_due(T0)
    assert (report.fired, report.refused, report.failed) == (1, 3, 0)
    reasons = {}
    for order_id in ids[:3]:
        ended = deadlines.get(f"d-{order_id}")
        assert ended is not None and ended.status is DeadlineStatus.REFUSED
        reasons[order_id] = ended.last_error or ""
    assert "VanishedCommand" in reasons[ids[0]] and "undecodable" in reasons[ids[1]]
    assert reasons[ids[2]].startswith("CommandIdReused")
    assert expired_events(app, ids[3]) == [f"d-{ids[3]}"]
    assert DeadlineRunner(app, deadlines).run_due(T0 + dt.timedelta(hours=1)) == RunReport()
