"""Projectors used by the framework's own tests: one in memory, one writing a DynamoDB table."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from framework import DynamoDBEventStore, Projector, event_handler
from framework.projections import Envelope
from framework.testing.bank import AccountOpened, Deposited, Withdrawn


class Balances(Projector, name="balances"):
    """Balances in a dict, plus a log of every (stream, version) applied, to catch doubles."""

    def __init__(self) -> None:
        super().__init__()
        self.balances: dict[str, Decimal] = {}
        self.applied: list[tuple[str, int]] = []

    def reset(self) -> None:
        self.balances.clear()
        self.applied.clear()

    @event_handler(AccountOpened)
    def _opened(self, event: AccountOpened, envelope: Envelope) -> None:
        self.balances[envelope.aggregate_id] = Decimal(0)
        self.applied.append((envelope.stream, envelope.version))

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        self.balances[envelope.aggregate_id] += event.amount
        self.applied.append((envelope.stream, envelope.version))

    @event_handler(Withdrawn)
    def _withdrawn(self, event: Withdrawn, envelope: Envelope) -> None:
        self.balances[envelope.aggregate_id] -= event.amount
        self.applied.append((envelope.stream, envelope.version))


class TableBalances(Projector, name="table-balances"):
    """Balances in a DynamoDB table, written in the same transaction as the position."""

    def __init__(self, table: str) -> None:
        super().__init__()
        self.table = table

    @event_handler(AccountOpened)
    def _opened(self, event: AccountOpened, envelope: Envelope) -> None:
        self.put_item(
            self.table,
            {
                "pk": {"S": envelope.aggregate_id},
                "owner": {"S": event.owner},
                "balance": {"N": "0"},
                "events": {"N": "1"},
            },
        )

    @event_handler(Deposited)
    def _deposited(self, event: Deposited, envelope: Envelope) -> None:
        self._add(envelope.aggregate_id, event.amount)

    @event_handler(Withdrawn)
    def _withdrawn(self, event: Withdrawn, envelope: Envelope) -> None:
        self._add(envelope.aggregate_id, -event.amount)

    def _add(self, account_id: str, amount: Decimal) -> None:
        self.update_item(
            self.table,
            {"pk": {"S": account_id}},
            "ADD balance :amount, events :one",
            ExpressionAttributeValues={":amount": {"N": str(amount)}, ":one": {"N": "1"}},
        )


def create_read_table(store: DynamoDBEventStore, name: str) -> str:
    table = f"{store.tables.prefix}-read-{name}"
    store.client.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return table


def read_table(store: DynamoDBEventStore, table: str) -> dict[str, tuple[Decimal, int]]:
    """``{account: (balance, number of events applied)}``."""
    items: list[dict[str, Any]] = store.client.scan(TableName=table, ConsistentRead=True)["Items"]
    return {
        item["pk"]["S"]: (Decimal(item["balance"]["N"]), int(item["events"]["N"])) for item in items
    }
