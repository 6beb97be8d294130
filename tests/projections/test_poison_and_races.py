"""A refused read-model write parks one stream's event, and a lost position race drops nothing
(DynamoDB Local: the refusals are DynamoDB's own)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal

import pytest

from framework import Application, DynamoDBEventStore, event_handler
from framework.projections import CatchUpRunner, Envelope, ProjectionEngine
from framework.store import DynamoDBPositionStore
from framework.store.positions import TransactItem
from tests.support.bank import Account, Deposit, Deposited, OpenAccount
from tests.support.projectors import TableBalances, create_read_table, read_table

pytestmark = pytest.mark.dynamodb_local

POISON = Decimal("13.13")


class FussyBalances(TableBalances, name="fussy-balances"):
    """Writes what DynamoDB refuses for one amount: a condition it did not mean to fail, or an
    item over 400 KB, depending on ``how``."""

    def __init__(self, table: str, how: str) -> None:
        super().__init__(table)
        self.how = how

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        if event.amount != POISON:
            self._add(envelope.aggregate_id, event.amount)
        elif self.how == "condition":
            self.update_item(
                self.table,
                {"pk": {"S": envelope.aggregate_id}},
                "ADD balance :amount, events :one",
                ConditionExpression="attribute_not_exists(pk)",
                ExpressionAttributeValues={":amount": {"N": str(POISON)}, ":one": {"N": "1"}},
            )
        else:
            self.put_item(
                self.table,
                {"pk": {"S": f"huge-{envelope.version}"}, "blob": {"B": b"x" * 420_000}},
            )


def far_future() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


@pytest.fixture
def bank(local_store: DynamoDBEventStore) -> Application:
    app = Application(store=local_store, aggregates=[Account])
    for account_id in ("a", "b", "c"):
        app.handle(OpenAccount(account_id=account_id, owner=account_id))
        for amount in ("1", "2", "3"):
            app.handle(Deposit(account_id=account_id, amount=Decimal(amount)))
    app.handle(Deposit(account_id="b", amount=POISON))  # b's version 5
    app.handle(Deposit(account_id="b", amount=Decimal(4)))  # waits behind it
    return app


@pytest.mark.parametrize("how", ["condition", "too-large"])
def test_a_refused_write_parks_its_event_and_other_streams_go_on(
    local_store: DynamoDBEventStore, bank: Application, how: str
) -> None:
    table = create_read_table(local_store, f"fussy-{how}")
    positions = DynamoDBPositionStore(local_store)
    runner = CatchUpRunner(local_store, positions, [FussyBalances(table, how)], retry_delay=0)

    report = runner.run(until=far_future())  # does not raise: one stream's event is parked

    assert report.parked == ["fussy-balances:Account#b@5"]
    assert read_table(local_store, table) == {
        "a": (Decimal(6), 4),
        "b": (Decimal(6), 4),  # everything before the poison event, nothing after it
        "c": (Decimal(6), 4),
    }
    (parked,) = positions.parked("fussy-balances")
    assert (parked.stream, parked.version) == ("Account#b", 4)
    assert parked.parked is not None and parked.parked.version == 5
    expected = "ConditionalCheckFailed" if how == "condition" else "size"
    assert expected in parked.parked.error

    # Later runs hold that stream at its parked event and keep serving the others.
    bank.handle(Deposit(account_id="a", amount=Decimal(10)))
    again = runner.run(since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), until=far_future())
    assert again.parked == [] and again.held >= 1
    assert read_table(local_store, table)["a"] == (Decimal(16), 5)


class RacingPositions(DynamoDBPositionStore):
    """Lets another runner move a stream's position just before this one's first advance."""

    def __init__(self, store: DynamoDBEventStore, rival: Callable[[], None]) -> None:
        super().__init__(store)
        self.rival: Callable[[], None] | None = rival

    def advance(
        self,
        projector: str,
        stream: str,
        expected_version: int,
        new_version: int,
        writes: Sequence[TransactItem] = (),
    ) -> None:
        rival, self.rival = self.rival, None
        if rival is not None:
            rival()
        super().advance(projector, stream, expected_version, new_version, writes)


def test_a_lost_race_never_drops_the_rest_of_a_delivery(
    local_store: DynamoDBEventStore, bank: Application
) -> None:
    table = create_read_table(local_store, "race")
    records = local_store.load_events("Account", "c")
    shared = DynamoDBPositionStore(local_store)

    def rival_applies_the_first_two() -> None:
        ProjectionEngine(TableBalances(table), local_store, shared).apply(records[:2])

    racing = RacingPositions(local_store, rival_applies_the_first_two)
    # Every event of one account touches its one row: each goes in a transaction of its own,
    # so the rival's advance lands mid-delivery.
    engine = ProjectionEngine(TableBalances(table), local_store, racing)
    report = engine.apply(records)

    assert report.conflicts == 1
    assert racing.get("table-balances", "Account#c").version == 4
    assert read_table(local_store, table) == {"c": (Decimal(6), 4)}  # each event exactly once
