"""A refused read-model write parks one stream's event, and a lost position race drops nothing
(DynamoDB Local: the refusals are DynamoDB's own)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal

import pytest
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from example_app.read_models import DecimalAttribute
from framework import Application, DynamoDBEventStore, Projector, event_handler
from framework.projections import CatchUpRunner, Envelope, ProjectionEngine, read_models
from framework.store import DynamoDBPositionStore
from framework.store.positions import StreamAdvance, TransactItem
from framework.store.records import StoredEvent
from framework.testing.bank import Account, Deposit, Deposited, OpenAccount
from tests.support.projectors import TableBalances, create_read_table, read_table
from tests.support.timing import far_future

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


# -- the streams of one delivery share transactions ------------------------------------------


class CountingPositions(DynamoDBPositionStore):
    """Counts the transactions a delivery costs; ``rival`` runs before the first pack is sent."""

    def __init__(self, store: DynamoDBEventStore, rival: Callable[[], None] | None = None) -> None:
        super().__init__(store)
        self.rival = rival
        self.packs: list[tuple[list[str], bool]] = []
        self.single_advances: list[str] = []

    def advance_together(self, projector: str, moves: Sequence[StreamAdvance]) -> bool:
        rival, self.rival = self.rival, None
        if rival is not None:
            rival()
        taken = super().advance_together(projector, moves)
        self.packs.append(([move.stream for move in moves], taken))
        return taken

    def advance(
        self,
        projector: str,
        stream: str,
        expected_version: int,
        new_version: int,
        writes: Sequence[TransactItem] = (),
    ) -> None:
        self.single_advances.append(stream)
        super().advance(projector, stream, expected_version, new_version, writes)


class PackedBalance(Model):
    class Meta:
        table_name = "packed-balances"

    account_id = UnicodeAttribute(hash_key=True)
    balance = DecimalAttribute(default=Decimal)
    events = NumberAttribute(default=0)
    note = UnicodeAttribute(null=True)


class TypedBalances(Projector, name="typed-balances"):
    """One row per account (typed, foldable ``add`` updates); ``shared`` also adds every deposit
    to one row of all streams; the ``POISON`` amount's write is refused, ``how``: by a condition
    (a write that cannot be folded) or for a row over 400 KB (one that can)."""

    read_models = (PackedBalance,)

    def __init__(self, *, shared: bool = False, how: str = "condition") -> None:
        super().__init__()
        self.shared = shared
        self.how = how

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        rows = [envelope.aggregate_id, *(["all"] if self.shared else [])]
        for row in rows:
            add = [PackedBalance.balance.add(event.amount), PackedBalance.events.add(1)]
            if event.amount != POISON:
                self.update(PackedBalance(row), actions=add)
            elif self.how == "condition":
                refused = PackedBalance.account_id.does_not_exist()
                self.update(PackedBalance(row), actions=add, condition=refused)
            else:
                self.update(
                    PackedBalance(row), actions=[*add, PackedBalance.note.set("x" * 420_000)]
                )


def packed_rows(store: DynamoDBEventStore) -> dict[str, tuple[Decimal, int]]:
    rows = read_models.bound(PackedBalance, store).scan(consistent_read=True)
    return {row.account_id: (row.balance, int(row.events)) for row in rows}


def _deliveries(store: DynamoDBEventStore, *accounts: str) -> list[StoredEvent]:
    return [record for a in accounts for record in store.load_events("Account", a)]


@pytest.fixture
def typed(local_store: DynamoDBEventStore) -> None:
    read_models.create_tables(local_store, [PackedBalance])


def test_the_writes_of_a_deliverys_streams_go_in_one_transaction(
    local_store: DynamoDBEventStore, bank: Application, typed: None
) -> None:
    counting = CountingPositions(local_store)
    report = ProjectionEngine(TypedBalances(), local_store, counting).apply(
        _deliveries(local_store, "a", "c")
    )
    assert report.applied == 8 and report.conflicts == 0
    assert counting.packs == [(["Account#a", "Account#c"], True)]
    assert counting.single_advances == []
    assert packed_rows(local_store) == {"a": (Decimal(6), 3), "c": (Decimal(6), 3)}


def test_a_pack_with_a_lost_race_commits_the_others_and_reapplies_the_loser_once(
    local_store: DynamoDBEventStore, bank: Application, typed: None
) -> None:
    shared = DynamoDBPositionStore(local_store)
    c_events = local_store.load_events("Account", "c")

    def rival_applies_two_of_c() -> None:
        ProjectionEngine(TypedBalances(), local_store, shared).apply(c_events[:3])

    counting = CountingPositions(local_store, rival_applies_two_of_c)
    report = ProjectionEngine(TypedBalances(), local_store, counting).apply(
        _deliveries(local_store, "a", "c")
    )
    assert counting.packs == [(["Account#a", "Account#c"], False)]
    assert report.conflicts == 1
    assert packed_rows(local_store) == {"a": (Decimal(6), 3), "c": (Decimal(6), 3)}
    assert shared.get("typed-balances", "Account#c").version == 4


def test_streams_writing_one_shared_row_are_never_packed_together(
    local_store: DynamoDBEventStore, bank: Application, typed: None
) -> None:
    counting = CountingPositions(local_store)
    report = ProjectionEngine(TypedBalances(shared=True), local_store, counting).apply(
        _deliveries(local_store, "a", "c")
    )
    assert report.applied == 8
    assert counting.packs == []  # each stream's transaction alone: both write the "all" row
    assert counting.single_advances == ["Account#a", "Account#c"]
    assert packed_rows(local_store)["all"] == (Decimal(12), 6)


@pytest.mark.parametrize(
    ("how", "packs"),
    [
        # The conditional write cannot be folded: b's events before it commit alone, and the
        # poison event alone is refused; a and c still share a transaction.
        ("condition", [(["Account#a", "Account#c"], True)]),
        # The oversized row folds with b's other writes: the pack is refused whole, and the
        # streams are committed one by one, b's events one by one, to find the poison event.
        ("too-large", [(["Account#a", "Account#b", "Account#c"], False)]),
    ],
)
def test_a_refused_write_in_a_pack_parks_only_its_own_event(
    local_store: DynamoDBEventStore,
    bank: Application,
    typed: None,
    how: str,
    packs: list[tuple[list[str], bool]],
) -> None:
    counting = CountingPositions(local_store)
    report = ProjectionEngine(TypedBalances(how=how), local_store, counting).apply(
        _deliveries(local_store, "a", "b", "c")
    )
    assert counting.packs == packs
    assert report.parked == ["typed-balances:Account#b@5"]
    assert packed_rows(local_store) == {
        "a": (Decimal(6), 3),
        "b": (Decimal(6), 3),  # everything before the poison event, nothing after it
        "c": (Decimal(6), 3),
    }
