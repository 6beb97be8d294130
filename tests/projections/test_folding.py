"""Folding a stream's read-model writes: one write per row, and the same row as the writes applied
one by one (checked against DynamoDB Local, cases from a table and from hypothesis)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pynamodb.attributes import NumberAttribute, NumberSetAttribute, UnicodeAttribute
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from example_app.read_models import AccountBalance, DecimalAttribute
from framework import Application, DynamoDBEventStore, Projector, event_handler
from framework.errors import DefinitionError
from framework.projections import CatchUpRunner, Envelope, read_models
from framework.projections.folding import FoldedBatch, QueuedWrite, RowWrite, fold, row_key
from framework.store import DynamoDBPositionStore
from framework.store.positions import row_identity
from framework.testing.bank import Account, Deposited, DepositMany, OpenAccount

pytestmark = pytest.mark.dynamodb_local


class Row(Model):
    class Meta:
        table_name = "fold-rows"

    row_id = UnicodeAttribute(hash_key=True)
    a = DecimalAttribute(null=True)
    b = NumberAttribute(null=True)
    c = UnicodeAttribute(null=True)
    tags = NumberSetAttribute(null=True)


class Writer(Projector, name="writer"):
    """Only a queue of typed writes: the tests call save/update/delete directly."""

    read_models = (Row,)


# -- the writes of the cases, as functions of a projector ------------------------------------

Write = Callable[[Writer], None]


def put(row_id: str, **values: Any) -> Write:
    return lambda p: p.save(Row(row_id, **values))


def add(row_id: str, **amounts: Any) -> Write:
    return lambda p: p.update(
        Row(row_id), actions=[getattr(Row, name).add(v) for name, v in amounts.items()]
    )


def add_to(row_id: str, **amounts: Any) -> Write:
    return lambda p: p.add_to(Row, row_id, **amounts)


def set_(row_id: str, **values: Any) -> Write:
    return lambda p: p.update(
        Row(row_id), actions=[getattr(Row, name).set(v) for name, v in values.items()]
    )


def remove(row_id: str, *names: str) -> Write:
    return lambda p: p.update(Row(row_id), actions=[getattr(Row, name).remove() for name in names])


def delete(row_id: str) -> Write:
    return lambda p: p.delete(Row(row_id))


def add_if_exists(row_id: str, amount: int) -> Write:
    return lambda p: p.update(
        Row(row_id), actions=[Row.b.add(amount)], condition=Row.row_id.exists()
    )


def increment(row_id: str) -> Write:
    return lambda p: p.update(Row(row_id), actions=[Row.b.set(Row.b + 1)])


def add_tag(row_id: str, tag: int) -> Write:
    return lambda p: p.update(Row(row_id), actions=[Row.tags.add({tag})])


# -- applying them to DynamoDB Local, one by one and folded ----------------------------------


@pytest.fixture(scope="module")
def tables(dynamodb_local_endpoint: str) -> Iterator[tuple[DynamoDBEventStore, str, str]]:
    """Two read-model tables of ``Row``: one for the writes one by one, one for them folded."""
    from framework.testing.pytest_plugin import unique_prefix

    one = DynamoDBEventStore(table_prefix=unique_prefix(), endpoint_url=dynamodb_local_endpoint)
    two = DynamoDBEventStore(table_prefix=unique_prefix(), endpoint_url=dynamodb_local_endpoint)
    (first,) = read_models.create_tables(one, [Row])
    (second,) = read_models.create_tables(two, [Row])
    try:
        yield one, first, second
    finally:
        read_models.delete_tables(one, [first])
        read_models.delete_tables(two, [second])


def queued(writes: list[Write], table: str) -> list[RowWrite]:
    projector = Writer()
    projector._tables = {"fold-rows": table}
    for write in writes:
        write(projector)
    found = projector.take_queued()
    assert all(isinstance(write, RowWrite) for write in found)
    return [write for write in found if isinstance(write, RowWrite)]


def one_by_one(client: Any, writes: list[RowWrite]) -> None:
    for write in writes:
        client.transact_write_items(TransactItems=[write.transact_item()])


def folded(client: Any, writes: list[QueuedWrite]) -> int:
    """Apply ``writes`` folded the way the engine does; returns the number of transactions."""
    batch, transactions = FoldedBatch(), 0
    for write in writes:
        assert isinstance(write, RowWrite)
        if not batch.add([(write.identity, write)]):
            client.transact_write_items(TransactItems=batch.transact_items())
            transactions += 1
            batch = FoldedBatch()
            assert batch.add([(write.identity, write)])
    if len(batch):
        client.transact_write_items(TransactItems=batch.transact_items())
        transactions += 1
    return transactions


def rows(client: Any, table: str) -> dict[str, dict[str, Any]]:
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return {item["row_id"]["S"]: _normalized(item) for item in items}


def _normalized(item: dict[str, Any]) -> dict[str, Any]:
    """Numbers compared as numbers, sets as sets."""
    result: dict[str, Any] = {}
    for name, value in item.items():
        ((kind, raw),) = value.items()
        if kind == "N":
            result[name] = Decimal(raw)
        elif kind == "NS":
            result[name] = frozenset(Decimal(x) for x in raw)
        else:
            result[name] = raw
    return result


def compare(tables: tuple[DynamoDBEventStore, str, str], writes: list[Write]) -> int:
    store, first, second = tables
    client = store.client
    for table in (first, second):
        for row_id in ("x", "y"):
            client.delete_item(TableName=table, Key={"row_id": {"S": row_id}})
    one_by_one(client, queued(writes, first))
    transactions = folded(client, list(queued(writes, second)))
    assert rows(client, second) == rows(client, first)
    return transactions


CASES: list[tuple[str, list[Write], int]] = [
    ("adds sum", [add("x", a=Decimal("1.5")), add("x", a=2), add("x", a=Decimal("-0.25"))], 1),
    ("put then adds", [put("x", a=Decimal(1), c="k"), add("x", a=5, b=1), add("x", b=2)], 1),
    ("put then add of a missing attribute", [put("x", c="k"), add("x", a=3)], 1),
    ("set then add", [set_("x", a=Decimal(10)), add("x", a=Decimal("0.5"))], 1),
    ("add then set", [add("x", a=4), set_("x", a=Decimal(1))], 1),
    ("remove then add", [put("x", a=Decimal(7)), remove("x", "a"), add("x", a=2)], 1),
    ("add then remove", [add("x", a=4, b=1), remove("x", "a")], 1),
    ("distinct attributes", [add("x", a=1), set_("x", c="z"), add("x", b=3)], 1),
    ("put then delete", [put("x", a=Decimal(1)), add("x", a=1), delete("x")], 1),
    ("delete then put", [put("x", b=1), delete("x"), put("x", c="new")], 1),
    ("update then put", [add("x", a=1, b=1), put("x", c="replaced")], 1),
    ("two rows", [add("x", a=1), add("y", a=2), add("x", a=3), add("y", b=4)], 1),
    ("delete then update: a boundary", [put("x", b=1), delete("x"), add("x", b=2)], 2),
    ("a condition: a boundary", [put("x", b=1), add_if_exists("x", 2), add("x", b=3)], 3),
    ("computed from the item: a boundary", [put("x", b=1), increment("x"), add("x", b=1)], 3),
    ("a set addition: a boundary", [add_tag("x", 1), add_tag("x", 2), add("x", b=1)], 3),
]


@pytest.mark.parametrize(
    ("writes", "transactions"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_folded_writes_leave_the_rows_the_writes_one_by_one_leave(
    tables: tuple[DynamoDBEventStore, str, str], writes: list[Write], transactions: int
) -> None:
    assert compare(tables, writes) == transactions


def test_a_fold_is_refused_across_rows_and_for_raw_writes() -> None:
    (x,) = queued([add("x", a=1)], "t")
    (y,) = queued([add("y", a=1)], "t")
    assert fold(x, y) is None
    batch = FoldedBatch()
    raw = {"Update": {"TableName": "t", "Key": {"row_id": {"S": "x"}}}}
    assert batch.add([(x.identity, x)])
    assert not batch.add([(x.identity, raw)])
    assert len(batch) == 1


class Ledger(Model):
    class Meta:
        table_name = "fold-ledger"

    account_id = UnicodeAttribute(hash_key=True)
    entry = NumberAttribute(range_key=True)
    amount = DecimalAttribute(null=True)


@pytest.mark.parametrize("row", [Row("x"), Ledger("acc-1", 7), Ledger("acc#2", -3)])
def test_an_unconditional_update_is_sent_as_pynamodb_would_build_it(row: Model) -> None:
    # The projector builds an unconditional update's request itself, lazily: it must be the
    # request PynamoDB builds, keys of every attribute type included.
    field = Row.a if isinstance(row, Row) else Ledger.amount
    actions: list[Action] = [field.add(Decimal("2.5"))]
    built = row.get_update_kwargs_from_instance(actions=actions, add_version_condition=False)
    assert row_key(row) == built["Key"]
    writer = Writer() if isinstance(row, Row) else LedgerWriter()
    writer.update(row, actions=actions)
    (write,) = writer.take_queued()
    assert isinstance(write, RowWrite) and write.request is None
    sent = write.transact_item()["Update"]
    assert sent["Key"] == built["Key"] and sent["TableName"] == built["TableName"]
    assert sent["UpdateExpression"] == built["UpdateExpression"]
    assert sent["ExpressionAttributeNames"] == built["ExpressionAttributeNames"]
    assert sent["ExpressionAttributeValues"] == built["ExpressionAttributeValues"]


class LedgerWriter(Projector, name="ledger-writer"):
    read_models = (Ledger,)


def test_a_key_attribute_left_unset_is_refused_when_queued() -> None:
    with pytest.raises(ValueError, match="entry is part of the key"):
        LedgerWriter().update(Ledger("acc-1"), actions=[Ledger.amount.add(Decimal(1))])


def test_a_sum_beyond_dynamodbs_38_digits_is_not_folded() -> None:
    big, small = queued([add("x", a=Decimal("1E+37")), add("x", a=Decimal("0.1"))], "t")
    assert fold(big, small) is None  # DynamoDB refuses the second add: it must see it alone
    exact, other = queued([add("x", a=Decimal("1E+37")), add("x", a=Decimal("1"))], "t")
    folded_write = fold(exact, other)
    assert folded_write is not None
    assert folded_write.transact_item()["Update"]["ExpressionAttributeValues"] == {
        ":0": {"N": "10000000000000000000000000000000000001"}
    }


amounts = st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False)
writes = st.one_of(
    st.builds(lambda r, a: put(r, a=a), st.sampled_from("xy"), amounts),
    st.builds(lambda r, c: put(r, c=c), st.sampled_from("xy"), st.text("ab", max_size=3)),
    st.builds(lambda r, a: add(r, a=a), st.sampled_from("xy"), amounts),
    st.builds(lambda r, a, b: add_to(r, a=a, b=b), st.sampled_from("xy"), amounts, st.integers()),
    st.builds(lambda r, b: add(r, b=b), st.sampled_from("xy"), st.integers(-5, 5)),
    st.builds(lambda r, a, b: add(r, a=a, b=b), st.sampled_from("xy"), amounts, st.integers()),
    st.builds(lambda r, a: set_(r, a=a), st.sampled_from("xy"), amounts),
    st.builds(lambda r, c: set_(r, c=c), st.sampled_from("xy"), st.text("ab", min_size=1)),
    st.builds(lambda r: remove(r, "a"), st.sampled_from("xy")),
    st.builds(lambda r: remove(r, "b", "c"), st.sampled_from("xy")),
    st.builds(delete, st.sampled_from("xy")),
    st.builds(lambda r: add_if_exists(r, 1), st.sampled_from("xy")),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(writes, min_size=1, max_size=8))
def test_any_sequence_of_writes_folds_exactly(
    tables: tuple[DynamoDBEventStore, str, str], sequence: list[Write]
) -> None:
    try:
        compare(tables, sequence)
    except Exception as error:
        # A conditional write whose condition fails fails one by one and folded alike.
        if "ConditionalCheckFailed" not in str(error):
            raise


# -- the engine: one transaction per stream and chunk ----------------------------------------


class Balances(Projector, name="fold-balances"):
    """One row per account, updated with ``add``: the shape folding is for."""

    read_models = (AccountBalance,)

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        self.update(
            AccountBalance(envelope.aggregate_id),
            actions=[
                AccountBalance.balance.add(event.amount),
                AccountBalance.version.set(envelope.version),
            ],
        )


def test_the_events_of_a_stream_commit_as_one_write_per_row(
    local_store: DynamoDBEventStore,
) -> None:
    app = Application(store=local_store, aggregates=[Account])
    app.handle(OpenAccount(account_id="acc", owner="O"))
    amounts = tuple(Decimal(i) / 4 for i in range(1, 61))
    app.handle(DepositMany(account_id="acc", amounts=amounts))
    projector = Balances()
    read_models.create_tables(local_store, projector.read_models)
    transactions: list[int] = []
    local_store.client.meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems",
        lambda params, **_: transactions.append(len(params["TransactItems"])),
    )
    runner = CatchUpRunner(
        local_store, DynamoDBPositionStore(local_store), [projector], safety_window=dt.timedelta(0)
    )
    report = runner.run(until=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    assert report.applied == 61
    assert transactions == [2]  # the position and the one folded update of the row
    row = read_models.bound(AccountBalance, local_store).get("acc", consistent_read=True)
    assert row.balance == sum(amounts) and row.version == 61


def test_a_batch_keeps_a_running_sum_exact_and_stops_where_38_digits_end() -> None:
    # The sum is carried as a number between folds and printed once, when the write is sent.
    batch = FoldedBatch()
    for write in queued([add("x", a=Decimal("0.1"), b=1)] * 1000, "t"):
        assert batch.add([(write.identity, write)])
    (item,) = batch.transact_items()
    assert item["Update"]["ExpressionAttributeValues"] == {
        ":0": {"N": "100.0"},
        ":1": {"N": "1000"},
    }
    near = FoldedBatch()
    first, second, third = queued(
        [add("x", a=Decimal("9E+36")), add("x", a=Decimal("9E+36")), add("x", a=Decimal("0.5"))],
        "t",
    )
    assert near.add([(first.identity, first)]) and near.add([(second.identity, second)])
    assert not near.add([(third.identity, third)])  # 1.8E+37 + 0.5 needs 39 digits
    (item,) = near.transact_items()
    assert item["Update"]["ExpressionAttributeValues"] == {":0": {"N": "1.8E+37"}}


@pytest.mark.parametrize(
    ("writer", "row", "key", "amounts"),
    [
        (Writer, Row("x"), "x", {"a": Decimal("2.5"), "b": 3}),
        (LedgerWriter, Ledger("acc#2", -3), ("acc#2", -3), {"amount": Decimal("-0.25")}),
        (Writer, Row("y"), "y", {"b": 10**40}),
        (Writer, Row("y"), "y", {"b": 2.5}),
        (Writer, Row("y"), "y", {"b": -7}),
    ],
)
def test_add_to_is_the_write_of_update_with_add_actions(
    writer: type[Projector], row: Model, key: Any, amounts: dict[str, Any]
) -> None:
    model = type(row)
    actions: list[Action] = [getattr(model, name).add(v) for name, v in amounts.items()]
    built = row.get_update_kwargs_from_instance(actions=actions, add_version_condition=False)
    projector = writer()
    projector.add_to(model, key, **amounts)
    projector.update(row, actions=actions)
    added, updated = projector.take_queued()
    assert isinstance(added, RowWrite) and isinstance(updated, RowWrite)
    assert added.identity == updated.identity  # the same row: they fold together
    sent = added.transact_item()["Update"]
    assert sent == updated.transact_item()["Update"]
    for name in ("Key", "UpdateExpression", "ExpressionAttributeNames"):
        assert sent[name] == built[name]
    assert sent["ExpressionAttributeValues"] == built["ExpressionAttributeValues"]


def test_add_to_remembers_a_row_by_value_only_where_equal_values_serialize_alike() -> None:
    # add_to remembers each row's serialized key; 1, 1.0 and True are equal in Python but
    # PynamoDB serializes them as "1", "1.0" and "true": each must keep its own key.
    projector = LedgerWriter()
    for entry in (1, 1.0, True, 1):
        projector.add_to(Ledger, ("acc", entry), amount=Decimal(1))
        (write,) = projector.take_queued()
        assert isinstance(write, RowWrite)
        built = Ledger("acc", entry).get_update_kwargs_from_instance(
            actions=[Ledger.amount.add(Decimal(1))], add_version_condition=False
        )
        assert write.transact_item()["Update"]["Key"] == built["Key"]
        assert write.identity == row_identity(write.table, built["Key"])


def test_add_to_refuses_what_is_not_a_declared_number_attribute() -> None:
    projector = Writer()
    with pytest.raises(DefinitionError, match="not among its read_models"):
        projector.add_to(Ledger, ("acc", 1), amount=1)
    with pytest.raises(DefinitionError, match=r"Row\.c is not a number attribute"):
        projector.add_to(Row, "x", c=1)
    with pytest.raises(DefinitionError, match=r"Row\.row_id is not a number attribute"):
        projector.add_to(Row, "x", row_id=1)
    with pytest.raises(ValueError, match=r"keyed by \(account_id, entry\)"):
        LedgerWriter().add_to(Ledger, "acc", amount=1)
    with pytest.raises(ValueError, match="nothing to add"):
        projector.add_to(Row, "x")
    assert projector.take_queued() == []


@pytest.mark.parametrize("pair", [False, True], ids=["one write", "two writes"])
def test_a_batch_keeps_to_its_limit_whether_an_event_writes_one_row_or_more(pair: bool) -> None:
    # An event that writes one row takes a shorter path into the batch: the limit must hold
    # there as on the general path, a fold into a row already written included.
    def event(*row_ids: str) -> list[tuple[Any, QueuedWrite]]:
        writes = queued([add(row_id, b=1) for row_id in row_ids], "t")
        return [(write.identity, write) for write in writes]

    def rows(count: int) -> list[str]:
        return [f"r{index}" for index in range(count)]

    batch = FoldedBatch()
    for row_id in rows(99):
        assert batch.add(event(row_id), limit=99)
    extra = ("r0", "new") if pair else ("new",)
    assert not batch.add(event(*extra), limit=99)  # a 100th row: refused, the batch unchanged
    assert len(batch) == 99 and "new" not in str(batch.transact_items())
    assert batch.add(event(*(("r0", "r1") if pair else ("r0",))), limit=99)  # folds: no new row
    assert len(batch) == 99
    oversized = FoldedBatch()
    assert oversized.add(event(*rows(120)))  # an event alone may exceed it; DynamoDB judges it
    assert not oversized.add(event(*(("r0", "r1") if pair else ("r0",))), limit=99)
    assert len(oversized) == 120
