"""Catch-up never steps over a late event: its checkpoint trails what it read by an overlap and
never runs ahead of now, and re-reading the overlap applies nothing twice (DynamoDB Local)."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from framework import DynamoDBEventStore, Projector, event_handler
from framework.projections import CatchUpRunner, Envelope
from framework.store import ChangeSet, DynamoDBPositionStore
from framework.testing.bank import Deposited
from framework.testing.records import change_set

pytestmark = pytest.mark.dynamodb_local


class Counts(Projector, name="counts"):
    def __init__(self) -> None:
        super().__init__()
        self.applied: list[tuple[str, int]] = []

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        self.applied.append((envelope.aggregate_id, envelope.version))


def stamped(aggregate_id: str, at: dt.datetime) -> ChangeSet:
    """One ``Deposited`` whose feed time is ``at``, as a writer with that clock would stamp it."""
    plain = change_set([(aggregate_id, 0, 1)])
    (change,) = plain.aggregates
    events = tuple(attrs.evolve(event, occurred_at=at) for event in change.events)
    return attrs.evolve(plain, committed_at=at, aggregates=(attrs.evolve(change, events=events),))


def test_an_event_stamped_before_the_last_read_that_lands_later_is_read(
    local_store: DynamoDBEventStore,
) -> None:
    now = dt.datetime.now(dt.UTC)
    hour = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    projector = Counts()
    runner = CatchUpRunner(local_store, DynamoDBPositionStore(local_store), [projector])

    local_store.commit(stamped("early", hour - dt.timedelta(minutes=1)))
    runner.run(since=hour - dt.timedelta(hours=1), until=hour + dt.timedelta(seconds=1))
    # A slow writer's event, stamped just before the hour the run read into, lands only now.
    local_store.commit(stamped("late", hour - dt.timedelta(seconds=1)))
    runner.run()

    assert sorted(projector.applied) == [("early", 1), ("late", 1)]  # once each


def test_a_run_into_the_future_does_not_move_past_later_commits(
    local_store: DynamoDBEventStore,
) -> None:
    projector = Counts()
    runner = CatchUpRunner(
        local_store,
        DynamoDBPositionStore(local_store),
        [projector],
        safety_window=dt.timedelta(0),
    )
    local_store.commit(stamped("before", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)))
    runner.run(until=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    local_store.commit(stamped("after", dt.datetime.now(dt.UTC)))
    second = runner.run()

    assert sorted(projector.applied) == [("after", 1), ("before", 1)]
    assert second.skipped == 1  # "before" was read again inside the overlap, and skipped
